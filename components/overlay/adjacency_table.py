"""Adjacency Table node: the pre-indexed word links, and a lookup a person can read."""

from lfx.custom.custom_component.component import Component
from lfx.io import IntInput, MessageTextInput, Output, StrInput
from lfx.schema.dataframe import DataFrame

from overlay_core.adjacency import AdjacencyTable
from overlay_core.component_code import warn_if_edited
from overlay_core.knowledge import load_table, state_paths
from overlay_core.text import words


class OverlayAdjacencyTable(Component):
    display_name = "Adjacency Table"
    description = "Weighted n-gram links (previous word(s) -> next word) with provenance, from the state folder."
    icon = "network"
    name = "OverlayAdjacencyTable"

    inputs = [
        MessageTextInput(name="word", display_name="Look Up", value="hash",
                         info="One word (bigram context) or two words (trigram context) to see their next words."),
        IntInput(name="top_n", display_name="Top-N", value=10, info="How many next words to show."),
        StrInput(name="home", display_name="State Folder", value="", advanced=True,
                 info="Overlay state folder; empty = $OVERLAY_HOME or ./.overlay."),
    ]
    outputs = [
        Output(display_name="Adjacency Table", name="adjacency_table", method="build_table"),
        Output(display_name="Next Words", name="next_words", method="lookup"),
    ]

    def _pre_run_setup(self):
        # a saved flow runs its own copy of this code: say so when it is not the installed file
        self._code_warning = warn_if_edited(self)

    def build_table(self) -> AdjacencyTable:
        table = load_table(state_paths(self.home or None).adjacency)
        self.status = f"{table.n_edges} edges, vocabulary {table.vocab_size}, order {table.order}"
        return table

    def lookup(self) -> DataFrame:
        table = load_table(state_paths(self.home or None).adjacency)
        edges = table.next_words(words(self.word or ""), self.top_n)
        self.status = f"{len(edges)} next words for {self.word!r}"
        return DataFrame([{"context": " ".join(e.context), "next word": e.word, "p": round(e.prob, 4),
                           "count": e.count, "passages": e.n_passages,
                           "example": table.passage_source(e.passages[0]) if e.passages else ""} for e in edges])
