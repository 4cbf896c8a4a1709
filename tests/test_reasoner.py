"""The reasoning loop on real parts: FOLDOC subset, ChromaDB, the SmolLM2 GGUF, the accumulator."""

import pytest

from overlay_core.accumulator import Accumulator
from overlay_core.errors import InputError
from overlay_core.knowledge import make_reasoner, state_paths
from overlay_core.questions import analyze, question_subject
from overlay_core.reasoner import ReasonerSettings
from overlay_core.stages import guards as G
from overlay_core.stages.base import Draft as _Cand
from overlay_core.stages.base import Turn
from overlay_core.stages.ranking import rank_passages
from overlay_core.text import SENTENCE_END, words
from overlay_core.trace import to_text
from overlay_core.verification import ReviewStore


def _guard(drafts, answer, generated, s, closing_quote=False):
    """The closing-quote, min-words, sentence-inside-span and repeated-n-gram guards on ``drafts``."""
    turn = Turn("q", analyze("What is x?"), [], None, s, list(answer), generated=generated,
                closing_quote=closing_quote, min_words=s.min_words)
    for guard in (G.ClosingQuote(), G.MinWords(), G.SentenceInsideSpan(), G.RepeatedNgram()):
        guard.check(turn, drafts)


@pytest.fixture(scope="module")
def reasoner(foldoc_home):
    return make_reasoner(foldoc_home)


def test_question_subject():
    assert question_subject("What is a hash table?") == "hash table"
    assert question_subject("what's TCP") == "TCP"
    assert question_subject("Define recursion.") == "recursion"
    assert question_subject("How do I sort?") is None


def test_answer_is_a_grounded_sentence_built_only_from_adjacency_candidates(reasoner):
    res = reasoner.answer("What is a hash table?")
    assert res["answer"].startswith("A hash table is ")
    assert res["passages"][0]["source"] == "FOLDOC:hash table"
    assert res["stop_reason"] == "sentence end" and res["answer"].endswith(".")
    generated = res["answer_words"][len(res["prefix"]):]
    assert len(generated) >= reasoner.settings.min_words
    table = reasoner.table
    prev = res["prefix"][-1]
    for st in res["trace"]:
        chosen = [c for c in st["candidates"] if c["word"] == st["chosen"]]
        assert len(chosen) == 1 and chosen[0]["blocked"] is None
        assert chosen[0]["score"] == max(c["score"] for c in st["candidates"] if c["score"] is not None)
        for w in st["chosen_words"]:  # every answer word is a link of the adjacency table
            # (the one rewrite: a definition's opening article is lower-cased after "is": "A scheme" -> "a scheme")
            assert any(table.edge([p], w) is not None for p in (prev, prev.capitalize())), (prev, w)
            prev = w
    assert [w for st in res["trace"] for w in st["chosen_words"]] == generated


def test_same_question_same_answer_and_scores(reasoner):
    a = reasoner.answer("What is a compiler?")
    b = reasoner.answer("What is a compiler?")
    assert a["answer"] == b["answer"]
    assert [[c["score"] for c in s["candidates"]] for s in a["trace"]] == \
           [[c["score"] for c in s["candidates"]] for s in b["trace"]]


def test_guardrails_block_repeats_and_early_sentence_end():
    s = ReasonerSettings(block_ngram=3, min_words=6)
    answer = ["by", "the", "University", "of", "the"]
    cands = [_Cand(("University",)), _Cand(("University", "of")), _Cand(("City",)), _Cand((".",)),
             _Cand(("end", ".", "Next"))]
    _guard(cands, answer, generated=2, s=s)
    blocked = {c.words: c.blocked for c in cands}
    assert blocked[("University",)] is None  # "of the University" is a new trigram
    assert blocked[("University", "of")] == "repeats the 3-gram 'the university of'"
    assert blocked[("City",)] is None
    assert "min_words" in blocked[(".",)]
    assert blocked[("end", ".", "Next")] == "crosses a sentence end"
    looping_span = [_Cand(("a", "b", "c", "a", "b", "c"))]  # a span that repeats itself is a loop too
    _guard(looping_span, ["x"], generated=1, s=s)
    assert looping_span[0].blocked == "repeats the 3-gram 'a b c'"
    s0 = ReasonerSettings(block_ngram=0, min_words=0)
    cands = [_Cand(("University",)), _Cand((".",))]
    _guard(cands, answer, generated=2, s=s0)
    assert [c.blocked for c in cands] == [None, None]


