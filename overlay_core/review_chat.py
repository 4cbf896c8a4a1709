"""Review in the chat: a reviewer asks questions and judges the answers with short typed commands.

One chat message in, one Markdown reply out (:meth:`ReviewChat.handle`). A message that is a command acts on a
:class:`overlay_core.verification.ReviewStore` and the accumulator file; anything else is a question, answered by the
caller's function and put in the review queue. Commands (English; Russian synonyms in brackets):

=============================  ==========================================================================
``approve`` / ``approve N``    approve the whole answer / step N [одобрить]
``reject N [comment]``         reject step N's word, e.g. ``reject 2 wrong word`` (``reject`` alone: the
                               whole answer) [отклонить]
``correct N to WORD [comment]`` the word step N should have chosen, one of its candidates [исправить N на]
``revert vd_…`` / ``revert``   cancel a verdict / the last one this reviewer gave in this chat [отменить]
``queue``                      the open (pending) items, short [очередь]
``show it_…``                  an item with numbered steps; it becomes the current item [показать]
``help``                       the command list [помощь]
=============================  ==========================================================================

Verdicts act on the **current item** of the chat session: the item the session's last question was enqueued as, or
the last one opened with ``show``. Steps are numbered as the trace numbers them (each step's ``"step"`` field, as
``overlay review show`` prints them). A verdict is applied to the accumulator file at once
(:func:`overlay_core.verification.apply_to_file`), so the next question sees it.

State: the session's events live in one append-only table, ``chat_events`` (``seq, session_id, event, ref_id,
reviewer, created_at``; event = ``asked`` | ``shown`` | ``verdict``), in the review database beside the log —
so it survives a server restart and is written in one transaction per event. The current item is the ``ref_id``
of the session's latest ``asked``/``shown`` event; ``revert`` alone takes the session's latest ``verdict`` event
of this reviewer whose verdict is still live.

Example::

    chat = ReviewChat(ReviewStore(".overlay/reviews.sqlite3"), ".overlay/accumulator.safetensors")
    chat.handle("What is a hash table?", session="s1", reviewer="alice", answer=reasoner.answer).text
    chat.handle("reject 2 wrong word", session="s1", reviewer="alice", answer=reasoner.answer).text
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import text as ot
from .errors import OverlayError
from .trace import Step, Trace
from .verification import ReviewItem, ReviewStore, Verdict, answer_key, apply_to_file

#: The ``flow`` recorded with every item this chat enqueues.
CHAT_FLOW = "overlay-expert-chat"
#: Session id used when the caller has none (e.g. a run through the API without ``session_id``).
DEFAULT_SESSION = "default"
#: Items the ``queue`` command lists (newest first).
QUEUE_SHOWN = 10
#: Passage sources shown under an answer.
SOURCES_SHOWN = 5

COMMANDS_LINE = ("Commands: `approve` · `approve N` · `reject N why` · `correct N to WORD` · `revert` · "
                 "`revert vd_…` · `queue` · `show it_…` · `help` — anything else is a question.")
HELP_TEXT = "\n".join([
    "**Review commands** (N = a step number from the last answer):",
    "",
    "- `approve` — the whole answer is right; `approve N` — step N is right",
    "- `reject N why` — step N chose a wrong word, e.g. `reject 2 wrong word`",
    "  (`reject` alone: the whole answer)",
    "- `correct N to WORD why` — step N should have chosen WORD (one of its candidates)",
    "- `revert` — cancel your last verdict in this chat; `revert vd_…` — cancel that verdict",
    "- `queue` — items waiting for review; `show it_…` — open one (it becomes the current item)",
    "",
    "Russian: одобрить, отклонить, исправить N на СЛОВО, отменить, очередь, показать, помощь. "
    "Anything else is a question: it is answered and queued for review.",
])

_SYNONYMS = {
    "approve": "approve", "одобрить": "approve", "одобряю": "approve",
    "reject": "reject", "отклонить": "reject", "отклоняю": "reject",
    "correct": "correct", "исправить": "correct", "исправь": "correct",
    "revert": "revert", "undo": "revert", "отменить": "revert", "отмени": "revert",
    "queue": "queue", "очередь": "queue",
    "show": "show", "показать": "show", "покажи": "show",
    "help": "help", "помощь": "help", "справка": "help",
}
_TO_WORDS = ("to", "на", "->", "→")
_ITEM_RE = re.compile(r"^it_[0-9a-f]{16}$")
_VERDICT_RE = re.compile(r"^vd_[0-9a-f]{16}$")

_meta = sa.MetaData()
events_t = sa.Table(
    "chat_events", _meta,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("session_id", sa.Text, nullable=False, index=True),
    sa.Column("event", sa.String(16), nullable=False),  # "asked" | "shown" | "verdict"
    sa.Column("ref_id", sa.String(40), nullable=False),  # item id, or verdict id for "verdict"
    sa.Column("reviewer", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.CheckConstraint("event IN ('asked', 'shown', 'verdict')", name="ck_chat_event"),
    sqlite_autoincrement=True,
)


class CommandError(OverlayError):
    """A command that cannot be carried out; the message is the one line the chat shows (what to type)."""


@dataclass(frozen=True)
class Command:
    """A parsed command: ``name`` in approve|reject|correct|revert|queue|show|help; ``step`` None = whole answer;
    ``word`` the text after ``to`` (correct; may still hold the comment); ``ref`` an ``it_``/``vd_`` id."""

    name: str
    step: int | None = None
    word: str = ""
    comment: str = ""
    ref: str = ""


@dataclass
class ChatReply:
    """What :meth:`ReviewChat.handle` did.

    Attributes:
        text: the Markdown reply.
        action: ``question`` | a command name | ``error``.
        item_id: the item asked / shown / judged, if any.
        verdict_id: the verdict (or revert entry) recorded, if any.
        applied: the accumulator changes of that verdict, ``[{"op", "prev", "word", "delta", ...}]``.
        result: the answer function's trace dict (questions only).
    """

    text: str
    action: str
    item_id: str | None = None
    verdict_id: str | None = None
    applied: list[dict] = field(default_factory=list)
    result: dict | None = None


def parse_command(message: str) -> Command | None:
    """The command in a chat message, or None when the message is a question.

    A message is a command when its first word is a command word (case-blind, an optional leading ``/``) and it
    does not end with ``?``. ``show`` followed by something other than an item id is a question ("show me …").

    Raises:
        CommandError: a command word with arguments that do not fit (the message says what to type).
    """
    text = " ".join(str(message or "").split())
    if not text or text.endswith("?"):
        return None
    head, _, rest = text.partition(" ")
    name = _SYNONYMS.get(head.lower().lstrip("/").rstrip(":,."))
    if name is None:
        return None
    args = rest.split()
    if name in ("queue", "help"):
        return Command(name) if not args else None
    if name == "show":
        if len(args) == 1 and args[0].lower().startswith("it_"):
            return Command(name, ref=args[0].lower())
        return None if args else _fail("type `show it_…` with an item id from `queue`")
    if name == "revert":
        if not args:
            return Command(name)
        if args[0].lower().startswith("vd_"):
            return Command(name, ref=args[0].lower(), comment=" ".join(args[1:]))
        _fail("type `revert` (your last verdict in this chat) or `revert vd_…` with a verdict id")
    step = _step_number(args[0]) if args else None
    if name == "correct":
        if step is None:
            _fail("type `correct N to WORD` — N is the step number, WORD one of its candidates")
        tail = args[1:]
        if tail and tail[0].lower() in _TO_WORDS:
            tail = tail[1:]
        if not tail:
            _fail(f"type `correct {step} to WORD` — WORD is one of step {step}'s candidates")
        return Command(name, step=step, word=" ".join(tail))
    if args and step is None:
        _fail(f"type `{name} N why` with a step number N (e.g. `{name} 2 wrong word`), or `{name}` alone "
              "for the whole answer")
    return Command(name, step=step, comment=" ".join(args[1:]))


def _step_number(token: str) -> int | None:
    token = token.lstrip("#").rstrip(":,.")
    return int(token) if token.isdigit() else None


def _fail(line: str):
    raise CommandError(line)


class ReviewChat:
    """Carries out chat messages on a review store and an accumulator file.

    Args:
        store: the review queue and verdict log.
        accumulator_path: the accumulator ``.safetensors`` file verdicts are applied to (created if missing).
        flow: the ``flow`` recorded with every enqueued item.

    The ``chat_events`` table is created in the store's database on first use (append-only by convention).
    """

    def __init__(self, store: ReviewStore, accumulator_path: str | Path, *, flow: str = CHAT_FLOW):
        self.store = store
        self.accumulator_path = Path(accumulator_path)
        self.flow = flow
        _meta.create_all(store.engine, checkfirst=True)

    # ------------------------------------------------------------------ entry point
    def handle(self, message: str, *, session: str | None, reviewer: str | None,
               answer: Callable[[str], Mapping[str, Any]]) -> ChatReply:
        """Answer a question or carry out a command.

        Args:
            message: the text typed in the chat.
            session: the chat session id (None/empty = ``DEFAULT_SESSION``).
            reviewer: who is reviewing (needed for verdicts and reverts only).
            answer: ``question -> reasoner result dict`` (a trace, :mod:`overlay_core.trace`); called for questions
                only, never for commands.

        Returns:
            A :class:`ChatReply`. A command that cannot be carried out gives ``action="error"`` and a one-line text
            saying what to type; nothing is written then. An :class:`~overlay_core.errors.OverlayError` of the
            answer function gives ``action="error"`` and its message too; other exceptions propagate.
        """
        session = str(session or "").strip() or DEFAULT_SESSION
        try:
            cmd = parse_command(message)
            if cmd is None:
                return self._ask(str(message or "").strip(), session, answer)
            return getattr(self, f"_cmd_{cmd.name}")(cmd, session, (reviewer or "").strip())
        except CommandError as e:
            return ChatReply(text=str(e), action="error")
        except OverlayError as e:  # raised by the store after our checks: still one line, nothing written
            return ChatReply(text=f"Not done: {e}", action="error")

    # ------------------------------------------------------------------ questions
    def _ask(self, question: str, session: str, answer: Callable[[str], Mapping[str, Any]]) -> ChatReply:
        if not question:
            return ChatReply(text="Type a question, or `help` for the review commands.", action="error")
        result = dict(answer(question))
        item_id = self.store.enqueue(flow=self.flow, question=result.get("question", question),
                                     answer=result.get("answer", ""), trace=result,
                                     model_fingerprint=str(result.get("model", "")),
                                     index_fingerprint=str(result.get("index", "")))
        self._event(session, "asked", item_id, "")
        t = Trace.from_dict(result, "the answer's trace", partial=True)
        text = render_answer(t, item_id, known=self.known_verdicts(t))
        return ChatReply(text=text, action="question", item_id=item_id, result=result)

    # ------------------------------------------------------------------ commands
    def _cmd_help(self, cmd: Command, session: str, reviewer: str) -> ChatReply:
        return ChatReply(text=HELP_TEXT, action="help")

    def _cmd_queue(self, cmd: Command, session: str, reviewer: str) -> ChatReply:
        items = self.store.list(status="pending")
        if not items:
            return ChatReply(text="The review queue is empty: ask a question to add one.", action="queue")
        # the same question answered the same way again is one line: its newest item, and how many times
        groups: dict[tuple[str, str], list[ReviewItem]] = {}
        for it in items[::-1]:
            groups.setdefault(answer_key(it.question, it.answer), []).append(it)
        shown = list(groups.values())[:QUEUE_SHOWN]
        lines = [f"**{len(items)} item{'s' * (len(items) != 1)} waiting for review**"
                 + (f" (newest {len(shown)})" if len(groups) > len(shown) else "") + ":", ""]
        lines += [f"- `{g[0].id}` {_short(g[0].question, 50)} → {_short(g[0].answer, 50)}"
                  + (f" (asked {len(g)} times; older: {', '.join(f'`{o.id}`' for o in g[1:3])}"
                     + (" …" if len(g) > 3 else "") + ")" if len(g) > 1 else "") for g in shown]
        lines += ["", "Open one with `show it_…`."]
        return ChatReply(text="\n".join(lines), action="queue")

    def _cmd_show(self, cmd: Command, session: str, reviewer: str) -> ChatReply:
        item = self._item(cmd.ref)
        self._event(session, "shown", item.id, "")
        verdicts = self.store.verdicts(item.id)
        t = Trace.from_dict(item.trace, f"item {item.id}", partial=True)
        text = render_answer(t, item.id, question=item.question, status=item.status, verdicts=verdicts,
                             known=self.known_verdicts(t))
        return ChatReply(text=text, action="show", item_id=item.id)

    def _cmd_approve(self, cmd: Command, session: str, reviewer: str) -> ChatReply:
        return self._verdict(cmd, session, reviewer)

    def _cmd_reject(self, cmd: Command, session: str, reviewer: str) -> ChatReply:
        return self._verdict(cmd, session, reviewer)

    def _cmd_correct(self, cmd: Command, session: str, reviewer: str) -> ChatReply:
        return self._verdict(cmd, session, reviewer)

    def _verdict(self, cmd: Command, session: str, reviewer: str) -> ChatReply:
        _need_reviewer(reviewer)
        item = self._current(session)
        trace = Trace.from_dict(item.trace, f"item {item.id}", partial=True)
        word, comment = None, cmd.comment
        st = None
        if cmd.step is not None:
            st = trace.step(cmd.step)
            numbers = [s.step for s in trace.steps if s.edge is not None]
            if st is None or st.edge is None:
                span = f"steps {min(numbers)}..{max(numbers)}" if numbers else "no steps with a chosen word"
                what = "has no step" if st is None else "chose nothing at step"
                _fail(f"{item.id} {what} {cmd.step} (it has {span}); type `{cmd.name} N` with one of them")
        elif not trace.chosen_edges:
            _fail(f"{item.id} chose no words (the question was declined): nothing to {cmd.name}")
        if cmd.name == "correct":
            word, comment = _candidate_prefix(st, cmd.word, item.id)
        standing = [v for v in self.store.verdicts(item.id) if v.kind not in ("revert", cmd.name)
                    and v.step == cmd.step and not v.reverted_by]
        vid = self.store.verdict(item.id, reviewer=reviewer, kind=cmd.name, step=cmd.step, word=word,
                                 comment=comment)
        self._event(session, "verdict", vid, reviewer)
        applied = self._apply(vid)
        verb = {"approve": "Approved", "reject": "Rejected", "correct": "Corrected"}[cmd.name]
        if st is None:
            what = f"the whole answer of `{item.id}`"
        else:
            what = f"step {st.step} of `{item.id}`: “{st.chosen}” (after “{st.prev}”)"
            if word is not None:
                what += f" → “{word}”"
        lines = [f"**{verb}** {what} — verdict `{vid}` by {reviewer}" + (f" ({comment})" if comment else "") + ".",
                 "", "Accumulator changes:", ""]
        lines += _delta_lines(applied)
        if standing:  # both count: their deltas add up on the same edges
            lines += ["", "Also standing on " + (f"step {cmd.step}" if cmd.step is not None else "the whole answer")
                      + ": " + ", ".join(f"`{v.id}` ({v.kind} by {v.reviewer})" for v in standing)
                      + " — both verdicts count; `revert vd_…` withdraws one."]
        lines += ["", "Ask the question again to see the effect; `revert` cancels this verdict."]
        return ChatReply(text="\n".join(lines), action=cmd.name, item_id=item.id, verdict_id=vid, applied=applied)

    def _cmd_revert(self, cmd: Command, session: str, reviewer: str) -> ChatReply:
        _need_reviewer(reviewer)
        target = self._verdict_entry(cmd.ref) if cmd.ref else self._last_verdict(session, reviewer)
        if target.kind == "revert":
            _fail(f"`{target.id}` is itself a revert (of `{target.reverts}`); give the verdict again instead")
        if target.reverted_by:
            _fail(f"`{target.id}` was already reverted by `{target.reverted_by}`; nothing to do")
        rid = self.store.revert(target.id, reviewer=reviewer, comment=cmd.comment)
        self._event(session, "verdict", rid, reviewer)
        applied = self._apply(rid)
        step = f"step {target.step}" if target.step is not None else "the whole answer"
        word = f" → “{target.word}”" if target.word else ""
        lines = [f"**Reverted** `{target.id}` ({target.kind} {step}{word} of `{target.item_id}`) — revert entry "
                 f"`{rid}` by {reviewer}.", "", "Compensating accumulator changes:", ""]
        lines += _delta_lines(applied)
        lines += ["", "Ask the question again to see the answer without that verdict."]
        return ChatReply(text="\n".join(lines), action="revert", item_id=target.item_id, verdict_id=rid,
                         applied=applied)

    # ------------------------------------------------------------------ helpers
    def _apply(self, verdict_id: str) -> list[dict]:
        if self.store.dialect == "sqlite":
            return [d for d in apply_to_file(self.store, self.accumulator_path) if d["verdict_id"] == verdict_id]
        # a database server: its log is the truth; sync this process's accumulator (overlay_core.replica)
        from .replica import apply_pending

        url = self.store.engine.url.render_as_string(hide_password=False)
        return apply_pending(self.store, url, self.accumulator_path, verdict_id)

    def _item(self, item_id: str) -> ReviewItem:
        if not _ITEM_RE.match(item_id):
            _fail(f"“{item_id}” is not an item id (it_ and 16 hex digits); type `queue` to list them")
        try:
            return self.store.get(item_id)
        except OverlayError:
            _fail(f"there is no item `{item_id}`; type `queue` to list the open ones")

    def _verdict_entry(self, verdict_id: str) -> Verdict:
        if not _VERDICT_RE.match(verdict_id):
            _fail(f"“{verdict_id}” is not a verdict id (vd_ and 16 hex digits); a verdict reply names its id")
        try:
            return self.store.get_verdict(verdict_id)
        except OverlayError:
            _fail(f"there is no verdict `{verdict_id}`; `show it_…` lists an item's verdicts")

    def _current(self, session: str) -> ReviewItem:
        ref = self._latest(session, ("asked", "shown"))
        if ref is None:
            _fail("no current item in this chat: ask a question first, or `show it_…` an item from `queue`")
        return self.store.get(ref)

    def _last_verdict(self, session: str, reviewer: str) -> Verdict:
        with self.store.engine.connect() as conn:
            refs = [r[0] for r in conn.execute(
                sa.select(events_t.c.ref_id).where(events_t.c.session_id == session, events_t.c.event == "verdict",
                                                   events_t.c.reviewer == ot.utf8_safe(reviewer))
                .order_by(events_t.c.seq.desc()))]
        for ref in refs:
            v = self.store.get_verdict(ref)
            if v.kind != "revert" and not v.reverted_by:
                return v
        _fail(f"{reviewer} has no verdict left to revert in this chat; type `revert vd_…` to name one")

    def _latest(self, session: str, events: tuple[str, ...]) -> str | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(events_t.c.ref_id).where(events_t.c.session_id == session,
                                                                  events_t.c.event.in_(events))
                               .order_by(events_t.c.seq.desc()).limit(1)).first()
        return row[0] if row else None

    def _event(self, session: str, event: str, ref_id: str, reviewer: str) -> None:
        with self.store._write() as conn, conn.begin():  # one row, one transaction: atomic
            conn.execute(events_t.insert().values(session_id=ot.utf8_safe(session), event=event, ref_id=ref_id,
                                                  reviewer=ot.utf8_safe(reviewer), created_at=_now()))

    def known_verdicts(self, t: Trace) -> dict[str, Verdict]:
        """The log entry now of each verdict id a candidate of ``t`` carries (ids not in this database — an
        accumulator shared with another — are left out)."""
        out = {}
        for vid in dict.fromkeys(v for st in t.steps for c in st.candidates for v in c.verdicts):
            try:
                out[vid] = self.store.get_verdict(vid)
            except OverlayError:
                pass
        return out

    def current_item(self, session: str | None) -> str | None:
        """The id of the session's current item, or None."""
        return self._latest(str(session or "").strip() or DEFAULT_SESSION, ("asked", "shown"))


