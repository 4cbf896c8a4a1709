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
