"""An answer as a tool returns it (an MCP client, an agent): the answer, its sources and the settings used, as plain
paragraphs that survive LangFlow's chat-message rewriting.

Why a shape of its own: LangFlow's MCP server returns every text a flow's Chat Output produced twice over — the
message as the chat stored it and the output's own text — and drops the second only when the two are equal. The
chat copy goes through ``lfx.utils.schemas.ChatOutputResponse``, which turns every single newline of a machine's
message into a blank line (``"\\n\\n" -> "\\n"``, then ``"\\n" -> "\\n\\n"``): a Markdown table's rows fall apart
and the copies differ, so a client got the answer twice, once with broken tables. A text whose only line breaks are
single blank lines between one-line paragraphs is unchanged by that rewriting (:func:`chat_safe`), so the client
gets it once, whole.

No LangFlow import here (the node ``components/overlay/tool_reply.py`` is the thin wrapper).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .settings import ReasonerSettings, specs
from .trace import Trace

#: The reasoner settings a tool takes as arguments: the ones the reasoner node shows (not under "advanced").
MAIN_SETTINGS = tuple(s.name for s in specs(ReasonerSettings) if not s.advanced)


def chat_safe(paragraphs: Iterable[str]) -> str:
    """``paragraphs`` as one text that LangFlow's chat-message rewriting leaves unchanged.

    Each paragraph's whitespace (newlines included) is collapsed to single spaces, empty paragraphs are dropped and
    the rest are joined by one blank line: the text then has no lone ``"\\n"`` and no ``"\\n\\n\\n"``, the two things
    the rewriting changes (see the module docstring). Returns ``""`` for no non-empty paragraph.
    """
    return "\n\n".join(p for p in (" ".join(str(x).split()) for x in paragraphs) if p)


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def tool_text(result: Trace | Mapping[str, Any], *, max_sources: int = 5) -> str:
    """The reply a tool returns for one reasoner result (the Overlay Reasoner's Trace output).

    Paragraphs, in order: any warnings (an edited node), the answer (or, when declined, that it was declined and
    why), ``Sources:`` the retrieved passages (up to ``max_sources``: ``1. FOLDOC:hash table (distance 0.108)``) and
    ``Settings:`` the main settings used (``top_k=3, …, max_words=30``). Shaped by :func:`chat_safe`.

    Raises:
        InputError: ``result`` is not a reasoner result (names the key that is wrong).
    """
    t = result if isinstance(result, Trace) else Trace.from_dict(result, "the Trace input", partial=True)
    paragraphs = [f"Warning: {w}" for w in (result.get("warnings", []) if isinstance(result, Mapping) else [])]
    if t.refused:
        paragraphs.append(t.answer or "Declined.")
        paragraphs.append(f"Declined: {t.refusal or 'no reason given'}")
    else:
        paragraphs.append(t.answer or "(no answer words)")
    if t.passages:
        shown = [f"{i}. {p.source or p.id} (distance {p.distance:.3f})" for i, p in enumerate(t.passages[:max_sources], 1)]
        more = len(t.passages) - len(shown)
        paragraphs.append("Sources: " + "; ".join(shown) + (f"; and {more} more" if more > 0 else ""))
    used = [f"{name}={_fmt(t.settings[name])}" for name in MAIN_SETTINGS if name in t.settings]
    if used:
        paragraphs.append("Settings: " + ", ".join(used))
    return chat_safe(paragraphs)