def _need_reviewer(reviewer: str) -> None:
    if not reviewer:
        _fail("no reviewer: fill in Reviewer in the Expert Review Chat node (or log in to LangFlow), then retype")


def _candidate_prefix(st: Step | None, text: str, item_id: str) -> tuple[str, str]:
    """``(candidate word, comment)``: the longest run of leading words of ``text`` that is a candidate of ``st``."""
    assert st is not None
    words = text.split()
    first = st.chosen_words[:1]  # a correction's edge starts with its first word: one shared with the chosen
    # a yes/no step's blocked word can be corrected to: the reviewers' verdicts lift its rule's block
    open_ = st.yields_to_verdicts
    by_text = {ot.normalize(c.word).casefold(): c for c in st.candidates if c.blocked is None or open_}
    blocked = {ot.normalize(c.word).casefold(): c for c in st.candidates if c.blocked and not open_}
    prefixes = [ot.normalize(" ".join(words[:n])).strip("“”\"'«»").casefold() for n in range(len(words), 0, -1)]
    cand = next((blocked[p] for p in prefixes if p in blocked), None)
    if cand is not None and not any(p in by_text for p in prefixes):  # a rule would block it again
        _fail(f"“{cand.word}” was blocked at step {st.step} ({_short(cand.blocked, 120)}), so a correction to "
              f"it would not count; type `reject {st.step}` to count the chosen word as wrong")
    for n in range(len(words), 0, -1):
        cand = by_text.get(prefixes[len(words) - n])
        if cand is not None:
            hit = cand.word
            if hit == st.chosen:
                _fail(f"step {st.step} already chose “{hit}”; type `approve {st.step}` to confirm it")
            if first and cand.words[:1] == first:
                _fail(f"“{hit}” begins with “{first[0]}”, the word step {st.step} chose, so it cannot replace it; "
                      f"type `reject {st.step}` to count the chosen word as wrong")
            return hit, " ".join(words[n:])
    others = [c.word for c in st.candidates if (c.blocked is None or open_) and c.word != st.chosen
              and not (first and c.words[:1] == first)][:8]
    _fail(f"“{words[0] if words else text}” is not a candidate at step {st.step} of {item_id}; "
          f"type `correct {st.step} to WORD` with one of: {', '.join(others) or '(none)'}")


