"""overlay_core.settings: one declaration per setting drives the library, `overlay ask` and the nodes."""

import ast
import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer.main
from rich.markup import escape

from overlay_core.accumulator import ScoreWeights
from overlay_core.cli import app
from overlay_core.errors import InputError
from overlay_core.settings import ReasonerSettings, from_inputs, node_inputs, render_help, specs

ROOT = Path(__file__).resolve().parent.parent
CLASSES = [ReasonerSettings, ScoreWeights]
#: the node of each settings class, and its inputs that are not settings
NODES = {ReasonerSettings: ("overlay_reasoner", {"question", "knowledge_base", "adjacency_table", "llm_selector",
                                                 "llm_selector_ru",
                                                 "score_accumulator", "candidate_sources", "guards", "features"})}


def _component(stem: str):
    from lfx.custom.custom_component.component import Component

    spec = importlib.util.spec_from_file_location(f"test_settings_{stem}", ROOT / "components" / "overlay" / f"{stem}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    (cls,) = [v for v in vars(mod).values() if isinstance(v, type) and issubclass(v, Component)
              and v.__module__ == mod.__name__]
    return cls


def test_defaults_are_what_they_were_before_the_schema():
    """The values every surface used before they were declared once (the trace's settings/weights)."""
    assert ReasonerSettings().as_dict() == {
        "top_k": 3, "n_candidates": 8, "passage_candidates": True, "span_words": 4, "context_order": 2,
        "llm_score": "mean", "block_ngram": 3, "min_words": 6, "max_words": 30, "start": "subject",
        "max_passage_chars": 600, "refuse_distance": 0.6,
        # a multilingual embedder's distances run on another scale (issue 16)
        "refuse_distance_multilingual": 0.8, "answer_far_cross_encoder": 0.9, "min_relevance": 0.5,
        # added after the schema: the cross-encoder's reading of the sentences (issue 15)
        "min_cross_encoder": 0.5, "decline_cross_encoder": 0.1, "cross_encoder": True, "w_cross_encoder": 0.5,
        # the LLM only breaks near-ties when choosing the answer's sentence (issue 15, round 5)
        "llm_opening_share": 0.1,
        # the multilingual embedder's reading of a non-English question's sentences (issue 16)
        "w_embedding": 0.3, "min_relevance_embedding": 0.45,
        "finish_sentence": 15, "yes_no_negation": True,
        # an answer finishes the sentence it copies (issue 16: Russian answers spliced sentences)
        "keep_sentence": True, "hygiene": True}
    assert ScoreWeights().as_dict() == {"w_adj": 0.5, "w_ctx": 6.0, "w_llm": 1.0, "w_glob": 1.0, "w_rel": 6.0}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_cli_options_are_the_schema(cls):
    ask = typer.main.get_command(app).commands["ask"]
    params = {p.name: p for p in ask.params}
    for s in specs(cls):
        p = params[s.name]
        assert p.default == s.default, s.name
        if s.type is bool:
            assert p.opts == [s.flag] and p.secondary_opts == ["--no-" + s.flag[2:]]
        else:
            assert p.opts == [s.flag]
            assert p.type.name == {int: "integer", float: "float", str: "text"}[s.type], s.name
        assert p.help.startswith(escape(render_help(s.help, cls, "cli"))), s.name  # rich markup escaped


def test_cli_declares_no_setting_itself():
    """`ask` gets its setting options from the schema: none is a parameter of the function as written."""
    tree = ast.parse((ROOT / "overlay_core" / "cli.py").read_text())
    (ask,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "ask"]
    own = {a.arg for a in ask.args.args + ask.args.kwonlyargs}
    assert not own & {s.name for c in CLASSES for s in specs(c)}


