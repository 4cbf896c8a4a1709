"""Known LangFlow failure classes (issue 7), each shown handled by Overlay or pinned where LangFlow misbehaves.

1. Components not discovered from the components path: the environment variable
   (``LANGFLOW_COMPONENTS_PATH``, here) and the CLI flag (``--components-path``: the session's UI server is
   started with the flag only, see ``ui_support``) each find every Overlay node on their own.
2. A file holding two Component classes: LangFlow rebuilds a node from the *first* class of the file when
   the node's code is sent back without its class name (``/api/v1/custom_component``, what a reload/code
   edit does). Guarded twice: ``tests/test_components.py::test_one_component_class_per_file_with_docs``
   (AST check of every file in ``components/overlay``, not repeated here) and ``scripts/gen_flows.py``,
   which refuses such a file (tested here); and every Overlay file rebuilds as its own class.
3. Tweaks silently ignored: ``/api/v1/run`` answers 200 for tweaks keyed by an unknown node, a type name,
   an unknown field, or a field fed by an edge, and ignores them; the trace's ``Settings`` line is how a
   caller sees which values were used (tweaks that work are tested in ``tests/test_ui.py``).
4. Dict/list inputs arriving as strings: Apply Verdict takes a JSON object typed into its text input;
   a JSON list or broken JSON is refused with a clear message and nothing is written.
5. Flow JSON whose root is not an object, or with an edge to a missing node: clear errors from
   ``lfx run``/``lfx validate`` (exit code 1) and from the server (4xx), which keeps running.

Tests that need the LangFlow server are marked ``browser`` (they share the session's server with
``tests/test_ui.py``); the others run lfx in subprocesses.
"""
# ruff: noqa: F811  (the fixture `langflow_server` is imported from ui_support on purpose)

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ui_support import BIN, QUIET_ENV, ROOT, chat_text, expected_components, langflow_server  # noqa: F401

REASONER = "OverlayReasoner-00001"
VERDICT = "OverlayApplyVerdict-00001"
QUESTION = "What is a hash table?"

TWO_CLASSES = textwrap.dedent('''
    from lfx.custom.custom_component.component import Component
    from lfx.io import MessageTextInput, Output
    from lfx.schema.message import Message


    class FirstThing(Component):
        display_name = "First Thing"
        description = "The first class of the file."
        icon = "sigma"
        name = "FirstThing"
        inputs = [MessageTextInput(name="text", display_name="Text", value="a", info="Any text.")]
        outputs = [Output(display_name="Out", name="out", method="build")]

        def build(self) -> Message:
            return Message(text="first:" + self.text)


    class SecondThing(Component):
        display_name = "Second Thing"
        description = "The second class of the same file."
        icon = "sigma"
        name = "SecondThing"
        inputs = [MessageTextInput(name="text", display_name="Text", value="b", info="Any text.")]
        outputs = [Output(display_name="Out", name="out", method="build")]

        def build(self) -> Message:
            return Message(text="second:" + self.text)
''')


def _settings(text: str) -> dict[str, str]:
    m = re.search(r"\*\*Settings:\*\* (.*)", text)
    assert m, f"no Settings line in:\n{text[:1500]}"
    return dict(kv.split("=", 1) for kv in m.group(1).split(", "))


def _run_all(cmds: list[tuple[list[str], dict]], timeout: float = 600) -> list[subprocess.CompletedProcess]:
    """Run CLI commands concurrently (each pays lfx's ~10-40 s import time; in parallel they overlap)."""
    def one(cmd_env):
        cmd, env = cmd_env
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env=dict(os.environ, **QUIET_ENV, **env))
    with ThreadPoolExecutor(len(cmds)) as pool:
        return list(pool.map(one, cmds))


# --------------------------------------------------------------------------------------------------------------
# 1. Discovery: env var and CLI flag
# --------------------------------------------------------------------------------------------------------------

DISCOVER = textwrap.dedent('''
    import json, sys
    from lfx.log.logger import configure
    configure(log_level="WARNING", output_file=sys.stderr)  # as the server's log shows it
    from lfx.services.deps import get_settings_service
    from lfx.interface.components import _components_path_extension_paths
    from lfx.extension.loader._orchestrator import discover_inline_bundles

    settings = get_settings_service().settings
    results = discover_inline_bundles(_components_path_extension_paths(get_settings_service()))
    print(json.dumps({"components_path": settings.components_path,
                      "bundles": {r.bundle: sorted(c.class_name for c in r.components) for r in results if r.bundle},
                      "errors": [str(e) for r in results for e in r.errors]}))
''')


