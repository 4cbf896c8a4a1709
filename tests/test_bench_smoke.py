"""Smoke test of the issue-9/issue-6 benchmarks: each script's core function on 1-2 real questions.

Real parts throughout (the session's FOLDOC subset in ChromaDB, the SmolLM2 GGUF); the full runs and
their numbers are in docs/evaluation.md. The pure helpers are checked with exact values.
"""

import math
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import e2e  # noqa: E402
import eval_grounding as eg  # noqa: E402
import verdicts  # noqa: E402


@pytest.fixture(scope="module")
def questions():
    from overlay_core.ingest import foldoc_passages

    passages = foldoc_passages(headwords=["hash table", "TCP", "compiler", "Unix", "stack", "queue"])
    return eg.questions_for(["hash table", "TCP"], passages=passages)


def test_question_reference_and_key_terms(questions):
    q = questions[0]
    assert (q.headword, q.question) == ("hash table", "What is hash table?")
    assert q.reference.startswith('(Or "hashing") A scheme for providing rapid access to data items')
    # highest TF-IDF words of the definition sentence, the headword's own words excluded
    assert q.key_terms == ("hashing", "providing", "rapid")
    assert all(t in eg._content_words(eg.first_sentence(q.reference)) for t in q.key_terms)


def test_first_sentence_and_degenerate():
    assert eg.first_sentence("An area of disk (e.g. a swap file) used to store. Next.") == \
        "An area of disk (e.g. a swap file) used to store."
    assert eg.first_sentence("By J. Smith in 1990. Next.") == "By J. Smith in 1990."
    assert eg.first_sentence("no end") == "no end"
    assert eg.is_degenerate("") == "empty"
    assert eg.is_degenerate("A hash is.") == "short"
    assert eg.is_degenerate("by the University of the University of the University of the City") == "loop"
    assert eg.is_degenerate("It is a subset of the list language. It is a subset of the list language.") == "loop"
    # parallel wording is not a loop (3-gram twice, no 6-gram twice)
    assert eg.is_degenerate("A jump via an address: it contains the address of a cell that contains the address of code.") is None
    assert eg.rep_n("a b c a b c".split(), 3) == pytest.approx(1 - 3 / 4)


def test_rescore_recomputes_text_metrics_and_keeps_perplexity(questions):
    q = questions[0]
    row = {"question": q.question, "passage_texts": [{"text": "hash table: a scheme for rapid access"}]}
    for s in eg.SYSTEMS:
        row[s] = {"answer": "A hash table is a scheme for rapid access to data.",
                  "metrics": {"perplexity": 2.5, "n_tokens": 12, "supported_share": 0.0, "supported_bigram_share": 0.0}}
    raw = {"questions": [dict(asdict(q), key_terms=list(q.key_terms))], "rows": [row], "ablation_rows": {},
           "ablation_table": [], "n_ablation": 0, "settings": {}, "weights": {}, "timings_s": {}}
    m = eg.rescore(raw)["rows"][0]["free"]["metrics"]
    # a hash table is a scheme for rapid access to data: all but "is", "to", "data" occur in the passage
    assert m["supported_share"] == pytest.approx(8 / 11)
    assert m["key_term_share"] == pytest.approx(1 / 3)  # of ("hashing", "providing", "rapid") only "rapid"
    assert (m["perplexity"], m["degenerate"]) == (2.5, 0.0)
    assert eg.report(raw)["perplexity"]["free"] == 2.5