def test_max_words_and_trigram_context(reasoner):
    res = reasoner.answer("What is TCP?", max_words=5, context_order=3)
    generated = res["answer_words"][len(res["prefix"]):]
    assert len(generated) <= 5  # spans are cut to fit max_words
    assert res["stop_reason"] in ("max_words", "sentence end")
    assert all(len(st["context"]) == 2 for st in res["trace"])
    assert res["answer"].startswith("TCP is ")


@pytest.mark.parametrize("question,match", [("", "empty"), ("   ", "empty")])
def test_bad_questions_are_clear_errors(reasoner, question, match):
    with pytest.raises(InputError, match=match):
        reasoner.answer(question)


@pytest.mark.parametrize("question,why", [("What is a zqxjvw flurbnik?", "none of the words"),
                                          ("Who won the 2018 World Cup?", "")])
def test_questions_the_passages_do_not_answer_are_declined(reasoner, question, why):
    res = reasoner.answer(question)
    assert res["refused"] is True and why in res["refusal"]
    assert res["answer_words"] == [] and res["trace"] == [] and res["passages"]  # the best passages are shown
    assert res["stop_reason"].startswith("declined")


def test_start_none_still_answers_from_passage_openings(reasoner):
    res = reasoner.answer("What is a hash table?", start="none", max_words=8)
    assert res["prefix"] == [] and res["answer_words"]
    assert "passage-start" in res["trace"][0]["source"]


def test_bad_settings_are_clear_errors():
    with pytest.raises(InputError, match="llm_score"):
        ReasonerSettings(llm_score="best")
    with pytest.raises(InputError, match="context_order"):
        ReasonerSettings(context_order=5)


def test_reject_verdict_changes_the_next_answer_and_the_trace_names_it(home_copy):
    paths = state_paths(home_copy)
    first = make_reasoner(home_copy).answer("What is a compiler?")
    store = ReviewStore(paths.reviews)
    item = store.enqueue(flow="test", question=first["question"], answer=first["answer"], trace=first,
                         model_fingerprint=first["model"], index_fingerprint=first["index"])
    step = 1  # reject the word chosen at the second step
    rejected = first["trace"][step]
    vid = store.verdict(item, reviewer="alice", kind="reject", step=step, comment="not this word")
    acc = Accumulator(paths.accumulator)
    assert store.apply(acc, save=True)
    second = make_reasoner(home_copy).answer("What is a compiler?")
    assert second["answer"] != first["answer"]
    # Same start up to the rejected step, then another choice there.
    assert [s["chosen"] for s in second["trace"][:step]] == [s["chosen"] for s in first["trace"][:step]]
    new_step = second["trace"][step]
    assert new_step["chosen_words"][0] != rejected["chosen_words"][0]
    penalized = [c for c in new_step["candidates"] if c["words"][0] == rejected["chosen_words"][0]]
    assert penalized and all(vid in c["verdicts"] and c["glob"] < 0 for c in penalized)


def test_a_reviewers_no_to_a_yes_no_answer_counts_on_that_question_only(home_copy):
    """A yes/no step's verdict edge starts from its question: a correction "No," overrules the passage's reading
    for that question (the trace says which rule it overruled), leaves other yes/no questions as they were, and
    a revert gives the first answer back."""
    paths = state_paths(home_copy)
    q, other_q = "Is Unix an operating system?", "Is Linux an operating system?"
    first, other = make_reasoner(home_copy).answer(q), make_reasoner(home_copy).answer(other_q)
    assert first["answer"].startswith("Yes,") and other["answer"].startswith("Yes,")
    store = ReviewStore(paths.reviews)
    item = store.enqueue(flow="test", question=q, answer=first["answer"], trace=first,
                         model_fingerprint=first["model"], index_fingerprint=first["index"])
    vid = store.verdict(item, reviewer="alice", kind="correct", step=0, word="No,")
    acc = Accumulator(paths.accumulator)
    store.apply(acc, save=True)
    second = make_reasoner(home_copy).answer(q)
    assert second["answer"].startswith("No,")
    assert second["trace"][0]["overruled"]["verdicts"] == [vid] and second["trace"][0]["overruled"]["word"] == "No,"
    assert "affirms the question" in second["trace"][0]["overruled"]["rule"]
    assert "judge those steps too if they now contradict it" in to_text(second)  # "No, … is waterproof …"
    assert make_reasoner(home_copy).answer(other_q)["answer"] == other["answer"]
    store.revert(vid, reviewer="alice")
    store.apply(acc, save=True)
    assert make_reasoner(home_copy).answer(q)["answer"] == first["answer"]


