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
    description = ("Which word tends to follow which in the passages, and where each link was seen. Feeds the "
                   "Overlay Reasoner; the Preview output lists the next words of a word you type.")
    icon = "network"
    name = "OverlayAdjacencyTable"

    inputs = [
        # preview-only inputs: advanced and named "Preview: …", so they do not read as settings of the answer
        MessageTextInput(name="word", display_name="Preview: Look Up", value="hash", advanced=True,
                         info="Only for the Preview output (answers do not use it): one word (bigram context) or two "
                              "words (trigram context) whose next words to list."),
        IntInput(name="top_n", display_name="Preview: Next Words Listed", value=10, advanced=True,
                 info="Only for the Preview output: how many next words to list."),
        StrInput(**STATE_FOLDER_INPUT),
    ]
    # group_outputs: both handles drawn at once. Without it LangFlow shows one output at a time behind a dropdown,
    # and choosing the preview there silently deleted the edge to the reasoner.
    outputs = [
        Output(display_name="Adjacency Table", name="adjacency_table", method="build_table", group_outputs=True),
        Output(display_name="Preview: Next Words", name="next_words", method="lookup", group_outputs=True),
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
