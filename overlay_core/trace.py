"""The trace of one answer: every step's candidates, features, score and choice.

A trace is plain data (``dict``/``list`` of JSON types) so it can be stored in the review
queue, exported, sent through LangFlow ``Data`` and printed by ``overlay ask --json``.
Shape (see also the README)::

    {"question": str, "answer": str, "settings": {...}, "weights": {...},
     "passages": [{"rank", "id", "source", "distance", "text"}],
     "prefix": [words taken from the question, e.g. "A hash table is", "Unix was invented"],
     "question_form": {"kind", "subject", "frame", "focus", "answer_type", "rule", ...},
     "frame": {"kept", "words", "rule", "source" | "why", "anchored_in"},
     "evidence": [{"passage", "rank", "relevance", "parts", "text"}]   (sentences that bear on the question),
     "refused": bool, "refusal": str (why the question was declined; only when refused),
     "trace": [{"step", "prev", "context", "chosen", "chosen_words", "source",
                "candidates": [{"word", "source", "p_adj", "count", "n_passages", "ctx", "rel",
                                "llm_logprob", "llm_mean", "llm_calibrated", "llm", "glob",
                                "uses", "score", "verdicts", "passages", "boundary_merged",
                                "blocked"}],
                "latency_ms": {"propose", "select", "accumulate", "total"}}],
     "stop_reason": str, "timings_ms": {...}}

:func:`to_markdown` renders it for people (one table per step, the chosen word in bold);
:func:`to_rows` flattens it into one row per candidate for a table view.
"""

from __future__ import annotations

