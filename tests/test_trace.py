"""overlay_core.trace: the human-readable renderings of a trace."""

from overlay_core.trace import to_markdown


def _cand(word, score, verdicts=(), blocked=None):
    return {"word": word, "source": "corpus", "p_adj": 0.1, "ctx": 0.0, "llm": -1.0, "glob": -100.0 if verdicts else 0.0,
            "score": score, "verdicts": list(verdicts), "passages": [], "blocked": blocked}


def test_markdown_always_shows_a_candidate_a_verdict_changed():
    cands = [_cand(f"w{i}", -float(i)) for i in range(10)] + [_cand("rejected", -97.0, ["vd_abc"]),
                                                              _cand("x", None, blocked="repeats the 3-gram 'a b c'")]
    result = {"question": "q", "answer": "a w0", "trace": [{"step": 0, "context": ["a"], "chosen": "w0",
                                                             "source": "corpus", "candidates": cands}]}
    md = to_markdown(result, max_candidates=8)
    assert "| rejected | corpus |" in md and "vd_abc" in md  # past the 8 shown, still listed: it names the verdict
    assert "| w7 |" in md and "| w8 |" not in md
    assert "| … 3 more |" in md  # w8, w9 and the blocked one
    assert "| … 3 more (raise it) |" in to_markdown(result, max_candidates=8, more="raise it")  # how to see them
    from overlay_core.trace import to_text

    assert "'rejected' -97.00 [corpus; vd_abc]" in to_text(result, max_candidates=4)  # the plain trace names it too


# ---------------------------------------------------------------------- the typed trace
import json
from pathlib import Path

import pytest

from overlay_core.errors import InputError
from overlay_core.trace import Candidate, Step, StopReason, Trace, to_rows, to_text
from overlay_core.verification import ReviewStore

#: Review items exactly as `overlay review export --what queue` wrote them at commit 6541646 (before the typed
#: trace): `overlay ask --enqueue` on the full FOLDOC build with SmolLM2-135M and default settings, for a
#: definition ("What is simpl?"), an acronym ("What does TCP stand for?", one span step) and a declined question.
STORED = Path(__file__).parent / "data" / "review_queue_integ_6541646.jsonl"


def _stored() -> list[dict]:
    return [json.loads(line) for line in STORED.read_text(encoding="utf-8").splitlines()]


def test_stored_review_items_load_and_write_back_byte_identical():
    items = _stored()
    assert [it["question"] for it in items] == ["What does TCP stand for?", "What is a flibbertigibbet?",
                                                "What is simpl?"]
    for it in items:
        t = Trace.from_dict(it["trace"])
        assert json.dumps(t.to_dict(), ensure_ascii=False) == json.dumps(it["trace"], ensure_ascii=False)
        # the renderings read the typed trace the same as the dict
        assert to_markdown(t) == to_markdown(it["trace"]) and to_text(t) == to_text(it["trace"])
        assert to_rows(t) == to_rows(it["trace"])
    tcp, declined, simpl = (Trace.from_dict(it["trace"]) for it in items)
    assert declined.refused and declined.stop_reason is StopReason.DECLINED and declined.frame is None
    assert declined.to_dict()["stop_reason"] == "declined: " + declined.refusal
    assert simpl.stop_reason is StopReason.SENTENCE_END and simpl.frame["kept"]
    assert [s.step for s in simpl.steps] == [0, 1, 2] and simpl.steps[0].prev == "is"
    assert simpl.chosen_edges == [("is", "a"), ("implemented", "as"), ("preprocessor", ".")]
    best = simpl.steps[0].candidates[0]
    assert isinstance(best, Candidate) and best.word == simpl.steps[0].chosen and best.score is not None
    assert tcp.steps[0].edge == ("for", "transmission")