def _delta_lines(applied: list[dict]) -> list[str]:
    out = []
    for d in applied:
        if d["op"] == "delta":
            out.append(f"- {d['prev']} -> {d['word']}: {d['delta']:+g}")
        else:
            out.append(f"- {d['prev']} -> {d['word']}: edge {'added' if d['op'] == 'add_edge' else 'removed'}")
    return out or ["- none (already applied)"]


#: How an answer queued outside the chat (the Overlay Answer For Review flow) is judged.
ELSEWHERE_LINE = ("Judge it in the *Overlay Expert Chat* flow (`show {item}`, then `reject N why`, `approve` or "
                  "`correct N to WORD`), or on the command line: `overlay review verdict {item} --reviewer NAME "
                  "--kind reject --step N`.")


def receipt(trace: Mapping[str, Any], item_id: str) -> str:
    """The reply of a flow that queued an answer for review (Expert Verification's Receipt): the answer first, its
    sources and one line per step (:func:`render_answer`), then where to judge it."""
    t = Trace.from_dict(trace, f"item {item_id}", partial=True)
    text = render_answer(t, item_id, commands=ELSEWHERE_LINE.format(item=item_id))
    return text.replace(f"Review item `{item_id}`.", f"**Queued for review** as `{item_id}`.", 1)