from typing import Any


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(result: dict, *, max_candidates: int = 8) -> str:
    """Human-readable Markdown of a trace: passages, then one table per step (chosen row in bold)."""
    lines = [f"**Question:** {result.get('question', '')}", "", f"**Answer:** {result.get('answer', '')}", ""]
    s = result.get("settings", {})
    w = result.get("weights", {})
    if s:
        lines.append("**Settings:** " + ", ".join(f"{k}={_fmt(v)}" for k, v in s.items()))
    if w:
        lines += ["", "**Weights:** " + ", ".join(f"{k}={_fmt(v)}" for k, v in w.items())]
    lines += ["", "**Passages**", "", "| # | source | distance | id | text |", "|---|---|---|---|---|"]
    for p in result.get("passages", []):
        text = p.get("text", "")
        lines.append(f"| {p.get('rank')} | {_fmt(p.get('source'))} | {_fmt(p.get('distance'))} | `{p.get('id')}` "
                     f"| {_fmt(text[:120] + ('…' if len(text) > 120 else ''))} |")
    lines += ["", _form_line(result)]
    if result.get("refused"):
        lines += ["", f"**Declined:** {result.get('refusal', '')}"]
    ev = result.get("evidence") or []
    if ev:
        lines += ["", "**Sentences that bear on the question**", "", "| passage | relevance | parts | sentence |",
                  "|---|---|---|---|"]
        for e in ev:
            parts = ", ".join(f"{k}={v:.2f}" for k, v in (e.get("parts") or {}).items())
            lines.append(f"| [{e.get('rank')}] | {_fmt(e.get('relevance'))} | {parts} | {_fmt(e.get('text'))} |")
    if result.get("prefix"):
        lines += ["", f"**Start (from the question):** {' '.join(result['prefix'])}"]
    for st in result.get("trace", []):
        lat = st.get("latency_ms", {})
        lines += ["", f"**Step {st['step']}** — context `{' '.join(st.get('context', []))}` → **{st.get('chosen')}** "
                      f"({st.get('source')}, {_fmt(lat.get('total'))} ms)", "",
                  "| candidate | source | p_adj | ctx | rel | llm | glob | score | verdicts | passages | note |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        cands = st.get("candidates", [])
        shown = [c for c in cands if c.get("blocked") is None][:max_candidates]
        # a candidate whose weight a verdict changed is always shown: the trace must name the verdict
        shown += [c for c in cands if c.get("verdicts") and c not in shown]
        shown += [c for c in cands if c.get("blocked") is not None and c not in shown][: max(0, max_candidates - len(shown))]
        for c in shown:
            word = _fmt(c["word"])
            if c["word"] == st.get("chosen"):
                word = f"**{word}**"
            note = c.get("blocked") or ("boundary merged" if c.get("boundary_merged") else "")
            lines.append(f"| {word} | {c.get('source')} | {_fmt(c.get('p_adj'))} | {_fmt(c.get('ctx'))} | "
                         f"{_fmt(c.get('rel'))} | {_fmt(c.get('llm'))} | {_fmt(c.get('glob'))} | {_fmt(c.get('score'))} | "
                         f"{_fmt(c.get('verdicts'))} | {_fmt(len(c.get('passages') or []))} | {note} |")
        if len(cands) > len(shown):
            lines.append(f"| … {len(cands) - len(shown)} more | | | | | | | | | | |")
    lines += ["", f"**Stopped:** {result.get('stop_reason', '')}"]
    return "\n".join(lines)


def _form_line(result: dict) -> str:
    """One line: the question form, its rule, and what became of the frame taken from the question."""
    f = result.get("question_form") or {}
    if not f:
        return ""
    line = f"**Question form:** {f.get('kind')} (rule {f.get('rule')}; answer type {f.get('answer_type')})"
    fr = result.get("frame") or {}
    if fr.get("words") and not fr.get("kept"):
        line += f"; frame '{' '.join(fr['words'])}' not used: {fr.get('why')}"
    return line


def to_text(result: dict, *, max_candidates: int = 4) -> str:
    """Compact plain-text trace for terminals: one line per step with the top candidates."""
    out = [f"Answer: {result.get('answer', '')}", ""]
    if result.get("refused"):
        out.append(f"  declined: {result.get('refusal', '')}")
    for p in result.get("passages", []):
        out.append(f"  passage [{p.get('rank')}] {p.get('source')} (distance {p.get('distance', 0):.3f}) id={p.get('id')}")
    out.append("  " + _form_line(result).replace("**", ""))
    for e in (result.get("evidence") or [])[:3]:
        out.append(f"  relevant sentence (passage [{e.get('rank')}], relevance {e.get('relevance', 0):.2f}): {e.get('text')}")
    if result.get("prefix"):
        out.append(f"  start (from the question): {' '.join(result['prefix'])}")
    for st in result.get("trace", []):
        cands = [c for c in st.get("candidates", []) if c.get("blocked") is None]
        top = "; ".join(f"{c['word']!r} {c['score']:.2f} [{c['source']}]" for c in cands[:max_candidates])
        chosen = next((c for c in cands if c["word"] == st.get("chosen")), {})
        why = (f"p_adj={_fmt(chosen.get('p_adj'))} ctx={_fmt(chosen.get('ctx'))} "
               + (f"rel={_fmt(chosen.get('rel'))} " if chosen.get("rel") else "") + f"llm={_fmt(chosen.get('llm'))} "
               f"glob={_fmt(chosen.get('glob'))}")
        verdicts = f" verdicts={','.join(chosen['verdicts'])}" if chosen.get("verdicts") else ""
        n_blocked = sum(1 for c in st.get("candidates", []) if c.get("blocked"))
        out.append(f"  step {st['step']:>2} [{' '.join(st.get('context', []))}] -> {st.get('chosen')!r} "
                   f"({st.get('source')}; {why}{verdicts}) of {len(cands)} candidates"
                   + (f", {n_blocked} blocked" if n_blocked else "") + f" | top: {top}")
    out.append(f"  stopped: {result.get('stop_reason', '')}")
    return "\n".join(out)


def to_rows(result: dict) -> list[dict]:
    """One flat row per (step, candidate): for DataFrame/table views."""
    rows = []
    for st in result.get("trace", []):
        for c in st.get("candidates", []):
            rows.append({"step": st["step"], "context": " ".join(st.get("context", [])), "candidate": c["word"],
                         "chosen": c["word"] == st.get("chosen"), "source": c.get("source"),
                         "p_adj": c.get("p_adj"), "ctx": c.get("ctx"), "rel": c.get("rel"), "llm": c.get("llm"), "glob": c.get("glob"),
                         "score": c.get("score"), "verdicts": ",".join(c.get("verdicts") or []),
                         "passages": ",".join(c.get("passages") or []), "blocked": c.get("blocked") or ""})
    return rows