def test_components_discovered_from_the_env_var(tmp_path):
    """LANGFLOW_COMPONENTS_PATH alone (no CLI flag): the settings pick it up and the loader LangFlow's server
    uses for components_path folders finds every Overlay class in the 'overlay' bundle (= sidebar category)."""
    missing = tmp_path / "no-such-components"
    env = {"LANGFLOW_COMPONENTS_PATH": f"{ROOT / 'components'}{os.pathsep}{missing}",
           "LANGFLOW_CONFIG_DIR": str(tmp_path / "lf")}
    (p,) = _run_all([([sys.executable, "-c", DISCOVER], env)])
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert str(ROOT / "components") in out["components_path"]
    assert out["bundles"].get("overlay") == sorted(c.class_name for c in expected_components()), out
    assert not out["errors"], out["errors"]
    # A path that does not exist is skipped with a warning naming it (not silently).
    assert f"Skipping non-existent components path: {missing}" in p.stderr


@pytest.mark.browser
def test_components_discovered_from_the_cli_flag(langflow_server):
    """The session's server got the components through ``--components-path`` only.

    ``ui_support`` starts ``scripts/ui.sh`` with ``LANGFLOW_COMPONENTS_PATH=""``; ui.sh must then *unset* the
    variable (LangFlow 1.13 reads an empty value as the path '' and dies at startup), so the running
    server has no such variable and only the flag on its command line."""
    assert langflow_server.env["LANGFLOW_COMPONENTS_PATH"] == ""
    pid = langflow_server.proc.pid  # ui.sh execs langflow: same pid
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert not [e for e in environ if e.startswith(b"LANGFLOW_COMPONENTS_PATH=")]
    assert b"--components-path" in cmdline and str(ROOT / "components").encode() in cmdline
    all_types = langflow_server.get("/api/v1/all").json()
    overlay = all_types.get("overlay", {})
    expected = {f"ext:overlay:{c.name}@extra": c for c in expected_components()}
    assert set(overlay) == set(expected)
    for key, c in expected.items():
        assert overlay[key]["display_name"] == c.display_name
        assert overlay[key]["template"]["code"]["value"] == c.file.read_text(), f"{key}: code differs from {c.file}"


# --------------------------------------------------------------------------------------------------------------
# 2. Two Component classes in one file
# --------------------------------------------------------------------------------------------------------------

def test_gen_flows_refuses_a_file_with_two_component_classes(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("gen_flows_under_test", ROOT / "scripts" / "gen_flows.py")
    gen_flows = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_flows)
    (tmp_path / "two.py").write_text(TWO_CLASSES)
    monkeypatch.setattr(gen_flows, "COMPONENTS", tmp_path)
    with pytest.raises(SystemExit, match=r"two\.py: expected exactly one Component class, found "
                                         r"\['FirstThing', 'SecondThing'\]"):
        gen_flows.component_classes()


@pytest.mark.browser
def test_reload_builds_the_first_class_of_a_file_and_each_overlay_file_is_safe(langflow_server):
    """What a node reload / code edit posts: the code, optionally the node (whose metadata names the class)."""
    def rebuild(code: str, class_name: str | None = None) -> dict:
        body = {"code": code}
        if class_name:
            body["frontend_node"] = {"metadata": {"component_class_name": class_name}}
        r = langflow_server.post("/api/v1/custom_component", json=body, timeout=120)
        assert r.status_code == 200, r.text[:2000]
        return r.json()

    # The failure class: without the class name, a SecondThing node comes back as FirstThing.
    assert rebuild(TWO_CLASSES)["data"]["display_name"] == "First Thing"
    assert rebuild(TWO_CLASSES, "SecondThing")["data"]["display_name"] == "Second Thing"
    # Overlay's files hold one class each, so even the class-less rebuild gives the right node.
    for c in expected_components():
        got = rebuild(c.file.read_text())
        assert (got["type"], got["data"]["display_name"]) == (c.class_name, c.display_name), c.file.name


# --------------------------------------------------------------------------------------------------------------
# 3. Tweaks LangFlow ignores without an error
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.parametrize("ignored", [
    {"OverlayReasoner-09999": {"max_words": 5}},          # no such node id
    {"OverlayReasoner": {"max_words": 5}},                # the node type is not a key /api/v1/run accepts
    {REASONER: {"max_word": 5}},                          # no such field (typo)
], ids=["unknown-node-id", "type-name-key", "unknown-field"])
def test_ignored_tweaks_answer_200_and_show_in_the_trace_settings(langflow_server, ignored):
    tweaks = {REASONER: {"n_candidates": 7, "max_words": 30}}
    for node, fields in ignored.items():
        tweaks.setdefault(node, {}).update(fields)
    r = langflow_server.run("overlay-answer", QUESTION, tweaks=tweaks)
    assert r.status_code == 200, r.text[:2000]
    s = _settings(chat_text(r.json()))
    assert s["n_candidates"] == "7", "the valid tweak in the same request must apply"
    assert s["max_words"] == "30", f"LangFlow now applies {ignored}: update docs/ui.md and this test"


