"""Saved flows: generated from the components (no drift), valid, and runnable through lfx's own engine."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"
BIN = Path(sys.executable).parent


def test_flow_files_are_up_to_date():
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_flows.py"), "--check"], capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]


@pytest.mark.parametrize("name", ["overlay_answer", "overlay_answer_tool", "overlay_answer_for_review", "overlay_review",
                                  "overlay_expert_chat", "overlay_build_knowledge", "overlay_inspect", "overlay_lab"])
def test_flow_is_well_formed(name):
    flow = json.loads((FLOWS / f"{name}.json").read_text())
    nodes = {n["id"]: n for n in flow["data"]["nodes"]}
    assert flow["id"] and flow["name"] and nodes
    for n in nodes.values():
        assert n["type"] == "genericNode" and n["data"]["node"]["template"]["code"]["value"]
    for e in flow["data"]["edges"]:
        assert e["source"] in nodes and e["target"] in nodes
    p = subprocess.run([str(BIN / "lfx"), "validate", str(FLOWS / f"{name}.json")], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]


def _run(flow: str | Path, question: str, home: Path, tweaks=None) -> dict:
    import asyncio

    from lfx.load import arun_flow_from_json

    os.environ["OVERLAY_HOME"] = str(home)
    res = asyncio.run(arun_flow_from_json(str(FLOWS / flow), question, tweaks=tweaks or {}))
    return res[0].outputs[0].results["message"].text


def test_answer_flow_runs_and_tweaks_change_node_inputs(env_home):
    text = _run("overlay_answer.json", "What is a hash table?", env_home)
    assert text.startswith("A hash table is")
    assert "\n- **0** " in text and "**Sources:** FOLDOC:hash table" in text and "| candidate |" not in text
    short = _run("overlay_answer.json", "What is a hash table?", env_home,
                 tweaks={"OverlayReasoner-00001": {"max_words": 3, "block_ngram": 2}})
    assert "max_words=3" in short and "block_ngram=2" in short
    assert short.split("\n")[0] != text.split("\n")[0]


def _node(flow: dict, node_id: str) -> dict:
    return next(n for n in flow["data"]["nodes"] if n["id"] == node_id)


def _kinds(reply: str) -> list[str]:
    """The candidate sources an answer-first reply names on its "**Candidates from:**" line."""
    line = next((ln for ln in reply.splitlines() if ln.startswith("**Candidates from:**")), "")
    return [k.strip() for k in line.removeprefix("**Candidates from:**").split(",") if k.strip()]


def test_stage_nodes_the_default_ones_answer_as_the_library_and_editing_them_changes_the_candidates(env_home, tmp_path):
    from overlay_core.knowledge import make_reasoner

    q = "What is a hash table?"
    default = make_reasoner(env_home).answer(q)
    text = _run("overlay_answer.json", q, env_home)
    assert text.split("\n")[0] == default["answer"]  # the saved stage nodes are exactly the built-in stages
    assert "corpus" in _kinds(text)  # the reply's "**Candidates from:**" line
    flow = json.loads((FLOWS / "overlay_answer.json").read_text())
    # delete the corpus-successor source node (and its edge), as a person would on the canvas
    corpus = next(n["id"] for n in flow["data"]["nodes"] if n["id"].startswith("OverlayCandidateSource")
                  and n["data"]["node"]["template"]["stage"]["value"] == "corpus")
    flow["data"]["nodes"] = [n for n in flow["data"]["nodes"] if n["id"] != corpus]
    flow["data"]["edges"] = [e for e in flow["data"]["edges"] if e["source"] != corpus]
    # add a guard node that bans the answer's first generated word (a copy of a guard node, with its edge)
    banned = default["answer_words"][len(default["prefix"])]
    new_id = "OverlayGuard-00099"
    node = json.loads(json.dumps(_node(flow, "OverlayGuard-00001")).replace("OverlayGuard-00001", new_id))
    node["data"]["node"]["template"]["stage"]["value"] = "ban-words"
    node["data"]["node"]["template"]["words"]["value"] = banned
    node["data"]["node"]["template"]["label"]["value"] = "my banned words"
    edge = next(e for e in flow["data"]["edges"] if e["source"] == "OverlayGuard-00001")
    flow["data"]["nodes"].append(node)
    flow["data"]["edges"].append(json.loads(json.dumps(edge).replace("OverlayGuard-00001", new_id)))
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(flow))
    changed = _run(edited, q, env_home)
    assert "corpus" not in _kinds(changed)
    assert banned.casefold() not in [w.casefold() for w in changed.split("\n")[0].split()[len(default["prefix"]):]]
    # the same through tweaks (as /api/v1/run takes them): a guard node turned into a ban-words rule
    tweaked = _run("overlay_answer.json", q, env_home, tweaks={"OverlayGuard-00001": {
        "stage": "ban-words", "words": banned, "label": "my banned words"}, "OverlayFeature-00002": {"weight": 4.0}})
    assert tweaked.split("\n")[0] != default["answer"]
    assert "w_ctx=4.000" in tweaked  # OverlayFeature-00002 is passage support (docs/ui.md's example)


def test_lfx_run_cli_prints_answer_and_trace(env_home):
    env = dict(os.environ, OVERLAY_HOME=str(env_home))
    p = subprocess.run([str(BIN / "lfx"), "run", "--format", "text", str(FLOWS / "overlay_answer.json"),
                        "What is a compiler?"], capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.startswith("A compiler is") and "\n- **0** " in p.stdout


def test_review_flow_applies_a_json_verdict(env_home):
    from overlay_core.knowledge import make_reasoner, state_paths
    from overlay_core.verification import ReviewStore

    res = make_reasoner(env_home).answer("What is TCP?", max_words=5)
    item = ReviewStore(state_paths(env_home).reviews).enqueue(
        flow="t", question=res["question"], answer=res["answer"], trace=res, model_fingerprint="m", index_fingerprint="i")
    text = _run("overlay_review.json", json.dumps({"item_id": item, "reviewer": "carol", "kind": "reject", "step": 0}),
                env_home)
    assert "recorded" in text and "-100" in text


def test_expert_chat_flow_a_typed_reject_reaches_the_next_run_in_the_same_process(env_home):
    # one process, as a LangFlow server: the Score Accumulator node must read the file the verdict was written to
    tweaks = {"OverlayReviewChat-00001": {"reviewer": "dana", "session": "flow-test"}}
    first = _run("overlay_expert_chat.json", "What is a hash table?", env_home, tweaks)
    assert first.startswith("A hash table is") and "**Steps**" in first
    rej = _run("overlay_expert_chat.json", "reject 2 wrong word", env_home, tweaks)
    vid = re.search(r"verdict `(vd_[0-9a-f]{16})` by dana", rej).group(1)
    second = _run("overlay_expert_chat.json", "What is a hash table?", env_home, tweaks)
    assert second.splitlines()[0] != first.splitlines()[0] and vid in second


def test_inspect_flow_reports_the_gguf_model(tmp_path, monkeypatch):
    import asyncio

    from lfx.load import arun_flow_from_json

    from overlay_core.selector import default_model_path

    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path))
    res = asyncio.run(arun_flow_from_json(str(FLOWS / "overlay_inspect.json"), str(default_model_path())))
    text = res[0].outputs[0].results["message"].text
    assert "What the file does not say" in text and "n_heads" in text
    assert (tmp_path / "inspect" / default_model_path().name / "tensor_map.png").stat().st_size > 10_000


def _edit(flow: dict, node_type: str, old: str, new: str) -> None:
    (node,) = [n for n in flow["data"]["nodes"] if n["data"]["type"] == node_type]
    code = node["data"]["node"]["template"]["code"]
    assert old in code["value"]
    code["value"] = code["value"].replace(old, new, 1)


def test_a_node_whose_saved_code_was_edited_says_so(env_home, tmp_path):
    """A saved flow runs its own copy of each node's code: an edited reasoner must not answer silently, nor a
    reasoner fed by an edited selector (only the selector's status and the log would say so)."""
    flow = json.loads((FLOWS / "overlay_answer.json").read_text())
    _edit(flow, "OverlayReasoner", "        r = self._run()\n", "        r = self._run()  # edited\n")
    _edit(flow, "OverlayLLMSelector", "        return sel\n", "        return sel  # edited\n")
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(flow))
    env = dict(os.environ, OVERLAY_HOME=str(env_home))
    p = subprocess.run([str(BIN / "lfx"), "run", "--format", "text", str(edited), "What is TCP?"],
                       capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    head = p.stdout.split("\n\n")
    assert head[0].startswith("**Warning:** node 'LLM Selector' runs code that differs from the installed "
                              "component"), p.stdout[:1000]
    assert "llm_selector.py (1 changed line)" in head[0]
    assert head[1].startswith("**Warning:** node 'Overlay Reasoner' runs code that differs")
    assert "overlay_reasoner.py (1 changed line)" in head[1] and "TCP is" in head[2]


def test_check_flow_names_the_node_of_a_syntax_error_and_of_an_edit(tmp_path):
    """lfx run reports a syntax error in a node's code as 'Invalid Python code: ... line N' (no node, no field) and
    lfx validate passes it: overlay check-flow names the node, its id and the field."""
    flow = json.loads((FLOWS / "overlay_answer.json").read_text())
    _edit(flow, "OverlayReasoner", "        r = self._run()\n", "        r = self._run(\n")
    _edit(flow, "ChatInput", "        return message\n", "        return message)\n")  # LangFlow's own node too
    _edit(flow, "OverlayKnowledgeBase", "        return kb\n", "        return kb  # edited\n")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(flow))
    overlay = [str(BIN / "overlay"), "check-flow"]
    p = subprocess.run([*overlay, str(FLOWS / "overlay_answer.json"), str(broken)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    lines = {line.split(" (")[0]: line for line in p.stdout.splitlines()}
    assert set(lines) == {f"{broken}: node '{n}'" for n in ("Chat Input", "Knowledge Base", "Overlay Reasoner")}
    assert "(ChatInput-00001), field code: line " in lines[f"{broken}: node 'Chat Input'"]
    assert "unmatched ')'" in lines[f"{broken}: node 'Chat Input'"]
    assert "(OverlayKnowledgeBase-00001) runs code that differs" in lines[f"{broken}: node 'Knowledge Base'"]
    assert "(1 changed line)" in lines[f"{broken}: node 'Knowledge Base'"]
    assert re.search(r"\(OverlayReasoner-00001\), field code: line \d+: ", lines[f"{broken}: node 'Overlay Reasoner'"])
    assert "'(' was never closed" in lines[f"{broken}: node 'Overlay Reasoner'"]
    assert "overlay_answer.json: every node's code compiles and every Overlay node is as installed" in p.stderr
    for args, message in [([str(tmp_path / "nope.json")], "does not exist"), ([str(tmp_path)], "is a folder"),
                          ([str(FLOWS.parent / "README.md")], "is not JSON")]:
        p = subprocess.run([*overlay, *args], capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_code_drift_is_none_for_the_installed_code_and_names_the_node_otherwise():
    from overlay_core.component_code import code_drift

    src = (ROOT / "components" / "overlay" / "trace_view.py").read_text()
    assert code_drift(src, "OverlayTraceView", "Trace View") is None
    assert code_drift(src.replace("\n", "\r\n"), "OverlayTraceView") is None  # line endings are not an edit
    msg = code_drift(src + "\nX = 1\nY = 2\n", "OverlayTraceView", "Trace View")
    assert msg.startswith("node 'Trace View' runs code that differs") and "(3 changed lines)" in msg
    assert code_drift(src, "NotAnOverlayNode") is None and code_drift(None, "OverlayTraceView") is None


def test_edited_nodes_names_every_edited_overlay_node_of_the_graph():
    from types import SimpleNamespace

    from overlay_core.component_code import edited_nodes

    src = (ROOT / "components" / "overlay" / "trace_view.py").read_text()

    def vertex(type_, name, code):
        node = {"display_name": name, "template": {"code": {"value": code}}}
        return SimpleNamespace(data={"type": type_, "node": node})

    graph = SimpleNamespace(vertices=[vertex("OverlayTraceView", "Trace View", src),
                                      vertex("OverlayTraceView", "Second View", src + "\nX = 1\n"),
                                      vertex("ChatInput", "Chat Input", "class ChatInput: pass\n"),
                                      SimpleNamespace(data=None)])
    me = SimpleNamespace(_vertex=SimpleNamespace(graph=graph))
    (msg,) = edited_nodes(me)
    assert msg.startswith("node 'Second View' runs code that differs") and "trace_view.py (2 changed lines)" in msg
    assert edited_nodes(SimpleNamespace()) == []  # a component built outside a graph
