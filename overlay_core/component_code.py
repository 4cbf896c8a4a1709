"""Does a LangFlow node run the installed Overlay component, or code edited inside a saved flow?

A saved flow carries each node's Python source (``template.code.value``) and LangFlow runs *that*, not the
file in ``components/overlay/``. A flow edited by hand, or saved by another Overlay version, can therefore
answer with other logic than the one installed — silently. LangFlow flags its own built-in components when
their code is outdated; for Overlay's nodes :func:`code_drift` compares the node's source with the installed
file of the same class, and :func:`warn_if_edited` (called by every Overlay node before it builds its
outputs) puts the difference in the node's status, the log and, for the reasoner, the answer.

No LangFlow import: the node is read duck-typed (its graph vertex's ``data``, its class name).
"""

from __future__ import annotations

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


def node_source(component) -> str | None:
    """The source a node was built from: its graph vertex's ``template.code`` (what the saved flow holds).

    ``Component._code`` is not used: when LangFlow builds a graph from a flow it is not the flow's source.
    """
    vertex = getattr(component, "_vertex", None)
    try:
        code = vertex.data["node"]["template"]["code"]["value"]
    except (AttributeError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


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