@pytest.mark.parametrize("cls", [ReasonerSettings], ids=lambda c: c.__name__)
def test_node_inputs_are_the_schema(cls):
    stem, others = NODES[cls]
    node = _component(stem)
    inputs = {i.name: i for i in node.inputs}
    assert set(inputs) - others == {s.input for s in specs(cls)}
    for s in specs(cls):
        i = inputs[s.input]
        assert (i.value, i.display_name, i.advanced) == (s.default, s.label, s.advanced), s.name
        assert i.info == render_help(s.help, cls, "node")
        if s.choices:
            assert type(i).__name__ == "DropdownInput" and i.options == list(s.choices)
        elif s.type is bool:
            assert type(i).__name__ == "BoolInput"
        else:
            assert type(i).__name__ == {int: "IntInput", float: "FloatInput"}[s.type]
            assert (i.range_spec.min, i.range_spec.max) == s.bounds
            assert i.range_spec.step_type == ("int" if s.type is int else "float")
    # the node's source names no setting: every one comes from the schema
    src = (ROOT / "components" / "overlay" / f"{stem}.py").read_text()
    literals = {n.value for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not literals & {s.input for s in specs(cls)}


def test_the_weights_are_the_feature_nodes_one_per_weight_of_the_schema():
    """ScoreWeights is the one declaration: the Feature node offers one feature per weight field, with its bounds;
    no other node has a weight input."""
    from overlay_core.stages.specs import FEATURES, feature_help

    assert sorted(FEATURES.values()) == sorted(s.name for s in specs(ScoreWeights))
    node = _component("feature")
    inputs = {i.name: i for i in node.inputs}
    assert inputs["stage"].options == list(FEATURES)
    bounds = {s.bounds for s in specs(ScoreWeights)}
    assert {(inputs["weight"].range_spec.min, inputs["weight"].range_spec.max)} == bounds
    assert all(feature_help(k) == next(s.help for s in specs(ScoreWeights) if s.name == f) for k, f in FEATURES.items())
    for stem in ("score_accumulator", "overlay_reasoner"):
        names = {i.name for i in _component(stem).inputs}
        assert not names & {s.input for s in specs(ScoreWeights)}, stem


def test_saved_flows_carry_the_schema_defaults():
    from overlay_core.stages.specs import FEATURES

    flow = json.loads((ROOT / "flows" / "overlay_answer.json").read_text())
    tpl = {n["data"]["type"]: n["data"]["node"]["template"] for n in flow["data"]["nodes"]}
    t = tpl["OverlayReasoner"]
    for s in specs(ReasonerSettings):
        assert t[s.input]["value"] == s.default, s.name
        if s.bounds:
            assert (t[s.input]["range_spec"]["min"], t[s.input]["range_spec"]["max"]) == s.bounds
    weights = {n["data"]["node"]["template"]["stage"]["value"]: n["data"]["node"]["template"]["weight"]["value"]
               for n in flow["data"]["nodes"] if n["data"]["type"] == "OverlayFeature"}
    assert {FEATURES[k]: v for k, v in weights.items()} == ScoreWeights().as_dict()


def test_node_inputs_map_back_to_the_settings():
    """`start` is the input `start_mode` (Component.start is a method); from_inputs reads it back."""
    values = {d["name"]: d["value"] for d in node_inputs(ReasonerSettings)}
    assert "start_mode" in values and "start" not in values
    values.update(start_mode="none", context_order=3)
    s = from_inputs(ReasonerSettings, SimpleNamespace(**values))
    assert (s.start, s.context_order) == ("none", 3)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_bounds_and_choices_are_enforced(cls):
    what = "score weight" if cls is ScoreWeights else "setting"
    for s in specs(cls):
        if s.bounds:
            lo, hi = s.bounds
            assert getattr(cls(**{s.name: lo}), s.name) == lo and getattr(cls(**{s.name: hi}), s.name) == hi
            step = 1 if s.type is int else (hi - lo) / 1000
            for bad in (lo - step, hi + step):
                with pytest.raises(InputError, match=rf"^{what} `{s.name}` must be "):
                    cls(**{s.name: bad})
        if s.choices:
            with pytest.raises(InputError, match=rf"`{s.name}` must be one of {', '.join(s.choices)}"):
                cls(**{s.name: "no-such-choice"})
        if s.type in (int, float):
            with pytest.raises(InputError, match=s.name):
                cls(**{s.name: True})  # a bool is not a number here
        if s.type is bool:
            with pytest.raises(InputError, match=rf"`{s.name}` must be true or false"):
                cls(**{s.name: "yes"})
    if cls is ScoreWeights:
        with pytest.raises(InputError, match="w_llm` must be a finite number"):
            ScoreWeights(w_llm=float("nan"))


def test_help_markers_name_the_setting_as_each_surface_does():
    text = next(s.help for s in specs(ReasonerSettings) if s.name == "min_words")
    assert "the answer stops at --max-words" in render_help(text, ReasonerSettings, "cli")
    assert "the answer stops at 'Max Answer Words'" in render_help(text, ReasonerSettings, "node")


def test_overrides_from_the_command_line():
    from overlay_core.settings import overrides

    got = overrides([ReasonerSettings, ScoreWeights], ["w_cross_encoder=0.3", "cross-encoder=off", "w_rel=2",
                                                       "top_k=5"])
    assert got == {ReasonerSettings: {"w_cross_encoder": 0.3, "cross_encoder": False, "top_k": 5},
                   ScoreWeights: {"w_rel": 2.0}}
    for bad, said in [("w_cross=1", "give NAME=VALUE"), ("top_k", "give NAME=VALUE"),
                      ("top_k=five", "`top_k` must be int"), ("hygiene=maybe", "`hygiene` must be bool")]:
        with pytest.raises(InputError, match=said):
            overrides([ReasonerSettings, ScoreWeights], [bad])