@pytest.mark.browser
def test_a_tweak_on_a_field_fed_by_an_edge_is_ignored(langflow_server):
    r = langflow_server.run("overlay-answer", QUESTION,
                            tweaks={REASONER: {"question": "What is TCP?", "n_candidates": 7}})
    assert r.status_code == 200, r.text[:2000]
    text = chat_text(r.json())
    assert _settings(text)["n_candidates"] == "7"
    assert f"**Question:** {QUESTION}" in text, "the edge from Chat Input wins over the tweak"


@pytest.mark.browser
def test_tweak_values_sent_as_strings_are_converted(langflow_server):
    r = langflow_server.run("overlay-answer", QUESTION, tweaks={REASONER: {"max_words": "5", "n_candidates": "3"}})
    assert r.status_code == 200, r.text[:2000]
    s = _settings(chat_text(r.json()))
    assert (s["max_words"], s["n_candidates"]) == ("5", "3")


# --------------------------------------------------------------------------------------------------------------
# 4. Dict/list inputs arriving as strings (Apply Verdict)
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.browser
def test_apply_verdict_takes_a_json_object_string_and_refuses_a_list(langflow_server, home_copy):
    from overlay_core.verification import ReviewStore

    home = {"home": str(home_copy)}  # a private state folder: the verdict must not change other tests' answers
    queued = langflow_server.run("overlay-answer-for-review", "What is TCP?", tweaks={**home})
    assert queued.status_code == 200, queued.text[:2000]
    item = re.search(r"Queued for review\*\* as `(\S+)`", chat_text(queued.json())).group(1)
    store = ReviewStore(home_copy / "reviews.sqlite3")
    assert store.verdicts(item) == []

    obj = {"item_id": item, "reviewer": "carol", "kind": "approve", "step": 0, "comment": "fine start"}
    ok = langflow_server.run("overlay-review", json.dumps(obj), tweaks={VERDICT: home})
    assert ok.status_code == 200, ok.text[:2000]
    assert re.match(r"Verdict \S+ recorded", chat_text(ok.json()))
    (v,) = store.verdicts(item)
    assert (v.reviewer, v.kind, v.step, v.comment) == ("carol", "approve", 0, "fine start")

    for bad, message in [(json.dumps([item, "carol", "reject"]), "must be a JSON object, got a JSON list"),
                         ('{"item_id": "' + item + '", reviewer: carol}', "is not valid JSON")]:
        r = langflow_server.run("overlay-review", bad, tweaks={VERDICT: home})
        assert r.status_code >= 400
        detail = r.text
        assert message in detail and "Review Item ID" in detail, detail[:2000]
        assert "Traceback" not in detail
    assert len(store.verdicts(item)) == 1, "a refused verdict must not be written"
    assert langflow_server.alive()


# --------------------------------------------------------------------------------------------------------------
# 5. Malformed flow JSON
# --------------------------------------------------------------------------------------------------------------

def _bad_flows(tmp_path: Path) -> tuple[Path, Path, str]:
    root_list = tmp_path / "root_is_a_list.json"
    root_list.write_text("[1, 2, 3]\n")
    flow = json.loads((ROOT / "flows" / "overlay_answer.json").read_text())
    flow["data"]["edges"][0]["target"] = missing = "OverlayMissing-00009"
    dangling = tmp_path / "edge_to_missing_node.json"
    dangling.write_text(json.dumps(flow))
    return root_list, dangling, missing


def test_lfx_run_and_validate_report_malformed_flows_clearly(tmp_path, home_copy):
    root_list, dangling, missing = _bad_flows(tmp_path)
    lfx = str(BIN / "lfx")
    env = {"OVERLAY_HOME": str(home_copy)}
    run_list, run_dangling, validate_dangling = _run_all([
        ([lfx, "run", "--format", "json", str(root_list), QUESTION], env),
        ([lfx, "run", "--format", "json", str(dangling), QUESTION], env),
        ([lfx, "validate", str(dangling)], env),
    ])
    for p in (run_list, run_dangling):
        assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
        assert "Traceback" not in p.stdout + p.stderr
    assert json.loads(run_list.stdout) == {"success": False, "type": "error", "exception_type": "TypeError",
                                           "exception_message": "flow JSON must be a JSON object, got list"}
    err = json.loads(run_dangling.stdout)
    assert err["success"] is False and err["exception_message"] == f"Vertex {missing} not found"
    assert validate_dangling.returncode == 1
    out = " ".join((validate_dangling.stdout + validate_dangling.stderr).split())
    assert f"Edge references non-existent node(s): source='ChatInput-00001', target='{missing}'" in out, out[-3000:]