def test_a_sentence_ending_inside_a_quote_takes_its_closing_quote(tmp_path):
    from overlay_core.ingest import Passage
    from overlay_core.knowledge import build_knowledge

    passages = [Passage("z1", 'Zorblax is a brand of carpet cleaner whose slogan, "Nothing cleans like a Zorblax!" '
                              "became famous in the UK.", {"headword": "Zorblax"}),
                Passage("q1", "Quux is a metasyntactic variable used in examples.", {"headword": "quux"})]
    build_knowledge(tmp_path, passages=passages, order=3, progress=False)
    res = make_reasoner(tmp_path).answer("What is Zorblax?")
    assert res["answer"] == 'Zorblax is a brand of carpet cleaner whose slogan, "Nothing cleans like a Zorblax!"'
    assert res["stop_reason"] == "sentence end"
    last = res["trace"][-1]
    assert last["chosen"] == '"'
    others = [c for c in last["candidates"] if c["word"] != '"']
    assert others and all(c["blocked"].startswith("the sentence ended inside a quote") for c in others)
    # the guard on its own: only the closing quote may follow
    cands = [_Cand(('"',)), _Cand(('"', "became")), _Cand(("became",))]
    _guard(cands, ["x", '"', "y", "!"], generated=9, s=ReasonerSettings(), closing_quote=True)
    assert [c.blocked is None for c in cands] == [True, False, False]


def test_retrieve_gives_the_passages_the_answer_uses(reasoner):
    # the evaluation's plain-RAG system builds its prompt from Reasoner.retrieve: it must be the answer's passages
    for q in ("What is TCP?", "What is a compiler?"):
        ranked, hits = reasoner.retrieve(q)
        res = reasoner.answer(q, max_words=3)
        assert [p.id for p in ranked] == [p["id"] for p in res["passages"]]
        assert len(ranked) == reasoner.settings.top_k and len(hits) >= 10


def test_a_stub_passage_about_the_term_ranks_after_the_ones_that_say_something():
    from overlay_core.retrieval import RetrievedPassage

    meta = {"headword": "vax"}
    stub = RetrievedPassage("s", "vax: [Jargon File]", 0.20, meta)
    body = RetrievedPassage("b", "vax: The most successful minicomputer design in industry history.", 0.35, meta)
    other = RetrievedPassage("o", "pdp-11: The ancestor of the VAX.", 0.10, {"headword": "pdp-11"})
    ranked = rank_passages([other, stub, body], "vax")
    assert [p.id for p in ranked] == ["b", "s", "o"]


def test_when_a_reviewer_rejected_every_candidate_the_answer_stops_instead_of_repeating_it(tmp_path):
    from overlay_core.ingest import Passage
    from overlay_core.knowledge import build_knowledge

    passages = [Passage("z1", "Zorblax is a brand of carpet cleaner made in the UK since 1980.", {"headword": "Zorblax"}),
                Passage("q1", "Quux is a metasyntactic variable used in examples.", {"headword": "quux"})]
    build_knowledge(tmp_path, passages=passages, order=3, progress=False)
    paths = state_paths(tmp_path)
    first = make_reasoner(tmp_path).answer("What is Zorblax?")
    # the step whose previous word has a single successor in the corpus ("cleaner" -> "made")
    step = next(i for i, st in enumerate(first["trace"]) if st["prev"] == "cleaner")
    assert first["trace"][step]["chosen_words"][0] == "made"
    store = ReviewStore(paths.reviews)
    item = store.enqueue(flow="test", question=first["question"], answer=first["answer"], trace=first,
                         model_fingerprint=first["model"], index_fingerprint=first["index"])
    vid = store.verdict(item, reviewer="alice", kind="reject", step=step)
    assert store.apply(Accumulator(paths.accumulator), save=True)
    second = make_reasoner(tmp_path).answer("What is Zorblax?")
    assert second["stop_reason"] == "every candidate rejected by review"
    assert second["answer"] == "Zorblax is a brand of carpet cleaner"  # stops before the rejected "made"
    last = second["trace"][-1]
    assert last["candidates"] and all(c["blocked"].startswith("a reviewer's verdict penalized this edge")
                                      and vid in c["verdicts"] for c in last["candidates"])