def test_a_stored_item_takes_verdicts_after_reenqueue(tmp_path):
    store = ReviewStore(tmp_path / "reviews.sqlite3")
    it = next(x for x in _stored() if x["question"] == "What is simpl?")
    iid = store.enqueue(flow=it["flow"], question=it["question"], answer=it["answer"], trace=it["trace"],
                        model_fingerprint=it["model_fingerprint"], index_fingerprint=it["index_fingerprint"])
    assert store.get(iid).trace == it["trace"]  # stored verbatim
    vid = store.verdict(iid, reviewer="r", kind="reject", step=1)
    (v,) = [v for v in store.verdicts(iid) if v.id == vid]
    assert [(d["prev"], d["word"], d["delta"]) for d in v.deltas] == [("implemented", "as", -100.0)]
    step0 = Trace.from_dict(it["trace"]).steps[0]
    other = next(c for c in step0.candidates if c.blocked is None and c.first_word != "a")
    vid = store.verdict(iid, reviewer="r", kind="correct", step=0, word=other.word)
    (v,) = [v for v in store.verdicts(iid) if v.id == vid]
    assert [(d["prev"], d["word"]) for d in v.deltas] == [("is", "a"), ("is", other.first_word)]


def test_an_older_trace_without_the_newer_fields_still_loads():
    """Fields added over time (question form, evidence, frame, candidate words/rel/edge) take their defaults."""
    it = next(x for x in _stored() if x["question"] == "What is simpl?")
    old = {k: v for k, v in it["trace"].items() if k not in ("question_form", "evidence", "frame", "dropped_passages",
                                                              "refused", "answer_words")}
    old["trace"] = [{**st, "candidates": [{k: v for k, v in c.items() if k not in ("words", "rel", "edge", "n_tokens")}
                                          for c in st["candidates"]]} for st in old["trace"]]
    t = Trace.from_dict(old)
    assert t.question_form == {} and t.evidence == [] and t.frame is None and not t.refused
    assert t.steps[0].candidates[0].words == [] and t.steps[0].candidates[0].first_word == "a"
    assert "Step 2" in to_markdown(old) and to_text(old).startswith("Answer: SIMPL is")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["trace"][1].update(prev=None), r"trace\['trace'\]\[1\]\['prev'\] must be the previous word"),
    (lambda d: d["trace"][0].update(chosen_words="a"), r"\['chosen_words'\] must be a list of words"),
    (lambda d: d["trace"][2]["candidates"][0].update(score="high"), r"\['candidates'\]\[0\]\['score'\] must be a number"),
    (lambda d: d["trace"][2].update(step=1), r"\['trace'\]\[2\]\['step'\] = 1 appears twice"),
    (lambda d: d.update(stop_reason="tired"), r"\['stop_reason'\] must be one of 'max_words'"),
    (lambda d: d.pop("trace"), r"\['trace'\] must be the list of steps"),
])
def test_from_dict_names_the_bad_field(mutate, message):
    d = json.loads(json.dumps(next(x for x in _stored() if x["question"] == "What is simpl?")["trace"]))
    mutate(d)
    with pytest.raises(InputError, match=message):
        Trace.from_dict(d)


def test_partial_traces_render_without_prev_or_chosen_words():
    with pytest.raises(InputError, match="prev"):
        Step.from_dict({"step": 0, "chosen": "w0", "candidates": []})
    assert Step.from_dict({"step": 0, "chosen": "w0"}, partial=True).edge is None


