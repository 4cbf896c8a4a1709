"""Does a LangFlow node run the installed Overlay component, or code edited inside a saved flow?

A saved flow carries each node's Python source (``template.code.value``) and LangFlow runs *that*, not the
file in ``components/overlay/``. A flow edited by hand, or saved by another Overlay version, can therefore
answer with other logic than the one installed — silently. LangFlow flags its own built-in components when
their code is outdated; for Overlay's nodes :func:`code_drift` compares the node's source with the installed
file of the same class, and :func:`warn_if_edited` (called by every Overlay node before it builds its
outputs) puts the difference in the node's status, the log and, for the reasoner, the answer —
:func:`edited_nodes` lets the reasoner name every edited Overlay node of its flow, not only itself.

What a node cannot do is report code that does not compile: LangFlow parses each node's code while it
builds the graph, before any node runs, and ``lfx run`` then prints only ``Invalid Python code: '(' was
never closed (<unknown>, line 90)`` — no node, no field — while ``lfx validate`` passes the flow. lfx
has no hook there (the ``ValueError`` comes from ``lfx.custom.validate.extract_class_name`` and carries
no vertex). :func:`flow_code_problems` (``overlay check-flow``) reads the flow file instead and names
the node, its id and the field of every syntax error and every edit.

No LangFlow import: nodes are read duck-typed (a graph vertex's ``data``, a flow file's JSON).
"""

from __future__ import annotations

import ast
import difflib
import logging
import re
from functools import lru_cache
from pathlib import Path

#: Where the installed components live (this checkout's ``components/overlay``).
COMPONENTS_DIR = Path(__file__).resolve().parent.parent / "components" / "overlay"
log = logging.getLogger("overlay")


@lru_cache(maxsize=64)
def installed_source(class_name: str, components_dir: Path = COMPONENTS_DIR) -> tuple[Path, str] | None:
    """``(file, source)`` of the installed component defining ``class_name``, or None (not installed here)."""
    if not components_dir.is_dir():
        return None
    rx = re.compile(rf"^class {re.escape(class_name)}\(", re.MULTILINE)
    for path in sorted(components_dir.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if rx.search(text):
            return path, text
    return None


def code_drift(code: str | None, class_name: str, display_name: str = "",
               components_dir: Path = COMPONENTS_DIR) -> str | None:
    """One sentence naming the node and how its code differs from the installed component, or None.

    Args:
        code: the source the node was built from (a saved flow's ``code`` field); None/empty = not known.
        class_name: the component class (e.g. ``"OverlayReasoner"``).
    """
    found = installed_source(class_name, components_dir) if code else None
    if found is None:
        return None
    path, src = found
    a, b = src.replace("\r\n", "\n").strip().splitlines(), code.replace("\r\n", "\n").strip().splitlines()
    if a == b:
        return None
    # a replaced line counts once: per differing block, the larger of its old and new line counts
    changed = sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b).get_opcodes()
                  if op != "equal")
    return (f"node '{display_name or class_name}' runs code that differs from the installed component {path} "
            f"({changed} changed line{'s' * (changed != 1)}): the flow was edited or saved by another Overlay "
            "version; to run the installed logic, regenerate the flow (`make flows`) or replace the node")


def _vertex_code(data) -> str | None:
    """``template.code.value`` of a node's ``data`` (a flow file's ``node["data"]``, a vertex's ``data``)."""
    try:
        code = data["node"]["template"]["code"]["value"]
    except (KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


def _display_name(data) -> str:
    try:
        return data["node"].get("display_name") or data.get("type") or ""
    except (AttributeError, KeyError, TypeError):
        return ""


def node_source(component) -> str | None:
    """The source a node was built from: its graph vertex's ``template.code`` (what the saved flow holds).

    ``Component._code`` is not used: when LangFlow builds a graph from a flow it is not the flow's source.
    """
    return _vertex_code(getattr(getattr(component, "_vertex", None), "data", None))


def warn_if_edited(component) -> str | None:
    """Check a node (its vertex's code, class name and ``display_name``); log and show a drift."""
    msg = code_drift(node_source(component), type(component).__name__, getattr(component, "display_name", ""))
    if msg:
        log.warning(msg)
        try:
            component.status = f"WARNING: {msg}"
        except Exception:  # noqa: BLE001 - a status is a courtesy; the log line and the answer carry the warning
            pass
    return msg


def edited_nodes(component) -> list[str]:
    """:func:`code_drift` of every Overlay node in the flow ``component`` runs in (its graph's vertices, in order).

    An edited Knowledge Base or LLM Selector changes the reasoner's answer too, but only its own status
    and the log would say so; the reasoner puts these sentences above its answer. Empty when the
    component is not part of a graph (built directly, as in tests).
    """
    graph = getattr(getattr(component, "_vertex", None), "graph", None)
    out = []
    for vertex in getattr(graph, "vertices", None) or ():
        data = getattr(vertex, "data", None)
        if not isinstance(data, dict):
            continue
        msg = code_drift(_vertex_code(data), str(data.get("type") or ""), _display_name(data))
        if msg:
            out.append(msg)
    return out


def flow_code_problems(flow: dict, components_dir: Path = COMPONENTS_DIR) -> list[str]:
    """One sentence per node of a saved flow whose code does not compile or differs from the installed component.

    Args:
        flow: a LangFlow flow file's JSON object (``{"data": {"nodes": [...]}}`` or ``{"nodes": [...]}``);
            nodes of groups (``node.flow``) are read too.

    Returns:
        ``"node 'Overlay Reasoner' (OverlayReasoner-00003), field code: line 90: '(' was never closed; ..."``
        for a syntax error in any node (LangFlow's own included), a :func:`code_drift` sentence for an edited
        Overlay node; empty when every node's code is as installed.
    """
    problems: list[str] = []
    graph = flow.get("data") if isinstance(flow.get("data"), dict) else flow
    for node in graph.get("nodes") or ():
        data = node.get("data") if isinstance(node, dict) else None
        if not isinstance(data, dict):
            continue
        inner = data.get("node", {}).get("flow") if isinstance(data.get("node"), dict) else None
        if isinstance(inner, dict):  # a group node: its nodes carry the code
            problems += flow_code_problems(inner, components_dir)
        code = _vertex_code(data)
        if code is None:
            continue
        name, node_id = _display_name(data), data.get("id") or node.get("id") or "?"
        try:
            ast.parse(code)
        except SyntaxError as exc:
            problems.append(f"node '{name}' ({node_id}), field code: line {exc.lineno}: {exc.msg}; LangFlow will "
                            "refuse the flow without naming the node: fix the node's code, or regenerate the flow "
                            "(`make flows`) or replace the node")
            continue
        msg = code_drift(code, str(data.get("type") or ""), name, components_dir)
        if msg:
            problems.append(msg.replace(f"node '{name}' ", f"node '{name}' ({node_id}) ", 1))
    return problems