def render_answer(t: Trace, item_id: str, *, question: str | None = None, status: str | None = None,
                  verdicts: list[Verdict] | None = None, known: Mapping[str, Verdict] | None = None,
                  commands: str = COMMANDS_LINE) -> str:
    """The chat reply for an answer: the answer, its sources, one line per step, the item id and the commands.

    A step line: ``**N** chosen · runner-up: WORD (score) · verdicts: vd_… (word)``. ``known`` (verdict id ->
    its log entry now, :meth:`ReviewChat.known_verdicts`) labels a verdict reverted since and leaves out revert
    entries (their compensating deltas are on the same edges).
    """
    lines = []
    if question is not None:
        lines += [f"**Question:** {question}", ""]
    lines += [t.answer or (t.refusal or "(no answer)"), ""]
    sources = list(dict.fromkeys(p.source for p in t.passages if p.source))
    if sources:
        more = f" (+{len(sources) - SOURCES_SHOWN} more)" if len(sources) > SOURCES_SHOWN else ""
        lines += ["Sources: " + "; ".join(sources[:SOURCES_SHOWN]) + more, ""]
    steps = [s for s in t.steps if s.chosen is not None]
    if steps:
        lines += ["**Steps** (chosen word · runner-up with its score · verdicts on the candidates):", ""]
        lines += [_step_line(s, known or {}) for s in steps]
        lines.append("")
    stopped = next((s for s in t.steps if s.chosen is None), None)
    if stopped is not None:  # e.g. a verdict penalized every candidate: say so, and which verdicts
        why = next((c.blocked for c in stopped.candidates if c.blocked), None) or t.stop_text or "no candidate"
        vids = list(dict.fromkeys(v for c in stopped.candidates for v in c.verdicts))
        lines += [f"**Stopped at step {stopped.step}:** {why}"
                  + (f" (verdicts {', '.join(f'`{v}`' for v in vids)})" if vids else ""), ""]
    if verdicts:
        lines += ["**Verdicts:**", ""]
        for v in verdicts:
            on = f"step {v.step}" if v.step is not None else ("the answer" if v.kind != "revert" else f"`{v.reverts}`")
            gone = f" (reverted by `{v.reverted_by}`)" if v.reverted_by else ""
            lines.append(f"- `{v.id}` {v.kind} {on}{' → ' + v.word if v.word else ''} by {v.reviewer}{gone}")
        lines.append("")
    head = f"Review item `{item_id}`" + (f" ({status})" if status else "")
    lines += [f"{head}. {commands}"]
    return "\n".join(lines)