def test_a_step_where_every_candidate_is_blocked_says_so_instead_of_printing_none():
    """After `review verdict … --kind reject --step 1` left no word: the text trace said
    "step  1 [by] -> None (None; p_adj= ctx= llm= glob=) of 0 candidates, 3 blocked | top: " and the Markdown
    "→ **None** (None, …)"."""
    why = "a reviewer's verdict penalized this edge and no other candidate is left"
    result = {"question": "Who wrote the Quillon Toolkit?", "answer": "The Quillon Toolkit was written by",
              "stop_reason": "every candidate rejected by review",
              "trace": [{"step": 0, "context": ["by"], "chosen": None, "source": None,
                         "candidates": [_cand("Ada", None, ["vd_abc"], blocked=why), _cand("Jonas", None, blocked=why)]}]}
    text = to_text(result)
    assert "  step  0 [by] -> nothing chosen: 2 candidates, all blocked (e.g. 'Ada': " + why + ")" in text, text
    assert "None" not in text and text.rstrip().endswith("stopped: every candidate rejected by review")
    assert "; rejected by review: 'Ada' (vd_abc)\n" in text, text  # the verdict that stopped the answer is named
    assert "- 0 nothing chosen: rejected by review: 'Ada' (vd_abc)" in to_compact(result)
    md = to_markdown(result)
    assert "**Step 0** — context `by` → nothing chosen (every candidate blocked, " in md and "None" not in md, md


def test_a_number_the_source_does_not_give_is_left_out_of_the_text_line():
    """A yes/no step's word comes from the passage's reading, not the table or the model: it printed `p_adj= ctx=`."""
    yes = dict(_cand("No,", 5.0), source="yes-no", p_adj=None, ctx=0.0, llm=None, glob=54.0)
    text = to_text({"question": "Is it open?", "answer": "No, it is closed.",
                    "trace": [{"step": 0, "context": [], "chosen": "No,", "source": "yes-no", "candidates": [yes]}]})
    line = next(ln for ln in text.splitlines() if ln.startswith("  step  0"))
    assert "-> 'No,' (yes-no; ctx=0.000 glob=54.000)" in line and "p_adj" not in line, line


def test_the_step_that_chose_the_sentence_says_how_it_weighed_the_llm():
    """The score of the step that chose the answer's sentence weighed llm by `llm_opening_share`: both renderings
    say so, the JSON keeps it (`llm_share`), and it round-trips."""
    step = {"step": 0, "prev": "", "context": [], "chosen": "For example, group", "chosen_words": ["For", "example", ",",
            "group"], "source": "answer-span", "candidates": [_cand("For example, group", 3.27)], "latency_ms": {},
            "llm_share": 0.1}
    trace = {"question": "Which program uses group proxy?", "answer": "For example, group", "trace": [step]}
    assert "llm=-1.000 (weighed x0.1, choosing the sentence)" in to_text(trace)
    assert "choosing the sentence: llm weighed ×0.1" in to_markdown(trace)
    assert Trace.from_dict(trace).to_dict()["trace"][0]["llm_share"] == 0.1


# ---------------------------------------------------------------------- the chat reply (issue 17)
import re

from overlay_core.trace import COMPACT_WIDTH, to_compact


def test_compact_reply_leads_with_the_answer_and_keeps_every_step_line_narrow():
    """The Playground reply: the answer, its sources, one line per step (chosen, runner-up, why) no wider than
    the chat column, where the full tables are, then the settings; no table."""
    long_word = "a data structure that maps keys to values through a hash function over an array of buckets"
    steps = [{"step": 0, "context": ["is"], "chosen": long_word, "source": "span",
              "candidates": [dict(_cand(long_word, 5.0), ctx=1.0), _cand("the longest runner-up span of them all, "
                                                                         "really very long indeed", 2.0)]},
             {"step": 1, "context": ["buckets"], "chosen": ".", "source": "corpus", "candidates": [_cand(".", 1.0)]},
             {"step": 2, "context": ["by"], "chosen": None, "source": None,
              "candidates": [_cand("Ada", None, blocked="repeats the 3-gram 'a b c'")]}]
    result = {"question": "What is a hash table?", "answer": "A hash table is " + long_word + ".",
              "settings": {"max_words": 30}, "weights": {"w_adj": 0.5, "w_ctx": 6.0, "w_llm": 1.0},
              "passages": [{"rank": 1, "id": "p1", "source": "FOLDOC:hash table", "text": "…"}],
              "stop_reason": "sentence end", "trace": steps}
    text = to_compact(result)
    lines = text.splitlines()
    assert lines[0] == result["answer"] and lines[2] == "**Sources:** FOLDOC:hash table"
    step_lines = [ln for ln in lines if ln.startswith("- ")]
    assert len(step_lines) == 3 and "|" not in text
    assert all(len(re.sub(r"[*]", "", ln)) - 2 <= COMPACT_WIDTH for ln in step_lines), step_lines
    assert step_lines[0].startswith("- **0** a data structure") and "— not *the long" in step_lines[0]
    assert step_lines[0].endswith("· passages back it")  # ctx 1.0 × 6 beat the runner-up's 0
    assert step_lines[1] == "- **1** . · only candidate"
    assert step_lines[2].startswith("- 2 nothing chosen: all blocked (repeats")
    assert "**Candidates from:** corpus\n" in text and "**Blocked:** repeats the 3-gram 'a b c' ×1" in text
    assert "Trace View" in text and "**Settings:** max_words=30" in text and "**Question:** What is a hash" in text


