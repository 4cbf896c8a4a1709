"""Adjacency Table node: the pre-indexed word links, and a lookup a person can read."""

from lfx.custom.custom_component.component import Component
from lfx.io import IntInput, MessageTextInput, Output, StrInput
from lfx.schema.dataframe import DataFrame

from overlay_core.adjacency import AdjacencyTable
from overlay_core.knowledge import load_table
from overlay_core.node_base import STATE_FOLDER_INPUT, OverlayNode
from overlay_core.text import words


class OverlayAdjacencyTable(OverlayNode, Component):
    display_name = "Adjacency Table"
    description = "Weighted n-gram links (previous word(s) -> next word) with provenance, from the state folder."
    icon = "network"
    name = "OverlayAdjacencyTable"

    inputs = [
        MessageTextInput(name="word", display_name="Look Up", value="hash",
                         info="One word (bigram context) or two words (trigram context) to see their next words."),
        IntInput(name="top_n", display_name="Top-N", value=10, info="How many next words to show."),
        StrInput(**STATE_FOLDER_INPUT),
    ]
    outputs = [
        Output(display_name="Adjacency Table", name="adjacency_table", method="build_table"),
        Output(display_name="Next Words", name="next_words", method="lookup"),
    ]

    def build_table(self) -> AdjacencyTable:
        table = self.once("table", lambda: load_table(self.state.adjacency))
        self.status = f"{table.n_edges} edges, vocabulary {table.vocab_size}, order {table.order}"
        return table

    def lookup(self) -> DataFrame:
        table = self.once("table", lambda: load_table(self.state.adjacency))
        edges = table.next_words(words(self.word or ""), self.top_n)
        self.status = f"{len(edges)} next words for {self.word!r}"
        return DataFrame([{"context": " ".join(e.context), "next word": e.word, "p": round(e.prob, 4),
                           "count": e.count, "passages": e.n_passages,
                           "example": table.passage_source(e.passages[0]) if e.passages else ""} for e in edges])