def test_lfx_names_no_node_for_a_syntax_error_in_its_code_and_check_flow_does(tmp_path, home_copy):
    """lfx parses each node's code while it builds the graph, before any node (so any Overlay check) runs: `lfx run`
    reports the bare SyntaxError and `lfx validate` passes the flow. `overlay check-flow` names node, id and field."""
    flow = json.loads((ROOT / "flows" / "overlay_answer.json").read_text())
    (node,) = [n for n in flow["data"]["nodes"] if n["data"]["type"] == "OverlayReasoner"]
    code = node["data"]["node"]["template"]["code"]
    code["value"] = code["value"].replace("        r = self._run()\n", "        r = self._run(\n", 1)
    broken = tmp_path / "syntax_error.json"
    broken.write_text(json.dumps(flow))
    run, validate, check = _run_all([
        ([str(BIN / "lfx"), "run", "--format", "json", str(broken), QUESTION], {"OVERLAY_HOME": str(home_copy)}),
        ([str(BIN / "lfx"), "validate", str(broken)], {}),
        ([str(BIN / "overlay"), "check-flow", str(broken)], {}),
    ])
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    err = json.loads(run.stdout)
    assert err["exception_message"].startswith("Invalid Python code: '(' was never closed (<unknown>, line ")
    assert "Reasoner" not in run.stdout
    assert validate.returncode == 0, validate.stdout[-2000:] + validate.stderr[-2000:]
    assert check.returncode == 1
    assert check.stdout.startswith(f"{broken}: node 'Overlay Reasoner' (OverlayReasoner-00001), field code: line ")


@pytest.mark.xfail(strict=True, reason="lfx 1.13 `validate` crashes on a non-object root: AttributeError "
                                       "'list' object has no attribute 'keys' (lfx/cli/validation/structural.py:57)")
def test_lfx_validate_reports_a_non_object_root_clearly(tmp_path):
    root_list, _, _ = _bad_flows(tmp_path)
    (p,) = _run_all([([str(BIN / "lfx"), "validate", str(root_list)], {})])
    assert p.returncode == 1
    assert "Traceback" not in p.stdout + p.stderr and "AttributeError" not in p.stdout + p.stderr


@pytest.mark.browser
def test_server_refuses_malformed_flows_and_keeps_running(langflow_server, tmp_path):
    root_list, dangling, missing = _bad_flows(tmp_path)
    r = langflow_server.post("/api/v1/flows/upload/", files={"file": root_list.open("rb")})
    assert r.status_code == 422 and "expected an object" in r.json()["detail"], r.text[:2000]

    # Upload does not check edges (201): the broken flow is stored, and running it is a clear 404.
    flow = json.loads(dangling.read_text())
    flow.update(id="3f9b7c1e-5d2a-4e8b-9c6d-0a1b2c3d4e5f", name="Overlay Broken Edge", endpoint_name="overlay-broken-edge")
    dangling.write_text(json.dumps(flow))
    up = langflow_server.post("/api/v1/flows/upload/", files={"file": dangling.open("rb")})
    assert up.status_code == 201, up.text[:2000]
    try:
        run = langflow_server.run("overlay-broken-edge", QUESTION)
        assert run.status_code == 404 and run.json()["detail"] == f"Vertex {missing} not found", run.text[:2000]
    finally:  # keep the server's flow list as the UI tests expect it
        langflow_server.delete(f"/api/v1/flows/{flow['id']}")
    assert langflow_server.alive()


def test_inspect_flow_refuses_a_text_file_in_one_line_over_the_api(langflow_server, tmp_path):
    """The inspect flow is reachable by anyone with the key: a wrong path gets one line — no file contents,
    no server traceback."""
    secret = tmp_path / "notes.safetensors"
    secret.write_text("root:x:0:0:secret-password-line:/root:/bin/bash\n")
    r = langflow_server.run("overlay-inspect", str(secret))
    assert r.status_code >= 400
    detail = r.text
    assert "is not a safetensors file" in detail and "secret-password" not in detail, detail[:2000]
    assert "Traceback" not in detail and 'File "' not in detail, detail[:2000]
    assert langflow_server.alive()