def test_full_tables_explain_their_columns_once():
    result = {"question": "q", "answer": "a w0", "trace": [{"step": s, "context": ["a"], "chosen": "w0",
                                                             "source": "corpus", "candidates": [_cand("w0", 1.0)]}
                                                            for s in range(3)]}
    md = to_markdown(result)
    assert md.count("**Columns:**") == 1 and "*glob* = the experts' verdicts" in md


def test_a_yes_no_step_yields_to_verdicts_and_names_no_overruling_rule():
    """Read from the step itself (every candidate from the yes-no source), not from a flag written into traces."""
    from overlay_core.trace import Candidate, Step

    def step(source):
        return Step(step=0, prev="q", context=[], chosen="Yes,", chosen_words=["Yes", ","], source=source,
                    candidates=[Candidate(word="No,", words=["No", ","], source=source, blocked="affirms"),
                                Candidate(word="Yes,", words=["Yes", ","], source=source)])

    assert step("yes-no").yields_to_verdicts and step("yes-no").overruling_rule("No,") is None
    assert not step("corpus").yields_to_verdicts and step("corpus").overruling_rule("No,") == "affirms"


def test_a_pronoun_read_as_a_name_is_said_in_every_rendering():
    ref = {"pronoun": "He", "name": ["Tomas", "Erland"], "passage": "p1",
           "sentence": "Tomas Erland was born in Marrowby in 1931."}
    result = {"question": "Who designed the K7?", "answer": "Tomas Erland designed the K7.", "referent": ref,
              "trace": [{"step": 0, "context": [], "chosen": "He designed the K7.", "source": "answer-span",
                         "candidates": [_cand("He designed the K7.", 1.0)]}]}
    line = "'He' → 'Tomas Erland' (passage "
    assert f"Pronoun read as a name: {line}p1: \"Tomas Erland was born" in to_text(result)
    assert f"**Pronoun read as a name:** {line}`p1`" in to_markdown(result)
    assert f"**Pronoun read as a name:** {line}`p1`" in to_compact(result)
    assert Trace.from_dict(result, partial=True).to_dict()["referent"] == ref
    result["year_before"] = {"words": ["In", "1850", "."], "passage": "p2", "sentence": "In 1850."}
    line = "Year from the sentence before:** \"In 1850.\" (passage `p2`; the answer's sentence counts from it)"
    assert line in to_markdown(result) and line in to_compact(result)
    assert line.replace("*", "").replace("`", "") in to_text(result)
    result["list_items"] = {"words": ["iOS", "."], "passage": "p3", "items": 1, "more": 2}
    line = ("List read on:** the answer's sentence introduces a list; its next item follows (passage `p3`); 2 more "
            "left out for the word limit")
    assert line in to_markdown(result) and line in to_compact(result)
