"""Knowledge Base node: the ChromaDB passage store, fed by FOLDOC or LangFlow documents."""

import os

from lfx.custom.custom_component.component import Component
from lfx.io import BoolInput, HandleInput, IntInput, MessageTextInput, Output, StrInput
from lfx.schema.dataframe import DataFrame

from overlay_core.ingest import passages_from_records
from overlay_core.node_base import STATE_FOLDER_INPUT, OverlayNode
from overlay_core.retrieval import KnowledgeBase, get_knowledge_base


class OverlayKnowledgeBase(OverlayNode, Component):
    display_name = "Knowledge Base"
    description = ("The passages answers are drawn from, searched by meaning on this computer. Connect File, "
                   "Directory or Split Text to add your documents; the Preview output shows what a question finds.")
    icon = "database"
    name = "OverlayKnowledgeBase"

    inputs = [
        HandleInput(name="documents", display_name="Documents", input_types=["Data", "JSON", "Message", "DataFrame", "Table"],
                    is_list=True, required=False,
                    info="Optional documents to upsert (from File, Directory or Split Text). Unchanged ones are not rewritten."),
        # preview-only inputs: advanced and named "Preview: …" (the reasoner's own Passages setting retrieves)
        MessageTextInput(name="query", display_name="Preview: Question", value="What is a hash table?", advanced=True,
                         info="Only for the Preview output (answers do not use it): a question whose retrieved "
                              "passages to list."),
        IntInput(name="top_k", display_name="Preview: Passages Listed", value=3, advanced=True,
                 info="Only for the Preview output: how many passages to list (answers use the reasoner's "
                      "'Passages (top-k)')."),
        StrInput(**STATE_FOLDER_INPUT),
        StrInput(name="collection", display_name="Collection", value="overlay", advanced=True,
                 info="ChromaDB collection name (passages are embedded offline with MiniLM)."),
        StrInput(name="server_url", display_name="Chroma Server URL", value="", advanced=True,
                 info="e.g. http://127.0.0.1:8000 to use a Chroma server; empty = $OVERLAY_CHROMA_URL, else the "
                      "embedded store in the state folder."),
        BoolInput(name="ingest", display_name="Ingest Documents", value=True, advanced=True,
                  info="Upsert the connected documents before answering."),
    ]
    # group_outputs: both handles drawn at once (a dropdown of outputs deletes the edge of the one not chosen)
    outputs = [
        Output(display_name="Knowledge Base", name="knowledge_base", method="build_knowledge_base",
               group_outputs=True),
        Output(display_name="Preview: Passages", name="passages", method="preview", group_outputs=True),
    ]

    def _kb(self) -> KnowledgeBase:
        kb = get_knowledge_base(self.state.chroma, collection=self.collection or "overlay",
                                server_url=self.server_url or os.environ.get("OVERLAY_CHROMA_URL") or None)
        if self.ingest and self.documents:
            docs = self.documents if isinstance(self.documents, list) else [self.documents]
            passages, skipped = passages_from_records(docs, source="document")
            report = kb.upsert(passages)
            self.log(f"ingested {report.total} passages: {report.added} added, {report.updated} updated, "
                     f"{report.unchanged} unchanged, {report.skipped_empty + skipped} empty skipped")
        return kb

    def build_knowledge_base(self) -> KnowledgeBase:
        kb = self._kb()
        self.status = f"{kb.count()} passages in the store"
        return kb

    def preview(self) -> DataFrame:
        hits = self._kb().query(self.query, k=self.top_k)
        self.status = f"retrieved {len(hits)} passages"
        return DataFrame([{"rank": i + 1, "source": h.source, "distance": round(h.distance, 4), "passage": h.text,
                           "id": h.id} for i, h in enumerate(hits)])
