"""The reasoning loop with fakes: a scripted selector, a tiny adjacency table and knowledge base (no model,
no ChromaDB; milliseconds). The same loop runs on real parts in tests/test_reasoner.py."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from overlay_core import text as T
from overlay_core.accumulator import LOG_P_FLOOR, Accumulator, ScoreWeights
from overlay_core.adjacency import Edge
from overlay_core.errors import InputError
from overlay_core.reasoner import Reasoner
from overlay_core.retrieval import RetrievedPassage
from overlay_core.settings import ReasonerSettings
from overlay_core.text import words
from overlay_core.trace import StopReason, Trace

PASSAGES = [
    ("p1", "widget: A widget is a small gadget used in tests.", 0.1, {"headword": "widget", "chunk": 0}),
    ("p2", "gadget: A gadget is a device with a clever design.", 0.4, {"headword": "gadget", "chunk": 0}),
]


class FakeKB:
    """``query`` returns every passage (nearest first); ``where={"headword": h}`` filters by headword."""

    def __init__(self, passages=PASSAGES):
        self.passages = [RetrievedPassage(i, t, d, dict(md, source="TEST")) for i, t, d, md in passages]
        self.queries = 0

    def query(self, text, k=3, where=None):
        self.queries += 1
        hits = [p for p in self.passages if not where or p.metadata.get("headword") == where.get("headword")]
        return hits[:k]


class FakeTable:
    """Bigram successors: ``{prev: [(word, prob), ...]}``; count 1 per edge, provenance ``["p1"]``."""

    fingerprint = "fake-table"

    def __init__(self, succ: dict[str, list[tuple[str, float]]]):
        self.succ = succ

    def next_words(self, context, top_n=16):
        prev = list(context)[-1]
        return [Edge((prev,), w, 1, p, 1, ("p1",), 2) for w, p in self.succ.get(prev, [])[:top_n]]

    def edge(self, context, word):
        return next((e for e in self.next_words(context, 99) if e.word == word), None)


class FakeSelector:
    """Scores a continuation by a table of preferred texts (stripped): ``prefs[text]`` nats, else ``-20``.

    ``calls`` counts ``score`` calls; one token per word, so ``logprob_mean = logprob_sum / n_words``."""

    n_ctx = 2048
    fingerprint = "fake-model"

    def __init__(self, prefs: dict[str, float]):
        self.prefs, self.calls = prefs, 0

    def format_prompt(self, instruction, user):
        return f"{instruction}\n{user}\n"

    def count_tokens(self, text):
        return len(text.split())

    def score(self, context, candidates, *, calibrate=False):
        self.calls += 1
        out = []
        for text in candidates:
            lp = self.prefs.get(text.strip(), -20.0)
            n = max(1, len(text.split()))
            out.append(SimpleNamespace(logprob_sum=lp, logprob_mean=lp / n, calibrated=lp if calibrate else None,
                                       token_ids=list(range(n)), boundary_merged=False))
        return out


#: the LLM alone decides (plus the verdicts' global score), so each test states its answer by the preferences
LLM_ONLY = ScoreWeights(w_adj=0.0, w_ctx=0.0, w_llm=1.0, w_glob=1.0, w_rel=0.0)
SUCC = {"is": [("a", 0.5), ("the", 0.3)], "a": [("small", 0.4), ("device", 0.2)], "small": [("gadget", 0.9)],
        "gadget": [("used", 0.5), (".", 0.1)], "used": [("in", 1.0)], "in": [("tests", 1.0)], "tests": [(".", 1.0)]}


def make(prefs, succ=SUCC, weights=LLM_ONLY, acc=None, **settings):
    return Reasoner(FakeKB(), FakeTable(succ), FakeSelector(prefs), acc or Accumulator(), weights=weights,
                    settings=ReasonerSettings(**{"min_words": 2, **settings}))


def test_each_step_takes_the_best_scored_candidate_and_stops_at_the_sentence_end():
    r = make({"a small gadget used": -1.0, "in tests.": -0.5, "in": -0.6})
    t = r.answer_trace("What is a widget?")
    assert isinstance(t, Trace) and t.prefix == ["A", "widget", "is"]
    assert t.answer == "A widget is a small gadget used in tests."
    assert [s.chosen for s in t.steps] == ["a small gadget used", "in tests."]
    assert t.stop_reason is StopReason.SENTENCE_END and t.to_dict()["stop_reason"] == "sentence end"
    for st in t.steps:
        live = [c for c in st.candidates if c.blocked is None]
        assert st.candidates[0].word == st.chosen == max(live, key=lambda c: c.score).word
    assert r.selector.calls == len(t.steps)


def test_the_score_is_the_weighted_sum_of_the_traced_features():
    w = ScoreWeights(w_adj=0.5, w_ctx=6.0, w_llm=1.0, w_glob=1.0, w_rel=6.0)
    acc = Accumulator()
    acc.apply_delta("is", "the", 2.5, "vd_0000000000000001")
    t = make({"a": -3.0, "the": -4.0}, weights=w, acc=acc, max_words=1).answer_trace("What is a widget?")
    scored = [c for st in t.steps for c in st.candidates if c.score is not None]
    assert scored
    for c in scored:
        log_p = math.log(c.p_adj) if c.p_adj else LOG_P_FLOOR
        assert c.score == w.combine(log_p_adj=log_p, ctx=c.ctx, llm=c.llm, glob=c.glob, rel=c.rel)
    the = next(c for c in t.steps[0].candidates if c.word == "the")
    assert the.glob == 2.5 and the.verdicts == ["vd_0000000000000001"] and the.source == "corpus"
    assert the.p_adj == 0.3 and the.edge == "is -> the"


def test_max_words_stops_the_answer():
    t = make({"a": -0.1, "small": -0.1, "gadget": -0.5}, span_words=1, max_words=3).answer_trace("What is a widget?")
    assert t.answer_words[len(t.prefix):] == ["a", "small", "gadget"] and t.stop_reason is StopReason.MAX_WORDS


def test_a_rejected_edge_changes_the_choice_and_the_trace_names_the_verdict():
    prefs = {"a": -0.1, "the": -0.5}
    first = make(prefs, span_words=1, max_words=1).answer_trace("What is a widget?")
    assert first.steps[0].chosen == "a"
    acc = Accumulator()
    acc.apply_delta(*first.steps[0].edge, -100.0, "vd_00000000000000aa")
    second = make(prefs, acc=acc, span_words=1, max_words=1).answer_trace("What is a widget?")
    assert second.steps[0].chosen == "the"
    rejected = next(c for c in second.steps[0].candidates if c.word == "a")
    assert rejected.verdicts == ["vd_00000000000000aa"] and rejected.glob == -100.0


def test_every_candidate_rejected_stops_the_answer():
    acc = Accumulator()
    for w in ("a", "the"):
        acc.apply_delta("is", w, -100.0, f"vd_{w:0>16}")
    r = make({}, succ={"is": [("a", 0.5), ("the", 0.5)]}, acc=acc, passage_candidates=False)
    t = r.answer_trace("What is a widget?")
    assert t.stop_reason is StopReason.ALL_REJECTED and t.answer_words == t.prefix
    assert all(c.blocked and "verdict" in c.blocked for c in t.steps[0].candidates)
    assert r.selector.calls == 0  # nothing left to score


def test_no_candidates_stops_before_the_selector():
    r = make({}, succ={}, passage_candidates=False)
    t = r.answer_trace("What is a widget?")
    assert t.stop_reason is StopReason.NO_CANDIDATES and t.steps == [] and r.selector.calls == 0


def test_a_sentence_end_before_min_words_is_blocked():
    t = make({"gadget": -0.1, ".": 0.0, "used": -1.0, "in": -0.1, "tests": -0.1}, span_words=1, min_words=4,
             passage_candidates=False, succ={"is": [("gadget", 1.0)], "gadget": [(".", 0.5), ("used", 0.5)],
                                             "used": [("in", 1.0)], "in": [("tests", 1.0)], "tests": [(".", 1.0)]}
             ).answer_trace("What is a widget?")
    blocked = {c.word: c.blocked for c in t.steps[1].candidates}
    assert blocked["."] == "ends the sentence before min_words=4" and t.steps[1].chosen == "used"
    assert t.answer == "A widget is gadget used in tests."


def test_ties_go_to_the_smaller_text_whatever_the_order():
    succ = {"is": [("b", 0.5), ("a", 0.5)]}
    t = make({"a": -1.0, "b": -1.0}, succ=succ, passage_candidates=False, max_words=1).answer_trace("What is a widget?")
    assert t.steps[0].chosen == "a"
    succ = {"is": [("a", 0.5), ("b", 0.5)]}
    assert make({"a": -1.0, "b": -1.0}, succ=succ, passage_candidates=False,
                max_words=1).answer_trace("What is a widget?").steps[0].chosen == "a"


def test_a_question_about_nothing_in_the_passages_is_declined_without_scoring():
    r = make({})
    t = r.answer_trace("What is a flibbertigibbet?")
    assert t.refused and t.stop_reason is StopReason.DECLINED and t.frame is None and t.steps == []
    assert t.to_dict()["stop_reason"] == "declined: " + t.refusal and r.selector.calls == 0
    assert [p.id for p in t.passages] == ["p1", "p2"]


def test_the_trace_dict_reads_back_as_the_same_trace():
    t = make({"a small gadget used": -1.0, "in tests.": -0.5}).answer_trace("What is a widget?")
    d = t.to_dict()
    assert Trace.from_dict(d).to_dict() == d and "uses" not in d["trace"][0]["candidates"][0]
    assert d["settings"] == ReasonerSettings(min_words=2).as_dict() and d["weights"] == LLM_ONLY.as_dict()


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_is_refused(question):
    from overlay_core.errors import InputError

    with pytest.raises(InputError, match="the question is empty"):
        make({}).answer(question)


def test_words_of_the_answer_are_candidates_of_their_step():
    t = make({"a small gadget used": -1.0, "in tests.": -0.5}).answer_trace("What is a widget?")
    for st in t.steps:
        assert st.chosen in {c.word for c in st.candidates}
        assert words(st.chosen) == st.chosen_words


SPLICE = [
    ("p1", "http: The port of HTTP is 80 by default.", 0.1, {"headword": "http", "chunk": 0}),
    ("p2", "ssh: The port of SSH is 22 always.", 0.2, {"headword": "ssh", "chunk": 0}),
]


def splice_reasoner(**settings):
    # the LLM prefers to splice the other sentence in ("The port of" + "SSH is 22 …")
    prefs = {"The port of HTTP": -1.0, "SSH": -0.1, "SSH is 22 always": -0.1, "is 80 by default": -2.0,
             "is": -3.0}
    return Reasoner(FakeKB(SPLICE), FakeTable({}), FakeSelector(prefs), Accumulator(), weights=LLM_ONLY,
                    settings=ReasonerSettings(**{"min_words": 2, "cross_encoder": False, "span_words": 3,
                                                 **settings}))


def test_an_answer_finishes_the_sentence_it_copies_and_the_trace_names_the_blocked_splice():
    t = splice_reasoner().answer_trace("Which port does HTTP use?")
    assert t.answer == "The port of HTTP is 80 by default.", t.answer
    blocked = [c for st in t.steps for c in st.candidates if c.blocked and "keep_sentence" in c.blocked]
    assert blocked and all("SSH" not in st.chosen for st in t.steps)


def test_without_keep_sentence_the_selector_may_leave_the_sentence():
    t = splice_reasoner(keep_sentence=False).answer_trace("Which port does HTTP use?")
    assert t.answer == "The port of SSH is 80 by default."  # what keep_sentence prevents
    assert not any(c.blocked and "keep_sentence" in c.blocked for st in t.steps for c in st.candidates)


def test_a_reviewers_added_edge_may_leave_the_copied_sentence():
    acc = Accumulator()
    acc.add_edge("of", "HTTPS", "vd_0000000000000002")
    prefs = {"The port of HTTP": -5.0, "The port of": -1.0, "HTTPS": -0.1, "HTTP is 80": -3.0}
    r = Reasoner(FakeKB(SPLICE), FakeTable({}), FakeSelector(prefs), acc, weights=LLM_ONLY,
                 settings=ReasonerSettings(min_words=2, cross_encoder=False, span_words=3))
    t = r.answer_trace("Which port does HTTP use?")
    expert = next(c for st in t.steps for c in st.candidates if c.word == "HTTPS")
    assert expert.blocked is None and "expert" in expert.source
    assert "HTTPS" in [st.chosen for st in t.steps]


# -- the stages as parts: remove a source, add a guard or a glossary source --

def test_the_default_stages_are_named_and_follow_their_protocols():
    from overlay_core.stages.base import CandidateSource, Guard

    r = make({})
    assert [s.name for s in r.sources] == ["corpus", "passage", "passage-start", "answer-span", "after-yes-no",
                                           "expert"]
    assert [g.name for g in r.guards] == ["closing-quote", "min-words", "sentence-inside-span", "repeated-ngram",
                                          "keep-sentence", "reviewer-rejections"]
    assert all(isinstance(s, CandidateSource) for s in r.sources) and all(isinstance(g, Guard) for g in r.guards)


def test_without_the_corpus_source_no_candidate_comes_from_the_corpus():
    prefs = {"a small gadget used": -1.0, "in tests.": -0.5}
    full = make(prefs).answer_trace("What is a widget?")
    assert any("corpus" in c.source for st in full.steps for c in st.candidates)
    r = make(prefs)
    r.sources = [s for s in r.sources if s.name != "corpus"]
    t = r.answer_trace("What is a widget?")
    assert t.answer == full.answer == "A widget is a small gadget used in tests."
    assert not any("corpus" in c.source for st in t.steps for c in st.candidates)


def test_a_ban_words_guard_blocks_the_word_and_names_itself():
    from overlay_core.stages.guards import BanWords

    r = make({"a small gadget used": -1.0, "a": -2.0, "small": -2.5, "device": -3.0}, span_words=1, max_words=2)
    r.guards.append(BanWords(("Small",), name="house style"))
    t = r.answer_trace("What is a widget?")
    blocked = [c for st in t.steps for c in st.candidates if c.blocked and "banned" in c.blocked]
    assert blocked and all(c.blocked == "holds the banned word 'small' (house style)" for c in blocked)
    assert "small" not in [w.casefold() for w in t.answer_words]


def test_a_glossary_source_proposes_its_terms_and_a_required_term_holds_the_sentence_open():
    from overlay_core.stages.guards import RequireTerm
    from overlay_core.stages.sources import Glossary

    prefs = {"a small gadget used": -1.0, "in tests.": -0.5, "widget toolkit": -0.1}
    r = make(prefs)
    r.sources.append(Glossary(("widget toolkit",), name="my glossary"))
    r.guards.append(RequireTerm("toolkit"))
    t = r.answer_trace("What is a widget?")
    first = t.steps[0]
    assert first.chosen == "widget toolkit" and first.source == "my glossary"
    r2 = make(prefs)
    r2.guards.append(RequireTerm("toolkit"))
    t2 = r2.answer_trace("What is a widget?")
    ends = [c for st in t2.steps for c in st.candidates if c.blocked and "required term" in c.blocked]
    assert ends and ends[0].blocked == "ends the sentence before the required term 'toolkit' (require-term)"
    assert t2.stop_reason is not StopReason.SENTENCE_END


def test_stage_specs_build_the_default_stages_in_the_loop_order_whatever_the_order_given():
    from overlay_core.errors import InputError
    from overlay_core.stages import specs as SP

    r = make({})
    src = SP.build_sources(list(reversed(SP.default_source_specs())), r.table, r.accumulator)
    grd = SP.build_guards(list(reversed(SP.default_guard_specs())), r.accumulator)
    assert [s.name for s in src] == [s.name for s in r.sources]
    assert [g.name for g in grd] == [g.name for g in r.guards]
    mine = SP.build_guards([SP.GuardSpec("reviewer-rejections"), SP.GuardSpec("ban-words", "house", ("x",))],
                           r.accumulator)
    assert [g.name for g in mine] == ["house", "reviewer-rejections"]  # the reviewer check stays last
    with pytest.raises(InputError, match="unknown guard 'ban'; choose one of: closing-quote"):
        SP.build_guards([SP.GuardSpec("ban")], r.accumulator)
    with pytest.raises(InputError, match="the candidate source 'glossary' needs words"):
        SP.build_sources([SP.SourceSpec("glossary", words=(" ",))], r.table, r.accumulator)


def test_a_section_headed_with_an_article_is_about_the_term_without_it():
    """A Markdown section "The Zephyr Toolkit" is about the asked "Zephyr Toolkit" (its sentences may then continue
    the question's frame: "The Zephyr Toolkit was written by …")."""
    from overlay_core.stages.ranking import about

    p = RetrievedPassage("z", "the zephyr toolkit: It was written by Mara Linde.", 0.4, {"headword": "the zephyr toolkit"})
    assert about(p, "zephyr toolkit") and about(p, "the Zephyr Toolkit")
    assert not about(p, "zephyr")
    aliased = RetrievedPassage("a", "x: y", 0.4, {"headword": "x", "aliases": '["The Widget"]'})
    assert about(aliased, "widget")


def test_a_sentence_opening_with_a_pronoun_is_about_the_subject_of_the_sentence_before():
    """"It was written by Marta Kowalski" after "The Zephyr Toolkit is …" is about the Zephyr Toolkit: the
    cross-encoder reads it with the subject in the pronoun's place; "This toolkit …" (a determiner) is not a
    pronoun, and a pronoun after a sentence about something else is not read as the subject."""
    from overlay_core import evidence as E

    first, second = T.words("The Zephyr Toolkit is a small library."), T.words("It was written by Marta Kowalski.")
    assert E.opens_with("Zephyr Toolkit", first) and not E.opens_with("Zephyr Toolkit", second)
    assert E.refers_back(second) and not E.refers_back(T.words("This toolkit is small."))
    assert T.join(E.read_as("Zephyr Toolkit", second)) == "Zephyr Toolkit was written by Marta Kowalski."
    assert E.read_as("Zephyr Toolkit", first) == first
    # the short name a document uses once it has named the thing carries the subject on to the next "It"
    assert E.names_again("Zephyr Toolkit", T.words("The toolkit is released under the MIT license."))
    assert not E.names_again("Zephyr Toolkit", T.words("The library is small."))


@pytest.mark.parametrize("question,sentence,want", [
    # another value in the place the question claims one: a number, a quantity word, a name, a word in one frame
    ("Did the 8080 have a 32-bit address bus?", "the 8080 had a 16-bit address bus and an 8-bit data bus.",
     ("32-bit", "16-bit")),
    ("Did the 6502 have many registers?", "the 6502 had very few registers.", ("many", "few")),
    ("Was Perl originally developed for Windows?", "Originally developed for Unix, it is now available.",
     ("Windows", "Unix")),
    ("Is SMTP a client to server protocol?", "it is a server to server protocol.", ("client", "server")),
    # a question opening with its copula is read in the sentence's order too ("the bakery is … on Mondays")
    ("Is the bakery open on Mondays?", "The bakery is closed on Mondays.", ("open", "closed")),
    ("Is the museum open on Mondays?", "It is closed on Mondays and Tuesdays.", ("open", "closed")),
    ("Is the museum open on Sundays?", "It is open from Wednesday to Sunday.", None),
    ("Is the museum open on Tuesdays?", "It is closed on Mondays and Tuesdays.", ("open", "closed")),
    ("Is the observatory open on Saturdays?", "The observatory is open to visitors on Saturdays.", None),
    ("Is Python object-oriented?", "Python is a dynamically typed language.", None),
    # the same value, in other words or another form: no contrast
    ("Does the 8088 have an 8-bit data bus?", "the Intel 8088 was a version with an eight-bit external data bus.", None),
    ("Does the Intel 80386DX have a 32-bit data bus?", "a version of the Intel 80386 with a 32-bit data bus.", None),
    ("Does Quillmark store documents as plain text?", "Quillmark stores documents as plain text.", None),
    ("Was EDSAC completed in England?", "the EDSAC was completed in 1949 at Cambridge in England.", None),
])
def test_a_yes_no_claim_contradicted_in_its_own_place(question, sentence, want):
    from overlay_core import evidence as E

    assert E.contrast(T.words(question), T.words(sentence)) == want


def test_a_negation_answers_no_only_about_the_questions_words():
    from overlay_core import evidence as E

    q = T.words("Is Python object-oriented?")
    assert E.negation_of(q, T.words("It is object-oriented and supports packages, modules, classes, a good C "
                                    "interface and has no arbitrary restrictions.")) is None
    assert E.negation_of(T.words("Does SQLite enforce the length of a VARCHAR?"),
                         T.words("SQLite does not enforce the length of a VARCHAR.")) == "not"
    assert E.negated_term(T.words("Is Unicode maintained by a for-profit company?"),
                          T.words("maintained by the non-profit consortium Unicode Inc.")) == "non-profit"


def test_a_yes_no_question_is_retrieved_by_the_name_it_asks_about():
    from overlay_core.stages.ranking import yes_no_name

    assert yes_no_name("Is Python object-oriented?") == "Python"
    assert yes_no_name("Did the 6502 have many registers?") == "6502"
    assert yes_no_name("Can I run it on a Mac?") is None


def test_a_passage_that_defines_the_term_is_ranked_first_for_a_definition():
    """"What is Quokka?": the section that says "Quokka is an embedded key-value database" comes before its nearer
    "History" section ("Quokka was created by …" is no definition) — for definitions only."""
    from overlay_core.stages.ranking import defines, rank_passages

    history = RetrievedPassage("h", "history: Quokka was created by Daniel Ortega in 2019.", 0.26, {"headword": "history"})
    main = RetrievedPassage("m", "quokka database: Quokka is an embedded key-value database.", 0.36,
                            {"headword": "quokka database"})
    assert defines(main, "Quokka") and not defines(history, "Quokka")
    assert defines(RetrievedPassage("e", "eniac: ENIAC was an early computer.", 0.3, {}), "ENIAC")
    assert [p.id for p in rank_passages([history, main], "Quokka", definition=True)] == ["m", "h"]
    assert [p.id for p in rank_passages([history, main], "Quokka")] == ["h", "m"]
    # a later chunk of a file not about the term is ranked by its distance, not after every first chunk
    later = RetrievedPassage("l", "regatta: The regatta was started by Harriet Voss.", 0.35, {"chunk": 1})
    first = RetrievedPassage("f", "onboarding: New staff meet the team.", 0.79, {"chunk": 0})
    assert [p.id for p in rank_passages([first, later], "Lantern Regatta")] == ["l", "f"]
    # a later chunk ranks as if LATER_CHUNK_DISTANCE farther; a section's opening chunk comes right before its
    # first later chunk (both stay in)
    md = {"source": "faq.txt", "headword": "1.2"}
    c4 = RetrievedPassage("c4", "1.2: Debian is the result of volunteers.", 0.055, dict(md, chunk=4))
    c0 = RetrievedPassage("c0", "1.2: Debian is a distribution.", 0.261, dict(md, chunk=0))
    other = RetrievedPassage("o", "4.1: Debian runs on many systems.", 0.258, {"source": "faq.txt", "headword": "4.1"})
    assert [p.id for p in rank_passages([c4, other, c0], "Debian")] == ["c0", "c4", "o"]
    assert [p.id for p in rank_passages([c4, other], "Debian")] == ["c4", "o"]  # 0.255 < 0.258


@pytest.mark.parametrize("cross,declined", [(0.0005, True), (0.2, False)])
def test_sentences_that_share_only_words_with_the_question_answer_nothing(cross, declined):
    # "How many bytes long is a UUID?" over the SQLite docs: a sentence bears by 'bytes' and a number
    # ("a few dozen bytes"), the cross-encoder rates it 0.0005 -> declined (decline_cross_encoder), not answered
    from overlay_core import evidence as E
    from overlay_core.questions import analyze
    from overlay_core.stages.base import Evidence
    from overlay_core.stages.opening import refusal

    toks = words("Patterns are at most a few dozen bytes in length.")
    sent = E.Sentence(0, 0, len(toks), 0.6, {"focus": 0.33, "type": 1.0, "lexical": 0.67, "cross_encoder": cross})
    ev = Evidence([toks], [[sent]], [[0] * len(toks)])
    passages = FakeKB().passages[:1]
    s = ReasonerSettings()
    why = refusal(analyze("How many bytes long is a UUID?"), passages, ev, s)
    assert (why is not None) is declined
    if declined:
        assert "decline_cross_encoder=0.1" in why and "0.0005" in why
    assert refusal(analyze("How many bytes long is a UUID?"), passages, ev,
                   ReasonerSettings(decline_cross_encoder=0.0)) is None  # 0 = never


@pytest.mark.parametrize("cross,declined", [(0.999, False), (0.63, True)])
def test_a_far_passage_answers_when_the_cross_encoder_is_sure_of_a_sentence(cross, declined):
    # "Who wrote the original zlib implementation?" over the SQLite docs: the passage is at distance 0.62 (beyond
    # refuse_distance 0.6) and names no subject entry; its sentence is rated 0.999 -> answered; 0.63 -> declined
    from overlay_core import evidence as E
    from overlay_core.questions import analyze
    from overlay_core.stages.base import Evidence
    from overlay_core.stages.opening import refusal

    toks = words("Other libraries with similar reach include: The original zlib implementation by Jean-loup Gailly.")
    sent = E.Sentence(0, 0, len(toks), 0.6, {"focus": 0.0, "lexical": 0.6, "cross_encoder": cross})
    ev = Evidence([toks], [[sent]], [[0] * len(toks)])
    far = [RetrievedPassage("p9", "Most Widely Deployed: " + " ".join(toks), 0.618, {"headword": "most widely deployed"})]
    why = refusal(analyze("Who wrote the original zlib implementation?"), far, ev, ReasonerSettings())
    assert (why is not None) is declined
    if declined:
        assert "distance 0.618 > refuse_distance=0.6" in why and "answer_far_cross_encoder=0.9" in why
    # a knowledge base of a multilingual embedder declines on its own scale (0.8): 0.618 is near there
    assert refusal(analyze("Who wrote the original zlib implementation?"), far, ev, ReasonerSettings(),
                   embedder="use-multilingual") is None


class GateSelector(FakeSelector):
    """A FakeSelector whose ``score`` waits until ``gate`` is set (answers stay in flight while a test looks)."""

    def __init__(self, prefs, gate, entered):
        super().__init__(prefs)
        self.gate, self.entered = gate, entered

    def score(self, context, candidates, *, calibrate=False):
        self.entered.release()
        assert self.gate.wait(30), "the test never opened the gate"
        return super().score(context, candidates, calibrate=calibrate)


def test_answers_over_the_in_flight_bound_are_refused_at_once_and_the_rest_finish(monkeypatch):
    import threading

    from overlay_core import reasoner as R
    from overlay_core.errors import BusyError

    monkeypatch.setenv(R.MAX_IN_FLIGHT_ENV, "2")
    gate, entered = threading.Event(), threading.Semaphore(0)
    r = Reasoner(FakeKB(), FakeTable(SUCC), GateSelector({"a small gadget used": -1.0, "in tests.": -0.5}, gate,
                                                          entered),
                 Accumulator(), weights=LLM_ONLY, settings=ReasonerSettings(min_words=2))
    out = []
    threads = [threading.Thread(target=lambda: out.append(r.answer("What is a widget?"))) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in threads:  # both answers are inside the selector: 2 in flight
        assert entered.acquire(timeout=30)
    assert R.in_flight() == 2
    with pytest.raises(BusyError, match=r"^busy: 2 answers in flight in this process \(limit OVERLAY_MAX_IN_FLIGHT=2\)"
                                        r"; retry later$") as exc:
        r.answer("What is a widget?")
    assert (exc.value.in_flight, exc.value.limit) == (2, 2)
    gate.set()
    for t in threads:
        t.join(30)
    assert [a["answer"] for a in out] == ["A widget is a small gadget used in tests."] * 2
    assert R.in_flight() == 0
    assert r.answer("What is a widget?")["answer"] == out[0]["answer"]  # admitted again once they finished


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bad_in_flight_bound_is_named(monkeypatch, value):
    from overlay_core import reasoner as R

    monkeypatch.setenv(R.MAX_IN_FLIGHT_ENV, value)
    with pytest.raises(InputError, match=rf"^OVERLAY_MAX_IN_FLIGHT='{value}' is invalid; set it to an integer >= 1"):
        make({"a": -0.1}).answer("What is a widget?")


def test_a_glossary_label_marks_where_the_definition_of_its_term_starts():
    from overlay_core import evidence as E

    toks = E.material_tokens("Glossary: Tether drift. The slow change of a tether's length. It is measured daily.\n\n"
                             "Anchor plate: a steel plate. Spool brake — a friction brake.")
    assert toks[E.labelled_definition("tether drift", toks):][:3] == ["The", "slow", "change"]
    assert toks[E.labelled_definition("anchor plate", toks):][:3] == ["a", "steel", "plate"]
    assert toks[E.labelled_definition("spool brake", toks):][:3] == ["a", "friction", "brake"]
    # a sentence that goes on after the term is no label; a term the passage does not label: None
    assert E.labelled_definition("tether", toks) is None and E.labelled_definition("winch", toks) is None


def test_a_common_word_opening_a_sentence_goes_on_in_lower_case_after_yes():
    """"Yes, Most SQL database engines …": "Most" is written "most" inside the passages, never capitalised there;
    "SQLite" and "Gull" are names (never in lower case)."""
    from overlay_core import evidence as E
    from overlay_core.stages.base import Evidence
    from overlay_core.stages.sources import common_word

    toks = [E.material_tokens("Most SQL database engines use static typing. SQLite uses dynamic typing, and most "
                              "values are stored as text. Gull Point is north of the harbour.")]
    ev = Evidence(toks, [[]], [[]])
    assert common_word("Most", ev)
    assert not common_word("SQLite", ev) and not common_word("Gull", ev)
    # passages that never write "most" in lower case (the SQLite set's answer said "Yes, Most SQL …"): a function word
    from overlay_core.stages.sources import FUNCTION_WORDS

    assert "most" in FUNCTION_WORDS and "gull" not in FUNCTION_WORDS


def test_a_who_is_the_role_of_question_no_passage_names_the_role_of_is_declined():
    """"Who is the mayor of Marrowby?" was answered with the founder; "founder" ~ "founded", "author" ~ "written"."""
    from types import SimpleNamespace

    from overlay_core.questions import analyze
    from overlay_core.stages.opening import unnamed_role

    town = [SimpleNamespace(text="Marrowby was founded in 1612 by the shipwright Odile Fenwick.")]
    book = [SimpleNamespace(text="The Zephyr Toolkit was written by Marta Kowalski in 2015.")]
    q = "Who is the mayor of Marrowby?"
    assert "no retrieved passage names a mayor of Marrowby" in unnamed_role(q, analyze(q), town)
    q = "Who was the first harbour master of Marrowby?"
    assert "no retrieved passage names a first harbour master of Marrowby" in unnamed_role(q, analyze(q), town)
    for q, passages in [("Who is the founder of Marrowby?", town), ("Who is the author of the Zephyr Toolkit?", book),
                        ("Who founded Marrowby?", town), ("What is the population of Marrowby?", town)]:
        assert unnamed_role(q, analyze(q), passages) is None, q


def test_a_sentence_denies_the_question_only_when_its_negation_governs_a_question_word():
    """"It does not support Windows Phone." denies "support"; "is not directly comparable to MySQL" names what
    "Which engines does SLT compare SQLite against?" asks; a "no" elsewhere denies nothing."""
    from overlay_core import evidence as E

    def denies(q, s):
        return E.denies(T.words(q), T.words(s))

    assert denies("Which systems does the guide app support?", "It does not support Windows Phone.") == "not"
    assert denies("What does SQLite compete with?", "SQLite doesn't compete with client/server databases.")
    assert denies("Which database engines does SLT compare SQLite against?",
                  "SQLite is not directly comparable to client/server SQL database engines such as MySQL.") is None
    assert denies("Why does SQLite work well in embedded devices?", "Because it requires no administration, it works "
                  "well in devices that must operate without expert human support.") is None


def _copied_to(ev, answer: str) -> set:
    """The reasoner's cursor after copying ``answer`` from passage 0: its last word's position (empty if absent)."""
    words, toks = [w.casefold() for w in T.words(answer)], [w.casefold() for w in ev.toks[0]]
    return next(({(0, a + len(words) - 1)} for a in range(len(toks)) if toks[a:a + len(words)] == words), set())


def test_a_who_answer_that_opens_with_a_pronoun_names_the_person_the_passage_named_before():
    """"Who designed the Kestrel Lamp K7?" was answered "He designed the Kestrel Lamp K7." (a fresh user's walk):
    the name is in the sentence before, or — when only "He …" sentences come before — the section's heading."""
    from overlay_core.questions import analyze
    from overlay_core.stages.opening import pronoun_referent
    from overlay_core.stages.reading import read_evidence

    def referent(question, text, headings="", answer=None):
        passages = [RetrievedPassage("p1", text, 0.2, {"source": "TEST", "headings": headings})]
        form = analyze(question)
        ev = read_evidence(None, question, form, passages, ReasonerSettings(cross_encoder=False))
        return pronoun_referent(form, T.words(answer), _copied_to(ev, answer), ev, passages)

    bio = ("Tomas Erland was born in Marrowby in 1931. He later taught at the technical school. He designed the "
           "Kestrel Lamp K7.")
    ref = referent("Who designed the Kestrel Lamp K7?", bio, answer="He designed the Kestrel Lamp K7.")
    assert ref == {"pronoun": "He", "passage": "p1", "name": ["Tomas", "Erland"],
                   "sentence": "Tomas Erland was born in Marrowby in 1931."}
    ref = referent("Who designed the Kestrel Lamp K7?", "He designed the Kestrel Lamp K7.", "People > Tomas Erland",
                   answer="He designed the Kestrel Lamp K7.")
    assert ref["name"] == ["Tomas", "Erland"] and ref["sentence"] == "Tomas Erland"
    ru = "Ильза Варга пришла в мастерскую в 1958 году. Она написала полевое руководство."
    assert referent("Кто написал полевое руководство?", ru, answer="Она написала полевое руководство.")["name"] == \
        ["Ильза", "Варга"]
    # not a name before it, not a person's question, not a pronoun: left as it is
    town = "In March the council met. He designed the Kestrel Lamp K7."
    assert referent("Who designed the Kestrel Lamp K7?", town, answer="He designed the Kestrel Lamp K7.") is None
    assert referent("What did Tomas Erland design?", bio, answer="He designed the Kestrel Lamp K7.") is None
    assert referent("Who designed the Kestrel Lamp K7?", bio, answer="Tomas Erland was born in Marrowby") is None


def test_a_when_answer_counted_from_the_sentence_before_holds_that_sentence_too():
    """"When did the town open its first school?" was answered "Three years later the town opened its first
    school." (a fresh user's walk): the year is in the sentence before; the answer copies both, the reader counts."""
    from overlay_core import evidence as E
    from overlay_core.questions import analyze
    from overlay_core.stages.opening import year_before
    from overlay_core.stages.reading import read_evidence

    for sent, dated in [("Three years later the town opened its first school.", True),
                        ("A year later it burned down.", True), ("The next year the mill closed.", True),
                        ("That same year the railway arrived.", True), ("Через три года открылась школа.", True),
                        ("В том же году построили мост.", True), ("Three years later, in 1853, it opened.", False),
                        ("The town opened its first school.", False), ("Years later nobody remembered.", False)]:
        assert E.dated_before(T.words(sent)) is dated, sent

    def dated(question, text, answer):
        passages = [RetrievedPassage("p1", text, 0.2, {"source": "TEST"})]
        form = analyze(question)
        ev = read_evidence(None, question, form, passages, ReasonerSettings(cross_encoder=False))
        return year_before(form, T.words(answer), _copied_to(ev, answer), ev, passages)

    town = ("Marrowby was founded in 1790. The town built its harbour wall in 1850. Three years later the town "
            "opened its first school.")
    q, answer = "When did the town open its first school?", "Three years later the town opened its first school."
    assert dated(q, town, answer) == {"words": T.words("The town built its harbour wall in 1850."), "passage": "p1",
                                      "sentence": "The town built its harbour wall in 1850."}
    assert dated(q, "The wall was built early. Three years later the town opened its first school.", answer) is None
    assert dated("Who opened the first school?", town, answer) is None  # not a question about when
    assert dated(q, town, "Marrowby was founded in 1790.") is None
    ru = "Пристань построили в 1850 году. Через три года в городе открылась первая школа."
    assert dated("Когда в городе открылась первая школа?", ru, "Через три года в городе открылась первая школа.")[
        "sentence"] == "Пристань построили в 1850 году."


def test_an_answer_that_stops_at_a_lists_first_item_reads_on_the_other_items():
    """"Which systems does the guide app run on?" was answered "The guide app runs on these systems: Android 10 or
    later." — the document lists two more. Items that are sentences of their own are not read on."""
    from overlay_core.questions import analyze
    from overlay_core.stages.opening import list_items
    from overlay_core.stages.reading import read_evidence

    def listed(text, answer_end, room=30, answer=""):
        passages = [RetrievedPassage("p1", text, 0.2, {"source": "TEST"})]
        q = "Which systems does the guide app run on?"
        ev = read_evidence(None, q, analyze(q), passages, ReasonerSettings(cross_encoder=False))
        end = next(i for i in range(len(ev.toks[0])) if T.join(ev.toks[0][:i + 1]).endswith(answer_end))
        return list_items({(0, end)}, ev, passages, room, T.words(answer))

    # a document passage opens with its section's label ("Guide app: "), as overlay build writes it
    app = ("Guide app: The guide app runs on these systems:\n\nAndroid 10 or later.\n\niOS 15 or later.\n\n"
           "HarmonyOS 3.\n\nThe app needs 200 MB of free space, and it works offline once the city maps are "
           "downloaded.")
    got = listed(app, "Android 10 or later.")
    assert T.join(got["words"]) == "iOS 15 or later. HarmonyOS 3." and (got["items"], got["more"]) == (2, 0)
    assert listed(app, "Android 10 or later.", room=6)["more"] == 1
    # a short paragraph after the list that names the app again is not an item (a fresh user's walk)
    after = app.replace("\n\nThe app needs", "\n\nThe guide app needs no account.\n\nThe app needs")
    assert T.join(listed(after, "Android 10 or later.")["words"]) == "iOS 15 or later. HarmonyOS 3."
    # an introduction that opens with "It": the answer's own subject ("Quillpad supports these formats:") counts
    pad = ("Quillpad: Quillpad is a note-taking editor.\n\nIt supports these formats:\n\nMarkdown.\n\nOrg mode.\n\n"
           "Quillpad does not support PDF export.")
    got = listed(pad, "formats: Markdown.", answer="Quillpad supports these formats: Markdown.")
    assert T.join(got["words"]) == "Org mode." and got["items"] == 1
    assert listed(app, "of free space, and it works offline once the city maps are downloaded.") is None
    # one sentence, no blocks; items that say more than a name
    assert listed("App: It runs on these systems: Android. It also runs on iOS.", "Android.") is None
    classes = ("Types: It has one of the following storage classes:\n\nNULL. The value is a NULL value.\n\n"
               "INTEGER. The value is a signed integer.")
    assert listed(classes, "NULL.") is None


def test_an_expansion_in_a_sentence_that_opens_with_the_acronym_is_as_sure_as_a_label():
    """"PSU: Power Supply Unit, the module that converts mains current for the amplifier." — "What does PSU stand
    for?" was answered "PSU stands for the amplifier." ("for the" is in the passage, "for Power" in no table): the
    expansion now carries relevance 1 (a fresh user's walk)."""
    from overlay_core.questions import analyze
    from overlay_core.stages.reading import expansions, read_evidence

    def found(text):
        passages = [RetrievedPassage("p1", text, 0.2, {"source": "TEST"})]
        q = "What does PSU stand for?"
        ev = read_evidence(None, q, analyze(q), passages, ReasonerSettings(cross_encoder=False))
        return {" ".join(w): rel for w, _, rel in expansions(analyze(q), passages, ev)}

    glossary = "Glossary: PSU: Power Supply Unit, the module that converts mains current for the amplifier."
    assert found(glossary) == {"Power Supply Unit": 1.0}
    inner = "Glossary: The amplifier is fed by its Power Supply Unit (PSU), which converts mains current."
    assert 0.5 <= found(inner)["Power Supply Unit"] < 1.0
