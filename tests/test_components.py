"""Each Overlay node as LangFlow builds it: instantiate, set inputs, call the output methods."""

import ast
import asyncio
import re
import importlib.util
import sys
from pathlib import Path

import pytest

from lfx.custom.custom_component.component import Component
from lfx.schema.data import Data

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "components" / "overlay").glob("*.py"))


def load(stem: str) -> type:
    path = ROOT / "components" / "overlay" / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"test_components_{stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # LangFlow resolves a component's source through its module
    spec.loader.exec_module(mod)
    (cls,) = [v for v in vars(mod).values() if isinstance(v, type) and issubclass(v, Component)
              and v.__module__ == mod.__name__]
    return cls


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_one_component_class_per_file_with_docs(path):
    tree = ast.parse(path.read_text())
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert len(classes) == 1, f"{path.name}: LangFlow rebuilds a node from the first class only"
    cls = load(path.stem)
    assert cls.display_name and cls.description and cls.icon and cls.name.startswith("Overlay")
    for inp in cls.inputs:
        assert inp.info, f"{cls.name}.{inp.name} has no tooltip"
    node = cls().to_frontend_node()
    assert node["data"]["node"]["template"]



@pytest.mark.parametrize("stem", ["knowledge_base", "adjacency_table", "llm_selector", "score_accumulator"])
def test_a_service_node_draws_its_handle_and_its_preview_side_by_side(stem):
    """LangFlow draws a node's outputs behind a dropdown unless they are grouped, and choosing the preview there
    deleted the edge from the handle to the reasoner without a word (issue 17). Grouped outputs are all drawn; the
    preview output and the inputs only it reads say "Preview:" and the inputs sit under advanced."""
    cls = load(stem)
    handle, *previews = cls.outputs
    assert all(o.group_outputs for o in cls.outputs), [o.name for o in cls.outputs if not o.group_outputs]
    assert not handle.display_name.startswith("Preview") and previews
    assert all(o.display_name.startswith("Preview: ") for o in previews)
    preview_inputs = [i for i in cls.inputs if i.display_name.startswith("Preview: ")]
    assert all(i.advanced and i.info.startswith("Only for the Preview output") for i in preview_inputs)
    node = cls().to_frontend_node()["data"]["node"]
    assert all(o["group_outputs"] for o in node["outputs"])

@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_a_node_with_several_outputs_draws_them_all(path):
    """Ungrouped outputs sit behind a dropdown, and choosing another there deletes the edges of the one that was
    shown (the reasoner's Answer -> Chat Output went when Trace was picked; issue 17)."""
    cls = load(path.stem)
    if len(cls.outputs) > 1:
        assert all(o.group_outputs for o in cls.outputs), [o.name for o in cls.outputs if not o.group_outputs]


def test_reasoner_node_with_service_nodes(env_home):
    kb = load("knowledge_base")(query="What is a hash table?", top_k=2)
    adj = load("adjacency_table")(word="hash table", top_n=5)
    sel = load("llm_selector")(model_path="", n_ctx=2048)
    acc = load("score_accumulator")()
    preview = kb.preview()
    assert list(preview["source"])[0] == "FOLDOC:hash table" and len(preview) == 2
    nxt = adj.lookup()
    assert len(nxt) >= 1 and list(nxt["context"])[0] == "hash table"
    reasoner = load("overlay_reasoner")(
        question="What is a hash table?", knowledge_base=kb.build_knowledge_base(),
        adjacency_table=adj.build_table(), llm_selector=sel.build_selector(),
        score_accumulator=acc.build_accumulator(), max_words=6, min_words=3)
    msg = reasoner.build_answer()
    assert msg.text.startswith("A hash table is")
    # answer first, one short line per step; the full tables are the Trace / Trace Table outputs (issue 17)
    assert "**Sources:** FOLDOC:hash table" in msg.text and "\n- **0** " in msg.text
    assert "| candidate |" not in msg.text and "Trace View" in msg.text
    trace = reasoner.build_trace()
    assert trace.data["settings"]["max_words"] == 6
    table = reasoner.build_trace_table()
    assert table["chosen"].sum() == len(trace.data["trace"])
    assert reasoner.status.startswith("answer: ")
    view = load("trace_view")(trace=trace, max_candidates=3)
    full = view.render().text
    assert "**Step 0**" in full and "| candidate |" in full and "*p_adj* = how often" in full
    # Feature nodes set the weights: a feature not connected counts 0
    only_llm = load("overlay_reasoner")(
        question="What is a hash table?", knowledge_base=kb.build_knowledge_base(),
        adjacency_table=adj.build_table(), llm_selector=sel.build_selector(), score_accumulator=acc.build_accumulator(),
        features=[load("feature")(stage="llm", weight=2.0).build_feature()], max_words=6, min_words=3)
    assert only_llm.build_trace().data["weights"] == {"w_adj": 0.0, "w_ctx": 0.0, "w_llm": 2.0, "w_glob": 0.0,
                                                       "w_rel": 0.0}
    assert trace.data["weights"] == {"w_adj": 0.5, "w_ctx": 6.0, "w_llm": 1.0, "w_glob": 1.0, "w_rel": 6.0}