def test_bootstrap_ci_mean_and_paired_difference():
    mean, lo, hi = eg.bootstrap_ci([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    assert mean == pytest.approx(0.625) and 0.0 <= lo < mean < hi <= 1.0
    assert eg.bootstrap_ci([0.5, 0.7], paired_with=[0.5, 0.7]) == (0.0, 0.0, 0.0)
    assert eg.bootstrap_ci([None, 2.0]) == (2.0, None, None)


def test_eval_grounding_core(foldoc_home, questions):
    r = eg.run(foldoc_home, questions[1:], ablations=True, n_ablation=1, log=None, ablation_names=["llm score: sum"],
               settings={"max_words": 10})
    for key in ("supported_share", "rougeL", "perplexity", "degenerate_share", "key_term_share"):
        assert set(r[key]) == {"overlay", "free", "retrieval"}, key
    assert r["n"] == 1 and r["settings"]["max_words"] == 10
    # the retrieval-only answer is a sentence of a retrieved passage: every word is supported
    assert r["supported_share"]["retrieval"] == 1.0
    for s in ("overlay", "free"):
        assert 0.0 < r["supported_share"][s] <= 1.0 and 0.0 <= r["rougeL"][s] <= 1.0
        assert r["perplexity"][s] >= 1.0
    assert r["ci"]["rougeL"]["overlay"] == [r["rougeL"]["overlay"], None, None]  # no CI from one question
    assert [a["name"] for a in r["ablations"]] == ["(free)", "(retrieval)", "default", "llm score: sum"]
    assert isinstance(r["goal"]["reached"], bool) and r["goal"]["perplexity_ratio"] > 0


def test_verdicts_core(foldoc_home, questions, tmp_path):
    r = verdicts.run_verdicts(foldoc_home, questions[:1], n=1, work=tmp_path, log=lambda _m: None)
    assert r["questions"] == 1
    assert r["rejected_word_reappeared"] == 0
    assert r["restored_exactly"] == 1
    assert r["unexplained_changes"] == 0 and r["other_words_changed"] == 0  # one answer: no other verdicts
    assert r["answers_changed"] == 1 and r["global_scores_after_revert"] == [0.0]


def test_e2e_core(foldoc_home, questions):
    r = e2e.run_e2e(foldoc_home, questions[:1], words=8, flow=False, log=lambda _m: None)
    assert {"flow_overhead", "ms_per_step_median", "overlay_vs_free_time_ratio"} <= set(r)
    assert r["flow_overhead"] is None  # flow path not run here (lfx import is slow); bench/e2e.py runs it
    assert r["ms_per_step_median"] > 0 and r["overlay_vs_free_time_ratio"] > 0
    b = r["breakdown_ms_median"]
    assert b["total"] >= b["retrieve"] + b["propose"] + b["select"] + b["accumulate"] - 1e-6
    assert r["generated_words_median"] >= 8 and not math.isnan(r["answer_ms_median"])


# ------------------------------------------------------------------ factoid evaluation (issue 15)
def test_factoid_set_keys_occur_in_their_source_entries():
    """Every answerable key is in its FOLDOC entry's text or headwords; the sets are as the README says."""
    import json
    import re

    from overlay_core.ingest import bundled_foldoc, clean_foldoc_body, read_dictd

    rows = [json.loads(line) for line in (BENCH / "data" / "factoid_foldoc.jsonl").read_text().splitlines()]
    ans = [r for r in rows if r["answerable"]]
    assert len(ans) >= 100 and sum(not r["answerable"] for r in rows) >= 20
    assert len({r["kind"] for r in ans}) >= 4 and len({r["id"] for r in rows}) == len(rows)
    entries: dict[str, list[str]] = {}  # a headword may name several entries ("lynx")
    for e in read_dictd(bundled_foldoc()):
        text = re.sub(r"\s+", " ", " ".join(e.headwords) + " " + clean_foldoc_body(e)[1]).casefold()
        for h in e.headwords:
            entries.setdefault(h, []).append(text)
    for r in ans:
        assert any(k.casefold() in text for text in entries[r["source"]] for k in r["answers"]), r


def test_factoid_hit_folds_case_punctuation_and_hyphens():
    import eval_factoid as ef

    assert ef.hit("Pascal was designed by Niklaus Wirth around 1970.", ["Wirth"])
    assert ef.hit("RAM stands for random-access memory.", ["random access memory"])
    assert not ef.hit("It runs on port 8080.", ["80"])  # whole words only
    assert ef.supported_share("Ken Thompson wrote it.", ["Unix: written by Ken Thompson"]) == 2 / 4


def test_factoid_bench_runs_every_system_on_real_parts(foldoc_home):
    import eval_factoid as ef

    rows = [{"id": "t1", "question": "Who invented Unix?", "answers": ["Thompson"], "kind": "who", "answerable": True},
            {"id": "t2", "question": "Who won the 2018 World Cup?", "answers": [], "kind": "unanswerable",
             "answerable": False}]
    out = ef.run(foldoc_home, rows, ef.SYSTEMS, log=lambda m: None)
    assert out[0]["ceiling"] is True and out[0]["overlay"]["hit"] is True
    assert out[1]["overlay"]["refused"] is True and out[1]["overlay"]["hit"] is None
    summary = ef.summarize(out, ef.SYSTEMS)
    assert summary["hit_rate"]["overlay"][0] == 1.0 and summary["refusal_unanswerable"][0] == 1.0


def test_second_factoid_set_keys_occur_in_its_document():
    import json

    import make_factoid_debian as md

    rows = [json.loads(line) for line in (BENCH / "data" / "factoid_debian.jsonl").read_text().splitlines()]
    assert sum(r["answerable"] for r in rows) >= 50 and sum(not r["answerable"] for r in rows) >= 20
    text = md.document_text().casefold()
    for r in rows:
        assert not r["answerable"] or any(k.casefold() in text for k in r["answers"]), r


def test_mixed_foldoc_set_is_checked_and_covers_every_form():
    """Every row of the hand-written set passes its builder's check: keys (or a yes-no's evidence) in the source
    entry, 'absent' terms of unanswerable questions in no entry; and the file is what the builder writes."""
    import json

    import make_factoid_foldoc_mixed as mm

    rows = [json.loads(line) for line in (BENCH / "data" / "factoid_foldoc_mixed.jsonl").read_text().splitlines()]
    assert rows == mm.rows()
    ans = [r for r in rows if r["answerable"]]
    assert len(ans) >= 100 and len(rows) - len(ans) >= 20 and len({r["id"] for r in rows}) == len(rows)
    assert {r["kind"] for r in ans} == {"who", "what", "when", "where", "which", "how-many", "stands-for", "why",
                                        "how", "yes-no", "definition"}
    assert [(r["id"], mm.check(r)) for r in rows if mm.check(r)] == []
    # the check has teeth: a key from another entry, an evidence not in the entry, a term FOLDOC does mention
    assert "not in the source" in mm.check(dict(ans[0], answers=["Guido van Rossum"]))
    assert "evidence" in mm.check({"answerable": True, "kind": "yes-no", "source": "python", "answers": ["yes"],
                                   "evidence": "It is written in COBOL"})
    assert "occur in FOLDOC" in mm.check({"answerable": False, "absent": ["Ethernet"]})


def test_factoid_yes_no_hit_spread_and_resume_rows(tmp_path):
    import json

    import eval_factoid as ef

    assert ef.hit("Yes, COBOL was designed by the CODASYL Committee.", ["yes"], "yes-no")
    assert not ef.hit("COBOL is no longer used.", ["no"], "yes-no")  # "no" inside an answer decides nothing
    assert not ef.hit("", ["yes"], "yes-no")
    assert ef.is_refusal({"answer": "", "refused": False}) and ef.is_refusal({"answer": "x", "refused": True})
    assert ef.spread(list(range(10)), 3) == [0, 3, 6] and ef.spread([1, 2], 5) == [1, 2]
    rows = ef.load("foldoc_mixed", 11)
    assert sum(r["answerable"] for r in rows) == 11 and sum(not r["answerable"] for r in rows) == 2
    assert len({r["kind"] for r in rows if r["answerable"]}) >= 8  # spread, not the first 11 (all "which")
    with pytest.raises(ValueError, match="--set is one of .*foldoc_mixed"):
        ef.load("nosuchset", None)
    out = tmp_path / "rows.jsonl"
    out.write_text(json.dumps({"id": "a", "first": {}, "embed": {}}) + "\n" + json.dumps({"id": "b", "first": {}})
                   + "\n" + '{"id": "c", "fir')  # a row without every system, and a line cut by a kill
    assert list(ef.read_rows(out, ("first", "embed"))) == ["a"]


def test_factoid_baselines_and_resume_on_real_parts(foldoc_home):
    """free / first / embed / rerank on the session's FOLDOC subset; a yes-no ceiling is its evidence; a question
    already done is not asked again."""
    import eval_factoid as ef

    rows = [{"id": "s1", "question": "Which company developed SQL?", "answers": ["IBM"], "kind": "which",
             "answerable": True},
            {"id": "s2", "question": "Was SQL developed by IBM?", "answers": ["yes"], "kind": "yes-no",
             "evidence": "SQL was developed by IBM", "answerable": True}]
    done = {"s0": {"id": "s0", "marker": True}}
    seen = []
    systems = ("free", "first", "embed", "rerank")
    out = ef.run(foldoc_home, [{"id": "s0"}] + rows, systems, log=lambda m: None, done=done, sink=seen.append)
    assert out[0] is done["s0"] and [r["id"] for r in seen] == ["s1", "s2"]
    r1, r2 = out[1:]
    assert r1["ceiling"] is True and r2["ceiling"] is True
    assert ef.best_sentence([], []) == "" and ef.best_sentence([0.1, 0.9, 0.9], ["a", "b", "c"]) == "b"
    for s in ("first", "embed", "rerank"):
        # a sentence baseline answers with a sentence of the retrieved passages, never "yes"/"no"
        assert r1[s]["answer"] and r2[s]["hit"] is False
    assert r1["free"]["supported"] is not None and 0.0 <= r1["free"]["supported"] <= 1.0
    summary = ef.summarize(out[1:], systems)
    assert summary["n_by_kind"] == {"which": 1, "yes-no": 1} and summary["ceiling"][0] == 1.0
    assert set(summary["hit_rate_by_kind_system"]) == set(systems)


def test_sqlite_set_is_checked_against_its_bundled_pages():
    """The held-out documentation set: keys / evidence in the source page as Overlay's HTML loader reads it,
    'absent' terms in no page; the pages' folder has its licence and origin."""
    import json

    import make_factoid_sqlite as ms

    rows = [json.loads(line) for line in (BENCH / "data" / "factoid_sqlite.jsonl").read_text().splitlines()]
    assert rows == ms.rows()
    ans = [r for r in rows if r["answerable"]]
    assert len(ans) >= 50 and len(rows) - len(ans) >= 20 and len({r["kind"] for r in ans}) >= 8
    assert [(r["id"], ms.check(r)) for r in rows if ms.check(r)] == []
    assert "not in" in ms.check(dict(ans[0], answers=["Guido van Rossum"]))
    assert "occur in the pages" in ms.check({"answerable": False, "absent": ["VACUUM"]})
    assert {"README.md", "copyright", "copyright.html"} <= {p.name for p in ms.DOCS.iterdir()}
    assert "public domain" in (ms.DOCS / "README.md").read_text()


def test_document_set_home_is_built_from_its_pages_only(tmp_path):
    """ensure_home builds a document set's state folder from its corpus files (not its README or licence)."""
    import json

    import eval_factoid as ef

    home = ef.ensure_home("debian", tmp_path / "h", log=lambda m: None)
    rep = json.loads((home / "knowledge.json").read_text())
    assert rep["n_passages"] > 10
    assert ef.ensure_home("foldoc", tmp_path / "f") == tmp_path / "f"  # FOLDOC homes are never built here


def test_factoid_diff_lists_what_a_change_won_and_lost():
    sys.path.insert(0, str(BENCH.parent / "scripts"))
    import factoid_diff as fd

    def row(i, answerable, hit, refused=False, answer="x"):
        return {"id": i, "question": f"q{i}", "answers": ["k"], "answerable": answerable,
                "overlay": {"answer": answer, "hit": hit if answerable else None, "refused": refused}}

    before = {r["id"]: r for r in (row("a", True, False), row("b", True, True), row("c", True, True),
                                   row("u", False, None, refused=False))}
    after = {r["id"]: r for r in (row("a", True, True, answer="k!"), row("b", True, False, refused=True),
                                  row("c", True, True), row("u", False, None, refused=True))}
    res = fd.compare(before, after)
    assert (res["won"], res["lost"]) == (1, 1) and res["after_minus_before"][0] == 0.0
    assert [(c["id"], c["before"], c["after"]) for c in res["changed"]] == [
        ("a", "miss", "hit"), ("b", "hit", "refused"), ("u", "answered", "declined")]
    assert (res["declined_unanswerable_before"], res["declined_unanswerable_after"]) == (0.0, 1.0)


def test_factoid_rescore_uses_the_current_keys():
    import eval_factoid as ef

    q = {"id": "d", "question": "What does DNS translate hostnames into?", "answers": ["Internet address"],
         "kind": "what", "answerable": True}
    row = {"id": "d", "answers": ["Internet addresses"], "kind": "what", "answerable": True, "ceiling": False,
           "passage_texts": ["The hostname is translated into an Internet address."],
           "overlay": {"answer": "It is translated into an Internet address.", "hit": False, "refused": False},
           "free": {"answer": "An IP.", "hit": False}}
    (r,) = ef.rescore([row, dict(row, id="gone")], [q], ("overlay", "free"))
    assert r["answers"] == ["Internet address"] and r["ceiling"] is True
    assert r["overlay"]["hit"] is True and r["free"]["hit"] is False
    declined = dict(row, overlay=dict(row["overlay"], refused=True))
    assert ef.rescore([declined], [q], ("overlay",))[0]["overlay"]["hit"] is False  # a refusal is never a hit


def test_factoid_main_errors_and_rescore_without_the_model(tmp_path, capsys):
    """User mistakes get one line and exit 2; --rescore reports from an --out file without loading anything."""
    import json

    import eval_factoid as ef

    assert ef.main(["--set", "nosuchset", "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--set is one of" in err[0]
    out = tmp_path / "rows.jsonl"
    assert ef.main(["--set", "foldoc_mixed", "--systems", "first", "--out", str(out), "--rescore"]) == 2
    assert "holds no rows" in capsys.readouterr().err
    q = ef.load("foldoc_mixed", None)[0]
    out.write_text(json.dumps({"id": q["id"], "question": q["question"], "answers": ["stale key"], "kind": q["kind"],
                               "answerable": True, "ceiling": True, "first": {"answer": q["answers"][0], "hit": False}})
                   + "\n")
    assert ef.main(["--set", "foldoc_mixed", "--systems", "first", "--out", str(out), "--rescore"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rescored"] == 1 and summary["hit_rate"]["first"][0] == 1.0  # the set's key, not the stale one


# ------------------------------------------------------------------ Russian factoid set (issue 16)
def test_russian_set_is_checked_against_its_chapters():
    """The Russian set: keys / evidence in the source chapter as Overlay's HTML loader reads it, 'absent' terms in
    no chapter, every question form; the corpus folder has its licence, origin and the files' digests."""
    import hashlib
    import json

    import make_factoid_debian_faq_ru as mr

    rows = [json.loads(line) for line in (BENCH / "data" / "factoid_debian_faq_ru.jsonl").read_text().splitlines()]
    assert rows == mr.rows()
    ans = [r for r in rows if r["answerable"]]
    assert len(ans) >= 50 and len(rows) - len(ans) >= 20 and len({r["id"] for r in rows}) == len(rows)
    assert {"definition", "who", "when", "where", "how-many", "how", "why", "yes-no"} <= {r["kind"] for r in ans}
    assert all(any("а" <= ch.casefold() <= "я" for ch in r["question"]) for r in rows)  # asked in Russian
    assert [(r["id"], mr.check(r)) for r in rows if mr.check(r)] == []
    # the check has teeth: a key from elsewhere, an evidence not in the chapter, a term the FAQ does use
    assert "not in the source" in mr.check(dict(ans[0], answers=["Гвидо ван Россум"]))
    assert "evidence" in mr.check({"answerable": True, "kind": "yes-no", "source": "basic-defs.ru.html",
                                   "answers": ["yes"], "evidence": "Debian написан на COBOL"})
    assert "occur in the pages" in mr.check({"answerable": False, "absent": ["Pixar"]})
    assert mr.TITLE_PAGE not in mr.pages() and len(mr.corpus_files()) == 16
    docs = mr.DOCS
    assert {"README.md", "copyright", "SHA256SUMS", "index.ru.html"} <= {p.name for p in docs.iterdir()}
    assert "Software in the Public Interest" in (docs / "copyright").read_text()
    assert "manpages-ru" in (docs / "README.md").read_text()  # kept aside, and the README says so
    sums = dict(reversed(line.split("  ")) for line in (docs / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {p.name for p in docs.iterdir()} - {"README.md", "SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256((docs / name).read_bytes()).hexdigest() == digest, name


def test_russian_set_home_is_built_with_its_embedder(tmp_path, monkeypatch):
    """ensure_home builds the Russian set's folder with the multilingual embedder, without the title page (one
    small chapter here, to keep the test short; the whole set is built the same way)."""
    import json

    import eval_factoid as ef

    folder, _pattern, exclude, default, embedder = ef.SET_DOCUMENTS["debian_faq_ru"]
    assert (exclude, embedder, default.name) == (("index.ru.html",), "e5-small", ".overlay-debian-faq-ru")
    monkeypatch.setitem(ef.SET_DOCUMENTS, "debian_faq_ru", (folder, "[ik]*.ru.html", exclude, default, embedder))
    home = ef.ensure_home("debian_faq_ru", tmp_path / "h", log=lambda m: None)
    rep = json.loads((home / "knowledge.json").read_text())
    assert rep["embedder"] == "e5-small" and 3 <= rep["n_passages"] <= 20
    from overlay_core.retrieval import get_knowledge_base

    kb = get_knowledge_base(home / "chroma")
    files = {m["file_path"].rsplit("/", 1)[-1] for m in kb.metadata({"file_type": "html"}).values()}
    assert files == {"kernel.ru.html"}
    hit = kb.query("Какой командой собрать пакет с собственным ядром?", k=1)[0]
    assert "deb-pkg" in hit.text
