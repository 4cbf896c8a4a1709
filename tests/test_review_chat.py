"""Review in the chat (overlay_core.review_chat): commands on a real ReviewStore (SQLite in tmp_path) and a real
accumulator file; questions answered by a tiny fake reasoner whose choices read that file, so a verdict changes
the next answer the way the real reasoner's glob term does."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from overlay_core.accumulator import Accumulator
from overlay_core.review_chat import (DEFAULT_SESSION, CommandError, ReviewChat, events_t, parse_command)
from overlay_core.verification import CORRECT_BONUS, REJECT_PENALTY, ReviewStore

pytestmark = pytest.mark.timeout(60)

#: step -> (prev, [(word, base score)]): 'A hash table is a data structure .'
_STEPS = {1: ("is", [("a", -1.0), ("the", -1.5), ("an", -2.0)]),
          2: ("a", [("data structure", -0.5), ("data", -0.8), ("table", -1.1), ("list", -3.0)]),
          3: ("structure", [(".", -0.2), ("that", -0.9)])}


class FakeReasoner:
    """``answer(question) -> trace dict``: each step picks the best of base score + G[prev -> first word]."""

    def __init__(self, acc_path, blocked=None):
        self.acc_path, self.calls = acc_path, 0
        self.blocked = blocked or {}  # word -> the rule that blocks it (its score is None, as the reasoner's)

    def answer(self, question: str) -> dict:
        self.calls += 1
        acc = Accumulator(self.acc_path) if self.acc_path.exists() else Accumulator()
        steps, words = [], []
        for n, (prev, cands) in _STEPS.items():
            scored = []
            for w, base in cands:
                first = w.split()[0]
                g = acc.global_score(prev, first)
                scored.append({"word": w, "words": w.split(), "source": "corpus", "p_adj": 0.1, "count": 3,
                               "ctx": 0.0, "llm": -1.0, "glob": g, "score": base + g,
                               "verdicts": list(acc.verdicts_for(prev, first)), "passages": ["p1"],
                               "blocked": self.blocked.get(w)})
                if scored[-1]["blocked"]:
                    scored[-1]["score"] = None
            scored.sort(key=lambda c: (c["score"] is None, -(c["score"] or 0.0)))
            best = scored[0]
            words += best["words"]
            steps.append({"step": n, "prev": prev, "context": [prev], "chosen": best["word"],
                          "chosen_words": best["words"], "source": "corpus", "candidates": scored,
                          "latency_ms": {"total": 1.0}})
        steps.append({"step": 4, "prev": ".", "context": ["."], "chosen": None, "chosen_words": [], "source": None,
                      "candidates": [], "latency_ms": {"total": 0.0}})
        answer = "A hash table is " + " ".join(words)
        return {"question": question, "answer": answer, "settings": {}, "weights": {"w_glob": 1.0},
                "passages": [{"rank": 0, "id": "p1", "source": "FOLDOC:hash table", "distance": 0.3,
                              "text": "hash table: a data structure"},
                             {"rank": 1, "id": "p2", "source": "FOLDOC:table", "distance": 0.5, "text": "table"}],
                "prefix": ["A", "hash", "table", "is"], "trace": steps, "stop_reason": "no candidates"}


@pytest.fixture()
def env(tmp_path):
    store = ReviewStore(tmp_path / "reviews.sqlite3")
    acc = tmp_path / "accumulator.safetensors"
    chat = ReviewChat(store, acc)
    fake = FakeReasoner(acc)

    def say(text, session="s1", reviewer="alice"):
        return chat.handle(text, session=session, reviewer=reviewer, answer=fake.answer)

    yield chat, store, acc, fake, say
    store.close()


def _count(store, table="verdicts"):
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar()


# ---------------------------------------------------------------------- parsing
@pytest.mark.parametrize("text, want", [
    ("approve", ("approve", None, "", "", "")),
    ("approve 3", ("approve", 3, "", "", "")),
    ("reject 2 wrong word", ("reject", 2, "", "wrong word", "")),
    ("Reject #2: wrong", ("reject", 2, "", "wrong", "")),
    ("correct 2 to table too vague", ("correct", 2, "table too vague", "", "")),
    ("revert", ("revert", None, "", "", "")),
    ("revert VD_0123456789abcdef", ("revert", None, "", "", "vd_0123456789abcdef")),
    ("queue", ("queue", None, "", "", "")),
    ("show it_0123456789abcdef", ("show", None, "", "", "it_0123456789abcdef")),
    ("/help", ("help", None, "", "", "")),
    ("отклонить 2 не то слово", ("reject", 2, "", "не то слово", "")),
    ("исправить 2 на table", ("correct", 2, "table", "", "")),
    ("одобрить", ("approve", None, "", "", "")),
    ("отменить", ("revert", None, "", "", "")),
    ("очередь", ("queue", None, "", "", "")),
])
def test_parse_commands(text, want):
    c = parse_command(text)
    assert (c.name, c.step, c.word, c.comment, c.ref) == want


@pytest.mark.parametrize("text", ["What is a hash table?", "show me the hash tables", "queue theory basics",
                                  "reject 2 or not?", "", "help me understand hashing"])
def test_questions_are_not_commands(text):
    assert parse_command(text) is None


@pytest.mark.parametrize("text, hint", [("reject wrong word", "reject N why"), ("correct 2", "correct 2 to WORD"),
                                        ("correct x to y", "correct N to WORD"), ("revert 12", "revert vd_"),
                                        ("show", "show it_")])
def test_bad_command_says_what_to_type(text, hint):
    with pytest.raises(CommandError, match=hint.replace("_", "_")):
        parse_command(text)


# ---------------------------------------------------------------------- the scenario
def test_ask_reject_ask_revert_ask(env):
    chat, store, acc, fake, say = env
    first = say("What is a hash table?")
    assert first.action == "question" and first.item_id.startswith("it_")
    assert first.text.startswith("A hash table is a data structure .")
    assert "Sources: FOLDOC:hash table; FOLDOC:table" in first.text
    assert "- **2** data structure (-0.50) · runner-up: data (-0.80)" in first.text
    assert "`reject N why`" in first.text.splitlines()[-1] and first.item_id in first.text.splitlines()[-1]
    assert chat.current_item("s1") == first.item_id

    calls = fake.calls
    rej = say("reject 2 wrong word")
    assert fake.calls == calls  # commands never run the reasoner
    assert rej.action == "reject" and rej.verdict_id.startswith("vd_")
    assert f"step 2 of `{first.item_id}`: “data structure” (after “a”)" in rej.text
    assert rej.verdict_id in rej.text and "(wrong word)" in rej.text
    assert f"- a -> data: {-REJECT_PENALTY:+g}" in rej.text
    assert Accumulator(acc).global_score("a", "data") == -REJECT_PENALTY
    v = store.get_verdict(rej.verdict_id)
    assert (v.kind, v.step, v.reviewer, v.comment, v.item_id) == ("reject", 2, "alice", "wrong word", first.item_id)

    second = say("What is a hash table?")
    assert second.text.startswith("A hash table is a table")
    # one verdict touched both candidates that start with "data" (the edge a -> data): named once
    assert f"- **2** table (-1.10) · runner-up: list (-3.00) · verdicts: `{rej.verdict_id}` (data structure, data)" \
        in second.text
    assert chat.current_item("s1") == second.item_id != first.item_id

    rev = say("revert")
    assert rev.action == "revert" and f"**Reverted** `{rej.verdict_id}` (reject step 2" in rev.text
    assert rev.verdict_id in rev.text and f"- a -> data: {REJECT_PENALTY:+g}" in rev.text
    assert Accumulator(acc).global_score("a", "data") == 0.0
    assert store.get_verdict(rej.verdict_id).reverted_by == rev.verdict_id

    third = say("What is a hash table?")
    assert third.text.startswith("A hash table is a data structure .")
    # the edge still carries the verdict (G is back to 0): named as reverted, its revert entry not listed apart
    assert f"`{rej.verdict_id}` (data structure, data; reverted by `{rev.verdict_id}`)" in third.text
    assert f"`{rev.verdict_id}` (" not in third.text


def test_correct_and_approve_and_revert_by_id(env):
    chat, store, acc, fake, say = env
    it = say("What is a hash table?").item_id
    cor = say("correct 2 to table the usual word")
    assert cor.action == "correct" and "→ “table”" in cor.text and "(the usual word)" in cor.text
    assert f"- a -> data: {-REJECT_PENALTY:+g}" in cor.text and f"- a -> table: {CORRECT_BONUS:+g}" in cor.text
    app = say("approve")
    assert app.action == "approve" and f"the whole answer of `{it}`" in app.text
    assert "- is -> a: +1" in app.text
    # revert alone takes this reviewer's last live verdict: the approval, then the correction
    assert say("revert").text.count(app.verdict_id) == 1
    r = say(f"revert {cor.verdict_id}")
    assert r.action == "revert" and f"- a -> table: {-CORRECT_BONUS:+g}" in r.text
    assert "no verdict left to revert" in say("revert").text
    assert Accumulator(acc).global_score("a", "table") == 0.0


def test_a_verdict_against_a_standing_one_says_both_count(env):
    chat, store, acc, fake, say = env
    say("What is a hash table?")
    app = say("approve 2")
    assert "Also standing" not in app.text
    rej = say("reject 2 after all")
    assert rej.action == "reject"
    assert (f"Also standing on step 2: `{app.verdict_id}` (approve by alice) — both verdicts count; "
            "`revert vd_…` withdraws one.") in rej.text
    say(f"revert {app.verdict_id}")
    assert "Also standing" not in say("reject 2 once more").text  # the approval is withdrawn; rejects agree


def test_queue_and_show(env):
    chat, store, acc, fake, say = env
    a = say("What is a hash table?").item_id
    b = say("What is a list?").item_id
    q = say("queue")
    assert q.action == "queue" and "2 items waiting" in q.text
    assert q.text.index(b) < q.text.index(a)  # newest first
    vid = say("reject 3").verdict_id  # on b, the current item
    s = say(f"show {a}")
    assert s.action == "show" and "**Question:** What is a hash table?" in s.text and "(pending)" in s.text
    assert chat.current_item("s1") == a
    say("approve 1")
    assert [v.kind for v in store.verdicts(a)] == ["approve"]
    shown_b = say(f"show {b}").text
    assert f"`{vid}` reject step 3 by alice" in shown_b and "(rejected)" in shown_b
    assert "queue is empty" in say("queue").text  # both judged now


def test_sessions_are_separate_and_survive_a_new_store(env, tmp_path):
    chat, store, acc, fake, say = env
    it = say("What is a hash table?", session="s1").item_id
    assert say("reject 2", session="s2").text.startswith("no current item in this chat")
    store2 = ReviewStore(tmp_path / "reviews.sqlite3")  # e.g. after a LangFlow restart
    chat2 = ReviewChat(store2, acc)
    assert chat2.current_item("s1") == it
    r = chat2.handle("reject 2", session="s1", reviewer="bob", answer=fake.answer)
    assert r.action == "reject" and store2.get_verdict(r.verdict_id).reviewer == "bob"
    # bob's verdict is not alice's to revert with a bare `revert`
    assert "alice has no verdict left to revert" in say("revert").text
    store2.close()
    assert chat.current_item(None) is None and DEFAULT_SESSION == "default"


@pytest.mark.parametrize("text, reviewer, hint", [
    ("reject 9 x", "alice", "has no step 9 (it has steps 1..3)"),
    ("approve 4", "alice", "chose nothing at step 4"),
    ("correct 2 to banana", "alice", "“banana” is not a candidate at step 2"),
    ("correct 2 to data structure", "alice", "already chose “data structure”; type `approve 2`"),
    ("revert vd_0123456789abcdef", "alice", "there is no verdict `vd_0123456789abcdef`"),
    ("revert vd_xyz", "alice", "is not a verdict id"),
    ("show it_0123456789abcdef", "alice", "there is no item `it_0123456789abcdef`"),
    ("reject 2", "", "no reviewer: fill in Reviewer"),
    ("revert", "  ", "no reviewer: fill in Reviewer"),
])
def test_bad_commands_write_nothing(env, text, reviewer, hint):
    chat, store, acc, fake, say = env
    say("What is a hash table?")
    n_events, mtime = _count(store, "chat_events"), acc.stat().st_mtime_ns if acc.exists() else None
    r = say(text, reviewer=reviewer)
    assert r.action == "error" and hint in r.text and "\n" not in r.text
    assert _count(store) == 0 and _count(store, "chat_events") == n_events
    assert (acc.stat().st_mtime_ns if acc.exists() else None) == mtime


def test_no_current_item_and_help(env):
    chat, store, acc, fake, say = env
    r = say("approve")
    assert r.action == "error" and "ask a question first" in r.text
    assert "`reject N why`" in say("help").text and "отклонить" in say("help").text
    assert "queue is empty" in say("queue").text
    assert fake.calls == 0
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events_t)).scalar() == 0


def test_a_correction_to_a_span_that_begins_with_the_chosen_word_is_refused_and_not_offered(env):
    chat, store, acc, fake, say = env
    say("What is a hash table?")  # step 2 chose "data structure"; "data" begins with the same word
    r = say("correct 2 to data")
    assert r.action == "error" and "“data” begins with “data”, the word step 2 chose" in r.text
    assert "type `reject 2`" in r.text and _count(store) == 0
    offered = say("correct 2 to banana").text
    assert "one of: table, list" in offered and "data" not in offered.split("one of:")[1]


def test_an_answer_stopped_by_verdicts_says_so_and_names_them():
    from overlay_core.review_chat import render_answer
    from overlay_core.trace import Trace

    blocked = {"word": "is", "words": ["is"], "source": "corpus", "blocked": "every candidate rejected by review",
               "verdicts": ["vd_00000000000000aa"]}
    t = Trace.from_dict({"question": "q", "answer": "For example, group proxy", "trace": [
        {"step": 2, "prev": "proxy", "context": ["proxy"], "chosen": None, "chosen_words": [], "source": None,
         "candidates": [blocked], "latency_ms": {}}], "stop_reason": "every candidate rejected by review"})
    text = render_answer(t, "it_00000000000000bb")
    assert ("**Stopped at step 2:** every candidate rejected by review (verdicts `vd_00000000000000aa`)"
            in text), text


def test_a_verdict_on_a_blocked_candidate_is_refused_in_the_chat_and_said_not_counted_in_the_answer(env):
    """A rule that blocks a word decides again on the next answer: the chat refuses a correction to it and says
    why; a verdict that favours it anyway (given on the command line) is named as not counted, with the rule, in
    the next answer's step line and in its compact and text traces."""
    from overlay_core.trace import Trace, to_compact, to_text

    chat, store, acc, fake, say = env
    fake.blocked = {"list": "repeats the 3-gram 'a b c'"}
    it = say("What is a hash table?").item_id
    refused = say("correct 2 to list the usual word")
    assert refused.action == "error" and refused.text == (
        "“list” was blocked at step 2 (repeats the 3-gram 'a b c'), so a correction to it would not count; "
        "type `reject 2` to count the chosen word as wrong")
    vid = store.verdict(it, reviewer="bob", kind="correct", step=2, word="list")
    store.apply(Accumulator(acc) if acc.exists() else Accumulator(acc), save=True)
    again = say("What is a hash table?")
    assert "data structure" in again.text  # the rule still decides
    assert "not counted: list blocked — repeats the 3-gram 'a b c'" in again.text
    t = Trace.from_dict(fake.answer("What is a hash table?"), "answer")
    note = f"{vid} favours 'list' (+{CORRECT_BONUS:g}), but it was blocked: repeats the 3-gram 'a b c'"
    assert f"**Verdict not counted** at step 2: {note}" in to_compact(t)
    assert f"verdict not counted at step 2: {note}" in to_text(t)
    # a penalized candidate that a rule blocks is the verdict working: nothing is said
    fake.blocked = {"data structure": "repeats"}
    assert "not counted" not in to_text(Trace.from_dict(fake.answer("What is a hash table?"), "answer"))