def _step_line(s: Step, known: Mapping[str, Verdict]) -> str:
    chosen_score = next((c.score for c in s.candidates if c.word == s.chosen), None)
    runner = next((c for c in s.candidates if c.word != s.chosen and c.blocked is None and c.score is not None),
                  None)
    parts = [f"**{s.step}** {s.chosen}" + (f" ({chosen_score:.2f})" if chosen_score is not None else "")]
    parts.append(f"runner-up: {runner.word} ({runner.score:.2f})" if runner else "no runner-up")
    touched: dict[str, list[str]] = {}  # verdict id -> the candidates it touched (spans share a first word)
    for c in s.candidates:
        for vid in c.verdicts:
            if getattr(known.get(vid), "kind", None) != "revert":
                touched.setdefault(vid, []).append(c.word)

    def gone(vid: str) -> str:
        by = getattr(known.get(vid), "reverted_by", None)
        return f"; reverted by `{by}`" if by else ""

    if touched:
        parts.append("verdicts: " + ", ".join(f"`{vid}` ({', '.join(ws)}{gone(vid)})" for vid, ws in touched.items()))
    # a verdict that favours a candidate a rule blocked did not count: say which rule (else it looks ignored)
    uncounted = [c for c in s.candidates if c.blocked and (c.glob or 0) > 0
                 and any(getattr(known.get(v), "kind", None) != "revert" for v in c.verdicts)]
    if uncounted:
        parts.append("not counted: " + "; ".join(f"{c.word} blocked — {_short(c.blocked, 90)}" for c in uncounted))
    if s.extra.get("overruled"):  # a yes/no step: the verdicts chose against the passage's reading
        parts.append(f"verdicts over the rule: {_short(s.extra['overruled'].get('rule', ''), 90)}")
    return "- " + " · ".join(parts)


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


__all__ = ["ReviewChat", "ChatReply", "Command", "CommandError", "parse_command", "render_answer", "CHAT_FLOW",
           "COMMANDS_LINE", "HELP_TEXT", "DEFAULT_SESSION"]
