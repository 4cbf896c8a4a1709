"""Overlay Reasoner node: answers word by word from the connected knowledge, with a full trace."""

from lfx.custom.custom_component.component import Component
from lfx.io import BoolInput, DropdownInput, FloatInput, HandleInput, IntInput, MessageTextInput, Output
from lfx.schema.data import Data
from lfx.schema.dataframe import DataFrame
from lfx.schema.message import Message

from overlay_core.component_code import edited_nodes
from overlay_core.knowledge import language_selectors
from overlay_core.node_base import OverlayNode
from overlay_core.reasoner import Reasoner
from overlay_core.settings import ReasonerSettings, from_inputs, node_inputs
from overlay_core.stages.specs import build_guards, build_sources, weights_from_features
from overlay_core.trace import to_compact, to_rows

#: LangFlow input class of each kind of setting (overlay_core.settings.node_inputs)
_INPUT = {"int": IntInput, "float": FloatInput, "bool": BoolInput, "dropdown": DropdownInput}


def _listed(value) -> list:
    """A list input's connected values (LangFlow gives None, one value or a list)."""
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


class OverlayReasoner(OverlayNode, Component):
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
        HandleInput(name="llm_selector_ru", display_name="LLM Selector for Russian", input_types=["LLMSelector"],
                    required=False, info="Optional: the model that scores Russian questions. Not connected: "
                    "gemma-3-270m (it reads Russian) beside the default English model, else the LLM Selector above."),
        HandleInput(name="score_accumulator", display_name="Score Accumulator", input_types=["ScoreAccumulator"],
                    required=True, info="Connect the Score Accumulator node (weights + verdict scores)."),
        HandleInput(name="candidate_sources", display_name="Candidate Sources", input_types=["SourceSpec"],
                    is_list=True, required=False,
                    info="Connect Candidate Source nodes; with none connected, every built-in source is used."),
        HandleInput(name="guards", display_name="Guards", input_types=["GuardSpec"], is_list=True, required=False,
                    info="Connect Guard nodes; with none connected, every built-in guard is used."),
        HandleInput(name="features", display_name="Features", input_types=["FeatureSpec"], is_list=True,
                    required=False, info="Connect Feature nodes (each with its weight); a feature not connected "
                    "does not count; with none connected, every feature counts with its default weight."),
        # one input per reasoner setting, made from its declaration (bounds as range_spec)
        *[_INPUT[d.pop("kind")](**d) for d in node_inputs(ReasonerSettings)],
    ]
    outputs = [
        # Answer: the answer, its sources and one short line per step (fits the Playground chat column);
        # Trace (into a Trace View node) and Trace Table: every candidate with its numbers
        Output(display_name="Answer", name="answer", method="build_answer", group_outputs=True),
        Output(display_name="Trace", name="trace", method="build_trace", group_outputs=True),
        Output(display_name="Trace Table", name="trace_table", method="build_trace_table", group_outputs=True),
    ]

    def _pre_run_setup(self):
        # a saved flow runs its own copy of each node's code: say so above the answer when any Overlay node of this
        # flow (an edited selector changes the answer too) is not the installed file
        super()._pre_run_setup()
        self._code_warnings = edited_nodes(self)

    def _run(self) -> dict:
        return self.once("result", self._answer)

    def _answer(self) -> dict:
        acc = self.score_accumulator
        settings = from_inputs(ReasonerSettings, self)
        sources, guards, features = _listed(self.candidate_sources), _listed(self.guards), _listed(self.features)
        sel = self.llm_selector
        russian = ({"ru": self.llm_selector_ru} if hasattr(self.llm_selector_ru, "score")
                   else language_selectors(sel, "auto", n_ctx=sel.n_ctx, n_threads=sel.n_threads, n_batch=sel.n_batch))
        reasoner = Reasoner(self.knowledge_base, self.adjacency_table, sel, acc.accumulator, selectors=russian,
                            weights=weights_from_features(features) if features else acc.weights, settings=settings,
                            sources=build_sources(sources, self.adjacency_table, acc.accumulator) if sources else None,
                            guards=build_guards(guards, acc.accumulator) if guards else None)
        result = reasoner.answer(self.question)
        if getattr(self, "_code_warnings", None):
            result["warnings"] = list(self._code_warnings)
        n_words, n_steps = len(result["answer_words"]), len(result["trace"])
        self.status = f"answer: {n_words} word{'s' * (n_words != 1)}, {n_steps} step{'s' * (n_steps != 1)}"
        return result

    def build_answer(self) -> Message:
        r = self._run()
        # answer first, one short line per step: the full Markdown tables (tens of KB per answer) made every
        # message of a long Playground chat slow to re-render; they are the Trace / Trace Table outputs
        warning = "".join(f"**Warning:** {w}\n\n" for w in r.get("warnings", []))
        return Message(text=warning + to_compact(r))

    def build_trace(self) -> Data:
        return Data(data=self._run())

    def build_trace_table(self) -> DataFrame:
        return DataFrame(to_rows(self._run()))