def test_verification_nodes_enqueue_and_apply(env_home):
    from overlay_core.knowledge import make_reasoner

    res = make_reasoner().answer("What is a compiler?", max_words=6)
    item = load("expert_verification")(trace=Data(data=res)).enqueue().data
    applied = load("apply_verdict")(item_id=item["item_id"], reviewer="alice", kind="reject", step=0,
                                    comment="wrong").apply().data
    assert applied["verdict_id"].startswith("vd_")
    assert applied["deltas"] and applied["deltas"][0]["delta"] < 0
    # The JSON form (what an API call sends as the chat input) sets every field.
    req = '{"item_id": "%s", "reviewer": "bob", "kind": "approve"}' % item["item_id"]
    summary = load("apply_verdict")(item_id=req, reviewer="", kind="reject").summary().text
    assert "recorded" in summary and "+1" in summary


def test_apply_verdict_rejects_a_json_list_and_empty_reviewer(env_home):
    from overlay_core.errors import InputError

    with pytest.raises(InputError, match="JSON object"):
        load("apply_verdict")(item_id='["x"]', reviewer="alice").apply()
    with pytest.raises(InputError, match="reviewer"):
        load("apply_verdict")(item_id="it_x", reviewer="  ").apply()


def test_review_chat_node_reject_changes_the_next_answer_and_revert_restores_it(env_home):
    def say(text):
        # a new node per message, as every Playground message is a new run (the accumulator file is read again)
        node = load("review_chat")(
            message=text, knowledge_base=load("knowledge_base")().build_knowledge_base(),
            adjacency_table=load("adjacency_table")().build_table(),
            llm_selector=load("llm_selector")(model_path="").build_selector(),
            score_accumulator=load("score_accumulator")().build_accumulator(), reviewer="alice", session="t1")
        return asyncio.run(node.reply()).text

    def step_word(text, n):
        return next(line for line in text.splitlines() if line.startswith(f"- **{n}** ")).split(" · ")[0]

    first = say("What is a hash table?")
    assert first.startswith("A hash table is") and "`reject N why`" in first
    rej = say("reject 2 wrong word")
    vid = re.search(r"verdict `(vd_[0-9a-f]{16})`", rej).group(1)
    assert "**Rejected** step 2 of `it_" in rej and " -> " in rej and ": -100" in rej
    second = say("What is a hash table?")
    assert step_word(second, 2) != step_word(first, 2) and vid in second
    rev = say("revert")
    assert f"**Reverted** `{vid}`" in rev and ": +100" in rev
    third = say("What is a hash table?")
    assert third.splitlines()[0] == first.splitlines()[0]
    assert "no reviewer: fill in Reviewer" in asyncio.run(load("review_chat")(
        message="approve", knowledge_base=None, adjacency_table=None, llm_selector=None,
        score_accumulator=load("score_accumulator")().build_accumulator(), reviewer="", session="t1").reply()).text