@pytest.mark.parametrize("question,key,start", [
    ("Who invented Unix?", "Ken Thompson", "Unix was invented"),
    ("When was Unix invented?", "1969", "Unix was invented"),
    ("What does TCP stand for?", "transmission control protocol", "TCP stands for"),
    ("Who is considered a co-author of Unix?", "Dennis Ritchie", ""),
])
def test_factoid_questions_are_answered_from_the_sentence_that_holds_the_fact(reasoner, question, key, start):
    res = reasoner.answer(question)
    assert not res["refused"], res.get("refusal")
    assert key.casefold() in res["answer"].casefold(), res["answer"]
    assert res["answer"].startswith(start) and " ".join(res["prefix"]) == start
    assert res["question_form"]["kind"] != "definition" and res["evidence"]
    step0 = res["trace"][0]
    chosen = next(c for c in step0["candidates"] if c["word"] == step0["chosen"])
    assert chosen["rel"] > 0 and chosen["passages"]  # the opening span comes from a relevant passage sentence
    assert {"answer-span", "expansion"} & set(chosen["source"].split("+"))


def _without_times(obj):
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in ("timings_ms", "latency_ms")}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


@pytest.mark.parametrize("llm_score", ["mean", "calibrated"])
def test_concurrent_answers_equal_lone_answers_and_traces(reasoner, llm_score):
    """8 threads on one reasoner (one selector, one llama.cpp context) give every question the answer and the trace
    (every candidate's every score) it gets alone, in any order: each answer's steps run in a selector session on a
    cleared KV cache (LLMSelector.session), so nothing another answer left in the cache moves a score (with
    calibrated scores, nor a neutral-prompt value another answer computed)."""
    from concurrent.futures import ThreadPoolExecutor

    questions = ["What is a hash table?", "What is a compiler?", "What is TCP?", "What is recursion?"] * 2
    lone = {q: _without_times(reasoner.answer(q, llm_score=llm_score))
            for q in reversed(questions[:4])}  # another order than below
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda q: _without_times(reasoner.answer(q, llm_score=llm_score)), questions))
    for q, got in zip(questions, together):
        assert got["answer"] == lone[q]["answer"]
        assert got == lone[q], q


def test_a_selector_pool_answers_concurrently_as_one_selector_does_alone(reasoner):
    """Two llama.cpp contexts (SelectorPool) decode two answers at once; each answer and trace equals the one
    selector's lone answer, whichever instance it got."""
    from concurrent.futures import ThreadPoolExecutor

    from overlay_core.reasoner import Reasoner
    from overlay_core.selector import LLMSelector, SelectorPool

    one = reasoner.selector
    pool = SelectorPool([LLMSelector(one.model_path, n_threads=1) for _ in range(2)])
    try:
        pooled = Reasoner(reasoner.kb, reasoner.table, pool, reasoner.accumulator, weights=reasoner.weights,
                          settings=reasoner.settings, selectors=reasoner.selectors)
        assert pooled.selector.fingerprint == one.fingerprint and len(pool) == 2
        questions = ["What is a compiler?", "What is TCP?", "What is a hash table?", "What is recursion?"]
        lone = {q: _without_times(reasoner.answer(q)) for q in questions}
        with ThreadPoolExecutor(max_workers=4) as ex:
            together = list(ex.map(lambda q: _without_times(pooled.answer(q)), questions * 2))
        for q, got in zip(questions * 2, together):
            assert got == lone[q], q
    finally:
        pool.close()