def test_the_receipt_of_an_answer_queued_for_review_leads_with_the_answer_and_says_where_to_judge_it(env):
    """The Overlay Answer For Review flow's reply was the item id and command lines; now the answer, its steps, and
    where to judge it (the expert chat or the command line)."""
    from overlay_core.review_chat import receipt

    chat, store, acc, fake, say = env
    text = receipt(fake.answer("What is a hash table?"), "it_0123456789abcdef")
    assert text.startswith("A hash table is a data structure .\n\nSources: FOLDOC:hash table; FOLDOC:table")
    assert "**Steps**" in text and "- **2** data structure" in text
    assert text.endswith("**Queued for review** as `it_0123456789abcdef`. Judge it in the *Overlay Expert Chat* flow "
                         "(`show it_0123456789abcdef`, then `reject N why`, `approve` or `correct N to WORD`), or on "
                         "the command line: `overlay review verdict it_0123456789abcdef --reviewer NAME --kind reject "
                         "--step N`.")


def test_the_queue_shows_a_question_answered_the_same_way_again_once(env):
    chat, store, acc, fake, say = env
    ids = [say("What is a hash table?").item_id for _ in range(3)]
    other = say("What is a list?").item_id
    q = say("queue").text
    assert "**4 items waiting for review**:" in q
    assert f"- `{ids[2]}` What is a hash table? → " in q and f"(asked 3 times; older: `{ids[1]}`, `{ids[0]}`)" in q
    assert q.count("What is a hash table?") == 1 and f"`{other}` What is a list?" in q


