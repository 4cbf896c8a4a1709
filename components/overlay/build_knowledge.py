"""Build Knowledge node: ingest a corpus into ChromaDB and build the adjacency table."""

from lfx.custom.custom_component.component import Component
from lfx.io import BoolInput, DropdownInput, HandleInput, IntInput, Output, StrInput
from lfx.schema.data import Data
from lfx.schema.message import Message

from overlay_core.ingest import passages_from_records
from overlay_core.knowledge import build_knowledge
from overlay_core.node_base import STATE_FOLDER_INPUT, OverlayNode


class OverlayBuildKnowledge(OverlayNode, Component):
    display_name = "Build Knowledge"
    description = ("Parses the bundled FOLDOC dictionary (or connected documents), upserts the passages into "
                   "ChromaDB and builds the adjacency table. Cached: an unchanged corpus is not rebuilt.")
    icon = "hammer"
    name = "OverlayBuildKnowledge"

    inputs = [
        HandleInput(name="documents", display_name="Documents", input_types=["Data", "JSON", "Message", "DataFrame", "Table"],
                    is_list=True, required=False,
                    info="Your own documents (File, Directory, Split Text). Empty = the bundled FOLDOC dictionary."),
        IntInput(name="limit", display_name="Entry Limit", value=0,
                 info="Only the first N FOLDOC entries (0 = the whole dictionary, ~15k entries, a few minutes)."),
        DropdownInput(name="order", display_name="n-gram Order", options=["2", "3"], value="3",
                      info="3 stores bigram and trigram contexts; 2 stores bigrams only."),
        BoolInput(name="rebuild", display_name="Rebuild", value=False, advanced=True,
                  info="Build again even if the same corpus was built."),
        StrInput(**STATE_FOLDER_INPUT),
        StrInput(name="server_url", display_name="Chroma Server URL", value="", advanced=True,
                 info="Empty = embedded ChromaDB in the state folder."),
    ]
    outputs = [
        Output(display_name="Report", name="report", method="build_report", group_outputs=True),
        Output(display_name="Summary", name="summary", method="build_summary", group_outputs=True),
    ]

    def _build(self) -> dict:
        if getattr(self, "_report", None) is None:
            passages = None
            if self.documents:
                docs = self.documents if isinstance(self.documents, list) else [self.documents]
                passages, _ = passages_from_records(docs, source="document")
            self._report = build_knowledge(self.home or None, passages=passages, limit=self.limit or None,
                                           order=int(self.order), rebuild=self.rebuild,
                                           server_url=self.server_url or None)
            state = "cached" if self._report.get("cached") else "built"
            self.status = f"{state}: {self._report['n_passages']} passages, {self._report['n_edges']} edges"
        return self._report

    def build_report(self) -> Data:
        return Data(data=self._build())

    def build_summary(self) -> Message:
        r = self._build()
        state = "Already built (cached)" if r.get("cached") else "Built"
        return Message(text=f"{state}: {r['n_passages']} passages, {r['n_edges']} adjacency edges, "
                            f"vocabulary {r['vocab_size']} words (fingerprint {r['fingerprint']}).")
