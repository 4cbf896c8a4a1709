"""Overlay Reasoner node: answers word by word from the connected knowledge, with a full trace."""

from lfx.custom.custom_component.component import Component
from lfx.io import BoolInput, DropdownInput, FloatInput, HandleInput, IntInput, MessageTextInput, Output
from lfx.schema.data import Data
from lfx.schema.dataframe import DataFrame
from lfx.schema.message import Message

from overlay_core.component_code import edited_nodes, warn_if_edited
from overlay_core.reasoner import Reasoner, ReasonerSettings
from overlay_core.trace import to_markdown, to_rows


class OverlayReasoner(Component):
    display_name = "Overlay Reasoner"
    description = ("Answers a question one word at a time: the adjacency table and the passages propose, the LLM "
                   "scores, the accumulator decides. Every word is traced.")
    icon = "route"
    name = "OverlayReasoner"

    inputs = [
        MessageTextInput(name="question", display_name="Question", value="What is a hash table?",
                         info="The question (connect Chat Input)."),
        HandleInput(name="knowledge_base", display_name="Knowledge Base", input_types=["KnowledgeBase"], required=True,
                    info="Connect the Knowledge Base node."),
        HandleInput(name="adjacency_table", display_name="Adjacency Table", input_types=["AdjacencyTable"],
                    required=True, info="Connect the Adjacency Table node."),
        HandleInput(name="llm_selector", display_name="LLM Selector", input_types=["LLMSelector"], required=True,
                    info="Connect the LLM Selector node."),
        HandleInput(name="score_accumulator", display_name="Score Accumulator", input_types=["ScoreAccumulator"],
                    required=True, info="Connect the Score Accumulator node (weights + verdict scores)."),
        IntInput(name="top_k", display_name="Passages (top-k)", value=3, info="Passages retrieved for the question."),
        IntInput(name="n_candidates", display_name="Candidates per Step", value=8,
                 info="Corpus-wide top-N successors proposed at each step."),
        IntInput(name="max_words", display_name="Max Answer Words", value=30,
                 info="Hard stop after this many words (after the subject start, e.g. 'A hash table is')."),
        IntInput(name="min_words", display_name="Min Words Before '.'", value=6,
                 info="Stopping rule: sentence-ending punctuation is blocked before this many words."),
        IntInput(name="block_ngram", display_name="Block Repeated n-grams", value=3,
                 info="Repetition control: block candidates repeating an n-gram of this size (0 = off)."),
        FloatInput(name="refuse_distance", display_name="Decline Beyond Distance", value=0.6,
                   info="Decline to answer when the nearest passage is farther than this (cosine distance, 0-2) and "
                        "none is about the asked term. 2 = never decline on distance."),
        FloatInput(name="min_relevance", display_name="Min Sentence Relevance", value=0.5,
                   info="Who/when/which/how questions are declined when no passage sentence reaches this relevance "
                        "(0-1; 0 = never). Only sentences at least this relevant open the answer."),
        BoolInput(name="hygiene", display_name="Skip Dictionary Furniture", value=True, advanced=True,
                  info="Pronunciations, sense numbers, <category> tags and citations stay in the passages and the "
                       "trace but never become answer words."),
        BoolInput(name="passage_candidates", display_name="Passage Candidates", value=True, advanced=True,
                  info="Also propose the words that follow the context inside the retrieved passages."),
        IntInput(name="span_words", display_name="Span Length", value=4, advanced=True,
                 info="Longest multi-word span copied from a passage as one candidate (1 = words only)."),
        DropdownInput(name="context_order", display_name="Context", options=["bigram", "trigram"], value="bigram",
                      advanced=True, info="Propose from the previous word (bigram) or the previous two words (trigram)."),
        DropdownInput(name="llm_score", display_name="LLM Score", options=["mean", "sum", "calibrated"], value="mean",
                      advanced=True, info="Per-token mean log-prob, total log-prob, or calibrated (minus a neutral prompt's)."),
        DropdownInput(name="start_mode", display_name="Start", options=["subject", "none"], value="subject", advanced=True,
                      info="'subject' starts with the asked term ('A hash table is') or a frame taken from the "
                           "question ('Unix was invented'); 'none' starts with a passage span."),
    ]
    outputs = [
        Output(display_name="Answer", name="answer", method="build_answer"),
        Output(display_name="Trace", name="trace", method="build_trace"),
        Output(display_name="Trace Table", name="trace_table", method="build_trace_table"),
    ]

    def _pre_run_setup(self):
        # a saved flow runs its own copy of each node's code: say so above the answer when any Overlay node of this
        # flow (an edited selector changes the answer too) is not the installed file
        warn_if_edited(self)
        self._code_warnings = edited_nodes(self)

    def _run(self) -> dict:
        if getattr(self, "_result", None) is None:
            acc = self.score_accumulator
            settings = ReasonerSettings(
                top_k=self.top_k, n_candidates=self.n_candidates, max_words=self.max_words, min_words=self.min_words,
                block_ngram=self.block_ngram, passage_candidates=self.passage_candidates, span_words=self.span_words,
                context_order=3 if self.context_order == "trigram" else 2, llm_score=self.llm_score, start=self.start_mode,
                refuse_distance=self.refuse_distance, min_relevance=self.min_relevance, hygiene=self.hygiene)
            reasoner = Reasoner(self.knowledge_base, self.adjacency_table, self.llm_selector, acc.accumulator,
                                weights=acc.weights, settings=settings)
            self._result = reasoner.answer(self.question)
            if getattr(self, "_code_warnings", None):
                self._result["warnings"] = list(self._code_warnings)
            n_words, n_steps = len(self._result["answer_words"]), len(self._result["trace"])
            self.status = f"answer: {n_words} word{'s' * (n_words != 1)}, {n_steps} step{'s' * (n_steps != 1)}"
        return self._result

    def build_answer(self) -> Message:
        r = self._run()
        warning = "".join(f"**Warning:** {w}\n\n" for w in r.get("warnings", []))
        return Message(text=f"{warning}{r['answer']}\n\n---\n\n{to_markdown(r)}")

    def build_trace(self) -> Data:
        return Data(data=self._run())

    def build_trace_table(self) -> DataFrame:
        return DataFrame(to_rows(self._run()))