def test_the_chat_keeps_its_sessions_in_postgresql_too(tmp_path):
    """`chat_events` on PostgreSQL (OVERLAY_DB_URL, the served set-up): ask, reject, the session's current item and
    last verdict found again by a new chat on the same database, revert."""
    from test_verification import fresh_pg_schema

    acc = tmp_path / "accumulator.safetensors"
    fake = FakeReasoner(acc)
    with fresh_pg_schema() as url:
        store = ReviewStore(url)
        chat = ReviewChat(store, acc)
        it = chat.handle("What is a hash table?", session="s1", reviewer="alice", answer=fake.answer).item_id
        rej = chat.handle("reject 2 wrong word", session="s1", reviewer="alice", answer=fake.answer)
        assert rej.action == "reject" and Accumulator(acc).global_score("a", "data") == -REJECT_PENALTY
        store.close()
        store2 = ReviewStore(url)  # e.g. another replica
        chat2 = ReviewChat(store2, acc)
        assert chat2.current_item("s1") == it and chat2.current_item("s2") is None
        rev = chat2.handle("revert", session="s1", reviewer="alice", answer=fake.answer)
        assert rev.action == "revert" and f"**Reverted** `{rej.verdict_id}`" in rev.text
        assert Accumulator(acc).global_score("a", "data") == 0.0
        store2.close()
