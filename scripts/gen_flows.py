"""Generate the saved flows in ``flows/`` from the component classes (never edit the JSON by hand).

Usage: ``python scripts/gen_flows.py`` (writes), ``python scripts/gen_flows.py --check`` (exit 1 on drift).

Nodes are built with lfx's own template builder (``build_custom_component_template``) and wired with
``lfx.graph.flow_builder`` (which type-checks every edge), exactly what the LangFlow UI does; ids are stable
so regenerating gives byte-identical files.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ROOT / "components" / "overlay"
FLOWS = ROOT / "flows"
_NS = uuid.UUID("6f0a4c2e-6b0e-4c55-9a59-0c1d5e1f7a10")


def _flow_id(name: str) -> str:
    # LangFlow rejects UUID5 flow ids; keep the deterministic bytes but mark them version 4.
    return str(uuid.UUID(bytes=uuid.uuid5(_NS, name).bytes, version=4))


def component_classes() -> dict[str, type]:
    """name -> Component class, for every file in components/overlay (one class per file)."""
    from lfx.custom.custom_component.component import Component

    out = {}
    for path in sorted(COMPONENTS.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"overlay_components.{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        classes = [v for v in vars(mod).values()
                   if isinstance(v, type) and issubclass(v, Component) and v is not Component and v.__module__ == mod.__name__]
        if len(classes) != 1:
            raise SystemExit(f"{path}: expected exactly one Component class, found {[c.__name__ for c in classes]}")
        out[classes[0].name] = (classes[0], path)
    return out


def registry() -> dict[str, dict]:
    from lfx.custom.utils import build_custom_component_template
    from lfx.graph.flow_builder.builder import load_local_registry

    reg = dict(load_local_registry())
    for name, (cls, path) in component_classes().items():
        template, _ = build_custom_component_template(cls(_code=path.read_text()))
        template = json.loads(json.dumps(template, default=str))
        md = template.setdefault("metadata", {})
        md.pop("module", None)  # environment-specific
        md.pop("dependencies", None)
        reg[name] = template
    return reg


def _build(reg, name: str, description: str, nodes: dict[str, str], config: dict, edges: list[tuple],
           columns: list[list[str]] | None = None, minimized: tuple[str, ...] = ()) -> dict:
    from lfx.graph.flow_builder import add_component, add_connection, configure_component, empty_flow, layout_flow

    flow = empty_flow(name=name, description=description)
    for node_id, ctype in nodes.items():
        add_component(flow, ctype, reg, component_id=node_id)
    for node_id, params in config.items():
        configure_component(flow, node_id, params)
    for src, out, tgt, inp in edges:
        add_connection(flow, src, out, tgt, inp)
    for node_id in minimized:
        _minimize(flow, node_id)
    if columns:
        _stack(flow, columns)
    else:
        layout_flow(flow)
        for node in flow["data"]["nodes"]:
            node["position"] = {k: round(v) for k, v in node["position"].items()}
    flow["id"] = _flow_id(name)
    flow["endpoint_name"] = name.lower().replace(" ", "-")
    flow["is_component"] = False
    return flow


#: Height of each node type as LangFlow 1.13 draws it at zoom 1 (px; 320 px wide), measured in headless Chromium
#: (``tests/test_ui.py`` checks every drawn node against it). A minimized node is drawn as its title bar.
DRAWN_HEIGHT = {"ChatInput": 210, "ChatOutput": 170, "OverlayKnowledgeBase": 280, "OverlayAdjacencyTable": 220,
                "OverlayLLMSelector": 320, "OverlayScoreAccumulator": 220, "OverlayReasoner": 1440,
                "OverlayFeature": 340, "OverlayCandidateSource": 340, "OverlayGuard": 340,
                "OverlayExpertVerification": 230, "OverlayToolReply": 220, "OverlayReviewChat": 550}
MINIMIZED_HEIGHT = 80
_WIDTH, _COLUMN_GAP, _ROW_GAP = 320, 80, 40


def _stack(flow: dict, columns: list[list[str]]) -> None:
    """Place the nodes column by column, left to right, each column's nodes one under another with their drawn
    height (:data:`DRAWN_HEIGHT`) and a small gap between: LangFlow opens a flow zoomed to fit all of it (it does not
    keep a saved viewport), so the tighter the box, the larger the text (lfx's layout left ~560 px per row and opened
    the answer flow at 30 %)."""
    nodes = {n["id"]: n for n in flow["data"]["nodes"]}
    placed = [node_id for col in columns for node_id in col]
    assert sorted(placed) == sorted(nodes), f"columns place {sorted(placed)}, the flow has {sorted(nodes)}"
    for i, col in enumerate(columns):
        y = 0
        for node_id in col:
            node = nodes[node_id]
            node["position"] = {"x": i * (_WIDTH + _COLUMN_GAP), "y": y}
            shown = node["data"].get("showNode", True)
            y += (DRAWN_HEIGHT[node["data"]["type"]] if shown else MINIMIZED_HEIGHT) + _ROW_GAP


def _minimize(flow: dict, node_id: str) -> None:
    """Save ``node_id`` minimized (its title bar and handle: LangFlow's node toolbar → Expand shows its fields), its
    title naming its stage ("Guard: keep-sentence") so the minimized nodes tell apart."""
    data = next(n for n in flow["data"]["nodes"] if n["id"] == node_id)["data"]
    data["showNode"] = False
    node = data["node"]
    node["display_name"] = node["template"]["stage"]["value"]


#: The MCP tool name of the answer tool flow (``action_name``; LangFlow's project MCP server lists it so).
TOOL_NAME = "overlay_answer"


def _as_tool(flow: dict, reasoner: str) -> dict:
    """Make ``flow`` an MCP tool whose arguments are the question and the reasoner's main settings.

    LangFlow builds a flow tool's input schema from the fields of the flow's *input* nodes
    (``langflow.helpers.flow.json_schema_from_flow``) and turns the arguments back into tweaks of those nodes
    (``get_flow_input_tweaks``); a node counts as an input when its saved ``is_input`` is true. So the reasoner is
    marked ``is_input`` (it still takes its question from Chat Input: a run only feeds the chat text to Chat Input
    nodes) and its main settings — the ones not under "advanced" — get ``api_editable`` (the API toggle of the node's
    Inspector), which makes them, with Chat Input's ``input_value``, the whole schema: no handle, no preview field.
    Each such field's tooltip, the argument's description, also gets its range and default (the schema has no
    bounds); Chat Input's ``input_value`` (the question argument) says it is the question. The flow is saved ticked as a tool (``mcp_enabled``) under :data:`TOOL_NAME`.
    """
    from overlay_core.settings import ReasonerSettings, specs
    from overlay_core.tool_reply import MAIN_SETTINGS

    node = next(n for n in flow["data"]["nodes"] if n["id"] == reasoner)["data"]["node"]
    node["is_input"] = True
    template = node["template"]
    for s in specs(ReasonerSettings):
        if s.name not in MAIN_SETTINGS:
            continue
        field = template[s.input]
        field["api_editable"] = True
        lo, hi = (f"{b:g}" for b in s.bounds)
        field["info"] = f"{field['info']} ({s.type.__name__} {lo}-{hi}; default {s.default:g})"
    chat_in = next(n for n in flow["data"]["nodes"] if n["data"]["type"] == "ChatInput")["data"]["node"]
    chat_in["template"]["input_value"]["info"] = "The question, e.g. 'What is a hash table?'."
    flow.update(mcp_enabled=True, action_name=TOOL_NAME,
                action_description="Answer a question from Overlay's knowledge base (FOLDOC by default), word by "
                                   "word with a traced reasoner. Returns the answer, its sources and the settings "
                                   "used. Optional arguments change the main settings for this call, e.g. "
                                   "max_words (answer length) or top_k (passages retrieved).")
    return flow


def flows() -> dict[str, dict]:
    from overlay_core.stages.specs import default_feature_specs, default_guard_specs, default_source_specs

    reg = registry()
    ci, co = "ChatInput-00001", "ChatOutput-00001"
    kb, adj, sel, acc, rsn = ("OverlayKnowledgeBase-00001", "OverlayAdjacencyTable-00001", "OverlayLLMSelector-00001",
                              "OverlayScoreAccumulator-00001", "OverlayReasoner-00001")
    answer_nodes = {ci: "ChatInput", kb: "OverlayKnowledgeBase", adj: "OverlayAdjacencyTable",
                    sel: "OverlayLLMSelector", acc: "OverlayScoreAccumulator", rsn: "OverlayReasoner"}
    answer_edges = [(ci, "message", rsn, "question"), (kb, "knowledge_base", rsn, "knowledge_base"),
                    (adj, "adjacency_table", rsn, "adjacency_table"), (sel, "llm_selector", rsn, "llm_selector"),
                    (acc, "score_accumulator", rsn, "score_accumulator")]
    # every built-in candidate source and guard as its own node (delete one to switch it off; add your own)
    stage_config = {}
    for kind, specs, out_name, in_name in (("OverlayCandidateSource", default_source_specs(), "candidate_source",
                                            "candidate_sources"),
                                           ("OverlayGuard", default_guard_specs(), "guard", "guards"),
                                           ("OverlayFeature", default_feature_specs(), "feature", "features")):
        for i, spec in enumerate(specs, 1):
            node = f"{kind}-{i:05d}"
            answer_nodes[node] = kind
            stage_config[node] = {"stage": spec.stage, **({"weight": spec.weight} if hasattr(spec, "weight") else {})}
            answer_edges.append((node, out_name, rsn, in_name))
    # columns: Chat Input over the services, the candidate sources and guards (minimized: 12 title
    # bars), the features with their weights in two columns, the reasoner, then what reads its output
    stage_nodes = [n for n in answer_nodes if n.startswith(("OverlayCandidateSource", "OverlayGuard"))]
    features = [n for n in answer_nodes if n.startswith("OverlayFeature")]
    answer_columns = [[ci, kb, adj, sel, acc], stage_nodes, features[:3], features[3:], [rsn]]
    ev = "OverlayExpertVerification-00001"
    tr = "OverlayToolReply-00001"
    out = {}
    out["overlay_answer"] = _build(
        reg, "Overlay Answer", "Ask a question: Overlay answers word by word from FOLDOC and shows the trace.",
        {**answer_nodes, co: "ChatOutput"}, stage_config, answer_edges + [(rsn, "answer", co, "input_value")],
        answer_columns + [[co]], stage_nodes)
    out["overlay_answer_tool"] = _as_tool(_build(
        reg, "Overlay Answer Tool", "The answer flow for MCP clients and agents: ask a question, optionally change "
        "the main settings, get the answer with its sources and the settings used (no trace tables).",
        {**answer_nodes, tr: "OverlayToolReply", co: "ChatOutput"}, stage_config,
        answer_edges + [(rsn, "trace", tr, "trace"), (tr, "reply", co, "input_value")],
        answer_columns + [[tr, co]], stage_nodes), rsn)
    out["overlay_answer_for_review"] = _build(
        reg, "Overlay Answer For Review", "Answer a question and put the answer with its trace in the review queue.",
        {**answer_nodes, ev: "OverlayExpertVerification", co: "ChatOutput"}, stage_config,
        answer_edges + [(rsn, "trace", ev, "trace"), (ev, "receipt", co, "input_value")],
        answer_columns + [[ev, co]], stage_nodes)
    av = "OverlayApplyVerdict-00001"
    out["overlay_review"] = _build(
        reg, "Overlay Review", "Give an expert verdict on a review item (type its id, or a JSON object with "
        "item_id, reviewer, kind, step, word, comment) and apply it to the accumulator.",
        {ci: "ChatInput", av: "OverlayApplyVerdict", co: "ChatOutput"}, {},
        [(ci, "message", av, "item_id"), (av, "summary", co, "input_value")])
    rc = "OverlayReviewChat-00001"
    out["overlay_expert_chat"] = _build(
        reg, "Overlay Expert Chat", "Ask, then judge the answer in the chat: reject 2 wrong word, approve, "
        "correct 3 to WORD, revert, queue, show it_…, help. A verdict counts in the next answer.",
        {ci: "ChatInput", kb: "OverlayKnowledgeBase", adj: "OverlayAdjacencyTable", sel: "OverlayLLMSelector",
         acc: "OverlayScoreAccumulator", rc: "OverlayReviewChat", co: "ChatOutput"}, {},
        [(ci, "message", rc, "message"), (kb, "knowledge_base", rc, "knowledge_base"),
         (adj, "adjacency_table", rc, "adjacency_table"), (sel, "llm_selector", rc, "llm_selector"),
         (acc, "score_accumulator", rc, "score_accumulator"), (rc, "reply", co, "input_value")],
        [[kb, adj, sel, acc], [ci, rc], [co]])
    bk = "OverlayBuildKnowledge-00001"
    out["overlay_build_knowledge"] = _build(
        reg, "Overlay Build Knowledge", "Ingest the bundled FOLDOC dictionary (or your documents) into ChromaDB and "
        "build the adjacency table.", {bk: "OverlayBuildKnowledge", co: "ChatOutput"}, {},
        [(bk, "summary", co, "input_value")])
    if "OverlaySafetensorsInspector" in reg:
        ins = "OverlaySafetensorsInspector-00001"
        out["overlay_inspect"] = _build(
            reg, "Overlay Inspect", "Inspect a .safetensors or .gguf model file: where each attention head lives.",
            {ci: "ChatInput", ins: "OverlaySafetensorsInspector", co: "ChatOutput"}, {},
            [(ci, "message", ins, "path"), (ins, "report", co, "input_value")])
    if "OverlaySpecializationLab" in reg:
        lab = "OverlaySpecializationLab-00001"
        out["overlay_lab"] = _build(
            reg, "Overlay Specialization Lab", "Train a tiny attention-only transformer from random weights and watch "
            "an induction head form; labelled .safetensors checkpoints and a report.",
            {lab: "OverlaySpecializationLab", co: "ChatOutput"}, {}, [(lab, "report", co, "input_value")])
    return out


def render(flow: dict) -> str:
    return json.dumps(flow, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if any flow file differs from the generated one")
    args = ap.parse_args()
    generated = {f"{k}.json": render(v) for k, v in flows().items()}
    if args.check:
        drift = [n for n, text in generated.items()
                 if not (FLOWS / n).exists() or (FLOWS / n).read_text() != text]
        extra = [p.name for p in FLOWS.glob("*.json") if p.name not in generated]
        if drift or extra:
            print(f"flows out of date: {drift + extra}; run `python scripts/gen_flows.py`", file=sys.stderr)
            return 1
        return 0
    FLOWS.mkdir(exist_ok=True)
    for n, text in generated.items():
        (FLOWS / n).write_text(text)
        print(f"wrote flows/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
