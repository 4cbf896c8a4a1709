"""Grounded-answer evaluation: Overlay vs the same model generating freely vs retrieval only (issue 9).

Question set (reproducible, :func:`question_pool`)
    ``"What is X?"`` for FOLDOC headwords X drawn with a fixed seed from the entries that are
    definitions (see :func:`_eligible` for the filter). The pool order is fixed by the seed, so
    ``--n 30`` asks the first 30 questions of the ``--n 200`` run. Each question's **reference
    passage** is the first chunk of its own entry (the ``"X: "`` label removed).

Index (:func:`prepare_home`)
    A temporary Overlay state folder, cached under ``.overlay/bench/`` (gitignored), keyed by
    its contents. ChromaDB holds the pool's entries plus **distractors**: the entries each question
    entry cross-references (FOLDOC ``{links}``, the "related entries" of the design prototype),
    entries sharing a headword word, and random entries (``--distractors``). ``--full-index`` embeds
    the whole FOLDOC instead (~14 400 passages, ~20 min on 2 shared cores). The adjacency table is
    built from the **whole** FOLDOC (``--adjacency full``, what ``overlay build`` does), so the
    corpus-wide successors are the product's, not a subset's.

Systems (same questions, same retrieved passages, same GGUF, same prompt)
    ``overlay``    ``Reasoner.answer`` (adjacency candidates + LLM selector + accumulator).
    ``free``       plain RAG: the prompt :meth:`Reasoner.prompt` builds for the same passages
                   (same instruction, same passage order and truncation), then greedy
                   ``LLMSelector.generate`` until end-of-generation or ``FREE_MAX_TOKENS`` tokens
                   — what a plain RAG chain returns.
    ``retrieval``  the first sentence of the top passage (the reasoner's passage ranking), label removed.

Metrics (per answer; reported as mean and 95 % bootstrap CI — percentile method,
``scipy.stats.bootstrap``, Efron & Tibshirani 1993, 2000 resamples, fixed seed)
    ``supported_share``   share of the answer's word tokens (:func:`overlay_core.text.words`,
        punctuation excluded, case-folded) that occur in the retrieved passages shown to the model.
        A token-level precision against the evidence (the "supported" notion of attribution
        metrics, e.g. Rashkin et al. 2021 "Measuring Attribution in NLG", at word granularity).
    ``supported_bigram_share``  the same for adjacent word pairs (stricter: copied *phrases*).
    ``rougeL``            ROUGE-L F-measure (longest common subsequence; Lin 2004, "ROUGE: A Package
        for Automatic Evaluation of Summaries") of the answer against the reference passage, via
        Google's ``rouge-score`` package (``RougeScorer(["rougeL"], use_stemmer=True)``).
    ``key_term_share``    share of the entry's key terms the answer contains. Key terms: the
        ``KEY_TERMS`` words of the reference's first sentence (the definition) with the highest TF-IDF
        (sublinear tf x ``log(N / df)`` over all FOLDOC passages; Salton & Buckley 1988), alphabetic,
        >= 3 letters, in at most ``KEY_TERM_MAX_DF`` of the passages, not a word of the headword.
        Matching is case-folded on whole words.
    ``perplexity``        per-token perplexity of the answer under the same model, conditioned on the
        same prompt: ``exp(-sum log p(token) / n_tokens)`` from ``LLMSelector.score(prompt, [answer])``
        (lower = more fluent to the model). Free generation is greedy under this very model, so it is
        the best case; the issue's goal compares ratios.
    ``degenerate_share``  share of answers that are empty, have fewer than 5 words, or loop (a word
        3-gram said 3+ times, after Holtzman et al. 2020, or a 6-gram said twice; see
        :func:`repeated_phrase`). Also reported: ``rep3``, the mean seq-rep-3 (Welleck et al. 2019,
        "Neural Text Generation with Unlikelihood Training"): the share of repeated word 3-grams.
    The Overlay - free differences of the two grounding metrics and the perplexity ratio are
    bootstrapped paired (same questions).

Goal (issue 9): overlay's supported share and ROUGE-L above free generation's, its perplexity
within 1.5x of free generation's, and no more degenerate answers. Reported in ``goal``.

Ablations (``--ablations``, on the first ``--n-ablation`` questions): one row per setting change
against the defaults (candidate sources, context order, LLM score, repetition blocking, stopping,
start, two accumulator weightings); the free/retrieval values on the same questions are rows too.

Prints the tables, writes every answer to ``.overlay/bench/results/``, and prints ONE JSON object
as the last stdout line: ``supported_share``, ``rougeL``, ``perplexity``, ``degenerate_share``,
``key_term_share``, ``rep3`` (each ``{system: mean}``), ``ci``, ``goal``, ``ablations``, ``n``, ``timings_s``.
``--rescore RESULTS_JSON`` recomputes every model-free metric of a saved run and reports again.

Usage: ``.venv/bin/python bench/eval_grounding.py [--n 200] [--ablations/--no-ablations]
[--n-ablation 30] [--seed 0] [--full-index] [--rescore RESULTS_JSON]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from overlay_core import text as T  # noqa: E402
from overlay_core.errors import InputError  # noqa: E402
from overlay_core.reasoner import Reasoner, ReasonerSettings  # noqa: E402

CACHE = REPO / ".overlay" / "bench"
SYSTEMS = ("overlay", "free", "retrieval")
METRICS = ("supported_share", "supported_bigram_share", "rougeL", "key_term_share", "perplexity", "degenerate", "rep3")
KEY_TERMS = 3
#: words in more than this share of FOLDOC passages are never key terms (a corpus stop list, like
#: scikit-learn's ``TfidfVectorizer(max_df=...)``): "after", "its", "used" are not what an entry is about.
KEY_TERM_MAX_DF = 0.02
MIN_WORDS = 5  # fewer answer words than this = degenerate
FREE_MAX_TOKENS = 64  # ~ the 30-word cap of Overlay (SmolLM2: ~1.3 tokens per English word) plus the subject
BOOTSTRAP_RESAMPLES = 2000
POOL = 200  # questions in the pool (the index always covers the whole pool)

#: (row name, settings overrides, weights overrides) — each changes one thing against the defaults.
ABLATIONS: list[tuple[str, dict, dict]] = [
    ("default", {}, {}),
    ("candidates: corpus successors only", {"passage_candidates": False, "span_words": 1}, {}),
    ("candidates: + passage successors (no spans)", {"span_words": 1}, {}),
    ("context: trigram", {"context_order": 3}, {}),
    ("llm score: sum", {"llm_score": "sum"}, {}),
    ("llm score: calibrated", {"llm_score": "calibrated"}, {}),
    ("no repetition blocking", {"block_ngram": 0}, {}),
    ("no stopping rule (min_words=0)", {"min_words": 0}, {}),
    ("no subject start", {"start": "none"}, {}),
    ("weights: context-free (w_ctx=0)", {}, {"w_ctx": 0.0}),
    ("weights: context-heavy (w_ctx=6)", {}, {"w_ctx": 6.0}),
    ("context: trigram + weights: w_ctx=6", {"context_order": 3}, {"w_ctx": 6.0}),
]


# ------------------------------------------------------------------------------ question set
@dataclass(frozen=True)
class Question:
    """One evaluation question with its reference.

    Attributes:
        headword: the FOLDOC headword asked about (as the passage metadata spells it).
        question: ``"What is <headword>?"``.
        reference: the entry's first passage without the ``"<headword>: "`` label.
        passage_id: id of that passage in the index.
        key_terms: the reference's ``KEY_TERMS`` highest-TF-IDF words (see module docstring).
    """

    headword: str
    question: str
    reference: str
    passage_id: str
    key_terms: tuple[str, ...]


_HEAD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+#-]*(?: [A-Za-z0-9+#-]+){0,2}$")
#: The question pool is frozen: "What is <headword>?" must read back as that headword under the rule the pool
#: was drawn with (the reasoner's question reading has changed since; the pool must not change with it).
_POOL_QUESTION_RE = re.compile(
    r"^\s*(?:(?:what|who)(?:'s|\s+(?:is|are|was|were|does|do))|define|explain|describe|tell\s+me\s+about)"
    r"\s+(?:(?:an?|the)\s+)?(?P<term>.+?)\s*[?.!]*\s*$", re.IGNORECASE)


def _label_free(text: str) -> str:
    head, sep, rest = text.partition(": ")
    return rest if sep else text


def _content_words(text: str) -> list[str]:
    return [w.casefold() for w in T.words(text) if not T.is_punct(w)]


def _eligible(p, duplicate_heads: set[str]) -> bool:
    """A definition entry worth asking about: a short plain headword, one entry, a real first sentence."""
    head = str(p.metadata.get("headword", ""))
    if p.metadata.get("chunk") != 0 or not _HEAD_RE.match(head) or len(head) < 3 or head.casefold() in duplicate_heads:
        return False
    body = _label_free(p.text)
    if len(body) < 80 or body.startswith(("See ", "1. See", "An abbreviation", "Abbreviation")):
        return False
    if len(_content_words(first_sentence(body))) < 6:
        return False
    m = _POOL_QUESTION_RE.match(f"What is {head}?")
    return m is not None and m.group("term").strip() == head


def _idf(passages) -> tuple[dict[str, float], int]:
    df: Counter = Counter()
    for p in passages:
        df.update(set(_content_words(p.text)))
    return {w: math.log(len(passages) / c) for w, c in df.items()}, len(passages)


def key_terms(reference: str, headword: str, idf: dict[str, float], n_docs: int, k: int = KEY_TERMS) -> tuple[str, ...]:
    """The ``k`` highest-TF-IDF words of ``reference`` (alphabetic, >= 3 letters, not in the headword,
    in at most ``KEY_TERM_MAX_DF`` of the ``n_docs`` passages, or in one passage for tiny corpora);
    TF is sublinear, ``1 + log tf`` (Manning, Raghavan & Schuetze 2008, section 6.4.1)."""
    head = set(_content_words(headword))
    min_idf = math.log(min(n_docs, 1 / KEY_TERM_MAX_DF)) - 1e-9
    tf = Counter(w for w in _content_words(reference)
                 if w.isalpha() and len(w) >= 3 and w not in head and idf.get(w, 0.0) >= min_idf)
    ranked = sorted(tf, key=lambda w: (-(1 + math.log(tf[w])) * idf.get(w, 0.0), w))
    return tuple(ranked[:k])


def _make_question(p, idf, n_docs: int) -> Question:
    head = str(p.metadata["headword"])
    ref = _label_free(p.text)
    return Question(head, f"What is {head}?", ref, p.id, key_terms(first_sentence(ref), head, idf, n_docs))


def question_pool(n: int = POOL, seed: int = 0, passages=None) -> list[Question]:
    """The first ``n`` questions of the seeded pool (see module docstring); deterministic for a seed."""
    from overlay_core.ingest import foldoc_passages

    passages = passages if passages is not None else foldoc_passages()
    idf, n_docs = _idf(passages)
    heads = Counter(str(p.metadata.get("headword", "")).casefold() for p in passages if p.metadata.get("chunk") == 0)
    dup = {h for h, c in heads.items() if c > 1}
    cands = sorted((p for p in passages if _eligible(p, dup)), key=lambda p: str(p.metadata["headword"]).casefold())
    random.Random(seed).shuffle(cands)
    return [_make_question(p, idf, n_docs) for p in cands[:n]]


def questions_for(headwords: list[str], passages=None) -> list[Question]:
    """Questions about given headwords (tests, demos); IDF over ``passages`` (default: all FOLDOC)."""
    from overlay_core.ingest import foldoc_passages

    passages = passages if passages is not None else foldoc_passages()
    idf, n_docs = _idf(passages)
    by_head = {str(p.metadata.get("headword", "")).casefold(): p for p in passages if p.metadata.get("chunk") == 0}
    out = []
    for h in headwords:
        p = by_head.get(h.casefold())
        if p is None:
            raise InputError(f"no FOLDOC entry with headword {h!r}")
        out.append(_make_question(p, idf, n_docs))
    return out


# ------------------------------------------------------------------------------ index
def _distractor_heads(questions: list[Question], n_random: int, seed: int) -> list[str]:
    """Headwords to index besides the questions': cross-references, same-word entries, random entries."""
    from overlay_core.ingest import bundled_foldoc, read_dictd

    entries = list(read_dictd(bundled_foldoc()))
    all_heads = sorted({h for e in entries for h in e.headwords})
    folded = {h.casefold(): h for h in all_heads}
    q_heads = {q.headword.casefold() for q in questions}
    by_word: dict[str, list[str]] = {}
    for h in all_heads:
        for w in h.casefold().split():
            by_word.setdefault(w, []).append(h)
    out: set[str] = set()
    for e in entries:
        if not q_heads.intersection(h.casefold() for h in e.headwords):
            continue
        links = [m.strip() for m in re.findall(r"\{([^{}]+)\}", e.body)]
        out.update(folded[l.casefold()] for l in links[:3] if l.casefold() in folded)
    for q in questions:
        same = [h for w in q.headword.casefold().split() if len(w) >= 3 for h in by_word.get(w, []) if h.casefold() not in q_heads]
        out.update(sorted(same)[:2])
    rng = random.Random(seed + 1)
    out.update(rng.sample(all_heads, min(n_random, len(all_heads))))
    return sorted(out - {q.headword for q in questions})


def prepare_home(questions: list[Question], *, n_random: int = 300, seed: int = 0, full_index: bool = False,
                 adjacency: str = "full", cache: Path = CACHE, progress: bool = True) -> Path:
    """A built Overlay state folder for ``questions`` (cached under ``cache``; see module docstring).

    Returns the folder. The build is reused when its manifest matches (question headwords,
    distractors, adjacency scope, FOLDOC size); a half-built folder (no manifest) is rebuilt.
    """
    from overlay_core.adjacency import AdjacencyTable
    from overlay_core.ingest import bundled_foldoc, foldoc_passages
    from overlay_core.knowledge import build_knowledge, state_paths, table_current
    from overlay_core.storage import write_atomic

    heads = None if full_index else sorted({q.headword for q in questions} | set(_distractor_heads(questions, n_random, seed)))
    key = {"heads": heads, "adjacency": adjacency, "order": 3, "foldoc": bundled_foldoc().stat().st_size, "v": 1}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    home = cache / f"grounding-{digest}"
    manifest = home / "bench_manifest.json"
    if manifest.exists():
        if table_current(state_paths(home).adjacency):
            return home
        # built by an older Overlay (table format or word-token rules changed): rebuild the table
        # only (the ChromaDB index is still valid)
        if adjacency == "full" and heads is not None:
            AdjacencyTable.build(foldoc_passages(), order=3, progress=progress).save(state_paths(home).adjacency)
        else:
            build_knowledge(home, headwords=heads, order=3, progress=progress)
        return home
    if home.exists():
        shutil.rmtree(home)
    t0 = time.perf_counter()
    report = build_knowledge(home, headwords=heads, order=3, progress=progress)
    if adjacency == "full" and heads is not None:
        AdjacencyTable.build(foldoc_passages(), order=3, progress=progress).save(state_paths(home).adjacency)
    write_atomic(manifest, json.dumps({"key": key, "report": report, "build_s": time.perf_counter() - t0}).encode())
    return home


# ------------------------------------------------------------------------------ systems
_ABBREV = {"e.g", "i.e", "etc", "vs", "cf", "approx", "inc", "ltd", "dr", "mr", "st", "no"}


def first_sentence(text: str) -> str:
    """The first sentence of ``text``: up to the first ``.``/``!``/``?`` followed by a space (or the end),
    not after a known abbreviation ("e.g.") or a single letter ("J. Smith")."""
    for m in re.finditer(r"[.!?](?=\s|$)", text):
        before = text[: m.start()].rsplit(None, 1)[-1].lstrip("([{\"'") if text[: m.start()].strip() else ""
        if m.group() == "." and (before.casefold() in _ABBREV or re.fullmatch(r"[A-Za-z]", before)):
            continue
        return text[: m.end()].strip()
    return text.strip()


def retrieve(reasoner: Reasoner, question: str, settings: ReasonerSettings):
    """The reasoner's passages and prompt for ``question`` (same query, ranking and prompt as ``answer``)."""
    question = T.normalize(question).strip()
    ranked, _hits = reasoner.retrieve(question, settings)  # the reasoner's own retrieval and ranking
    # _prompt is the reasoner's own prompt builder: calling it guarantees system (b) sees the very prompt (a) does.
    prompt, kept, _dropped = reasoner.prompt(question, ranked, settings)
    return prompt, kept


def run_systems(reasoner: Reasoner, q: Question, systems=SYSTEMS, **overrides) -> dict[str, Any]:
    """Answer ``q`` with each system; returns ``{"passages", "prompt", "<system>": {"answer", "ms"}}``."""
    settings = replace(reasoner.settings, **overrides) if overrides else reasoner.settings
    prompt, kept = retrieve(reasoner, q.question, settings)
    out: dict[str, Any] = {"passages": [{"id": p.id, "text": p.text, "source": p.source} for p in kept],
                           "prompt": prompt}
    if "overlay" in systems:
        t0 = time.perf_counter()
        try:
            res = reasoner.answer(q.question, **overrides)
            ids = [p["id"] for p in res["passages"]]
            assert ids == [p.id for p in kept], (ids, [p.id for p in kept])  # same passages as (b), (c)
            # a declined question has no answer words (scored as an empty answer, as a refusal was before)
            out["overlay"] = {"answer": "" if res.get("refused") else res["answer"], "stop_reason": res["stop_reason"],
                              "steps": len(res["trace"]), "timings_ms": res["timings_ms"]}
        except InputError as exc:  # e.g. retrieval found nothing about the term: an empty answer, visibly
            out["overlay"] = {"answer": "", "error": str(exc)}
        out["overlay"]["ms"] = 1000 * (time.perf_counter() - t0)
    if "free" in systems:
        t0 = time.perf_counter()
        # what a plain RAG chain returns: everything up to the end-of-generation token or the token cap
        # (no stop string: the model often opens with "The answer to this question is:\n\n...")
        text = reasoner.selector.generate(prompt, FREE_MAX_TOKENS).strip()
        out["free"] = {"answer": text, "ms": 1000 * (time.perf_counter() - t0)}
    if "retrieval" in systems:
        out["retrieval"] = {"answer": first_sentence(_label_free(kept[0].text)) if kept else "", "ms": 0.0}
    return out


# ------------------------------------------------------------------------------ metrics
_ROUGE = None


def _rouge():
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return _ROUGE


def _bigrams(ws: list[str]) -> set[tuple[str, str]]:
    return set(zip(ws, ws[1:]))


def repeated_phrase(ws: list[str]) -> bool:
    """A repetition loop: a word 3-gram occurring 3+ times, or a word 6-gram occurring twice.

    The first rule is the repetition criterion of Holtzman et al. 2020 ("The Curious Case of Neural
    Text Degeneration": a phrase repeated at least 3 times), with phrases of 3 words so that common
    pairs ("is a" three times in 40 words) are not loops; the second catches a clause said twice,
    which the token cap cuts before its third time. Conservative by design: parallel wording
    ("contains the address of ... contains the address of") is not a loop; ``rep3`` measures
    milder repetition.
    """
    for n, times in ((3, 3), (6, 2)):
        grams = Counter(zip(*(ws[i:] for i in range(n))))
        if grams and max(grams.values()) >= times:
            return True
    return False


def is_degenerate(answer: str) -> str | None:
    """Why ``answer`` is degenerate (``"empty"``, ``"short"`` (< MIN_WORDS words), ``"loop"``), or None."""
    ws = _content_words(answer)
    if not ws:
        return "empty"
    if len(ws) < MIN_WORDS:
        return "short"
    if repeated_phrase(ws):
        return "loop"
    return None


def rep_n(ws: list[str], n: int = 3) -> float:
    """seq-rep-n of Welleck et al. 2019: ``1 - unique n-grams / n-grams`` (0 = no repeated n-gram)."""
    grams = list(zip(*(ws[i:] for i in range(n))))
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def answer_metrics(answer: str, q: Question, passages: list[dict], prompt: str, selector) -> dict[str, Any]:
    """Every metric of one answer (see module docstring); None where undefined (an empty answer)."""
    ws = _content_words(answer)
    support_words: set[str] = set()
    support_bigrams: set[tuple[str, str]] = set()
    for p in passages:
        pw = _content_words(p["text"])
        support_words.update(pw)
        support_bigrams |= _bigrams(pw)
    bg = list(zip(ws, ws[1:]))
    m: dict[str, Any] = {
        "n_words": len(ws),
        "supported_share": (sum(w in support_words for w in ws) / len(ws)) if ws else 0.0,
        "supported_bigram_share": (sum(b in support_bigrams for b in bg) / len(bg)) if bg else 0.0,
        "rougeL": _rouge().score(q.reference, answer)["rougeL"].fmeasure if ws else 0.0,
        "key_term_share": (sum(t in set(ws) for t in q.key_terms) / len(q.key_terms)) if q.key_terms else None,
        "perplexity": None,
        "degenerate_reason": is_degenerate(answer),
    }
    m["degenerate"] = float(m["degenerate_reason"] is not None)
    m["rep3"] = rep_n(ws, 3)
    if answer.strip() and selector is not None:
        sc = selector.score(prompt, [answer])[0]
        m["perplexity"] = math.exp(-sc.logprob_sum / len(sc.token_ids))
        m["n_tokens"] = len(sc.token_ids)
    return m


def bootstrap_ci(values, seed: int = 0, paired_with=None) -> tuple[float | None, float | None, float | None]:
    """``(mean, low, high)``: the mean and its 95 % percentile-bootstrap CI (``scipy.stats.bootstrap``).

    With ``paired_with``, the statistic is the mean of the paired differences ``values - paired_with``.
    None entries (undefined metric) are dropped (pairwise when paired). CI is None for < 2 values.
    """
    from scipy.stats import bootstrap

    if paired_with is not None:
        pairs = [(a, b) for a, b in zip(values, paired_with) if a is not None and b is not None]
        x = np.array([a - b for a, b in pairs], dtype=float)
    else:
        x = np.array([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return None, None, None
    mean = float(x.mean())
    if x.size < 2 or np.all(x == x[0]):
        return mean, (mean if x.size >= 2 else None), (mean if x.size >= 2 else None)
    res = bootstrap((x,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=0.95, method="percentile",
                    rng=np.random.default_rng(seed))
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


def ratio_ci(x, y, seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """``mean(x) / mean(y)`` over the pairs where both are defined, with its 95 % paired percentile-bootstrap CI."""
    from scipy.stats import bootstrap

    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    if not pairs:
        return None, None, None
    a, b = (np.array(v, dtype=float) for v in zip(*pairs))
    ratio = float(a.mean() / b.mean())
    if len(pairs) < 2:
        return ratio, None, None
    res = bootstrap((a, b), lambda u, v, axis=-1: np.mean(u, axis=axis) / np.mean(v, axis=axis), paired=True,
                    vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                    rng=np.random.default_rng(seed))
    return ratio, float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarize(rows: list[dict], systems, seed: int = 0) -> dict[str, dict[str, tuple]]:
    """``{metric: {system: (mean, low, high)}}`` over the per-question metric rows."""
    return {metric: {s: bootstrap_ci([r[s]["metrics"][metric] for r in rows if s in r], seed) for s in systems}
            for metric in METRICS}


# ------------------------------------------------------------------------------ evaluation
def evaluate(reasoner: Reasoner, questions: list[Question], systems=SYSTEMS, log=print, **overrides) -> list[dict]:
    """Run ``systems`` on every question and compute every metric; one row per question."""
    rows = []
    for i, q in enumerate(questions):
        out = run_systems(reasoner, q, systems, **overrides)
        row = {"headword": q.headword, "question": q.question, "key_terms": list(q.key_terms),
               "passages": [p["source"] for p in out["passages"]], "passage_texts": out["passages"]}
        for s in systems:
            row[s] = dict(out[s], metrics=answer_metrics(out[s]["answer"], q, out["passages"], out["prompt"],
                                                         reasoner.selector))
        rows.append(row)
        if log:
            log(f"  [{i + 1}/{len(questions)}] {q.question}  " + " | ".join(
                f"{s}: {row[s]['answer'][:70]!r}" for s in systems if s != "retrieval"))
    return rows


def with_config(reasoner: Reasoner, settings: dict, weights: dict) -> Reasoner:
    """A reasoner over the same parts with some settings/weights changed (nothing is rebuilt)."""
    return Reasoner(reasoner.kb, reasoner.table, reasoner.selector, reasoner.accumulator,
                    weights=replace(reasoner.weights, **weights), settings=replace(reasoner.settings, **settings))


def goal_check(summary: dict, diffs: dict) -> dict[str, Any]:
    o = {m: summary[m]["overlay"][0] for m in ("supported_share", "rougeL", "perplexity", "degenerate")}
    f = {m: summary[m]["free"][0] for m in ("supported_share", "rougeL", "perplexity", "degenerate")}
    ppl_ratio = (o["perplexity"] / f["perplexity"]) if o["perplexity"] and f["perplexity"] else None
    checks = {
        "supported_share_higher": o["supported_share"] > f["supported_share"],
        "rougeL_higher": o["rougeL"] > f["rougeL"],
        "perplexity_within_1_5x": ppl_ratio is not None and ppl_ratio <= 1.5,
        "degenerate_not_more": o["degenerate"] <= f["degenerate"],
    }
    return {**checks, "perplexity_ratio": ppl_ratio, "reached": all(checks.values()),
            "supported_share_diff_ci": diffs["supported_share"], "rougeL_diff_ci": diffs["rougeL"],
            "perplexity_ratio_ci": diffs["perplexity_ratio"]}


def collect(home: Path, questions: list[Question], *, ablations: bool = True, n_ablation: int = 30,
            log=print, ablation_names=None, settings: dict | None = None) -> dict[str, Any]:
    """Run every system and ablation variant (the model work); returns the raw rows for :func:`report`.

    ``settings`` overrides :class:`ReasonerSettings` fields for every system (e.g. ``{"max_words": 8}``).
    """
    from overlay_core.knowledge import make_reasoner

    log = log or (lambda _m: None)
    table = [a for a in ABLATIONS if ablation_names is None or a[0] in ablation_names or a[0] == "default"]
    t0 = time.perf_counter()
    reasoner = with_config(make_reasoner(home), settings or {}, {})
    log(f"main comparison: {len(questions)} questions, systems {', '.join(SYSTEMS)}")
    rows = evaluate(reasoner, questions, SYSTEMS, log=log)
    t_main = time.perf_counter() - t0
    per_variant: dict[str, list] = {}
    if ablations:
        sub = questions[:n_ablation]
        variants = {name: with_config(reasoner, so, wo) for name, so, wo in table if name != "default"}
        log(f"ablations: {len(variants)} variants x {len(sub)} questions")
        per_variant = {name: [] for name in variants}
        # question-major: every variant of one question reuses the same prompt (KV cache), so the
        # prefill is paid once per question, not once per row
        for i, q in enumerate(sub):
            for name, r in variants.items():
                per_variant[name].extend(evaluate(r, [q], ("overlay",), log=None))
            log(f"  [{i + 1}/{len(sub)}] {q.question} done")
    return {"questions": [asdict(q) for q in questions], "rows": rows, "ablation_rows": per_variant,
            "ablation_table": [[n, so, wo] for n, so, wo in table] if ablations else [],
            "n_ablation": min(n_ablation, len(questions)) if ablations else 0,
            "settings": reasoner.settings.as_dict(), "weights": reasoner.weights.as_dict(),
            "timings_s": {"main_s": t_main, "total_s": time.perf_counter() - t0,
                          "overlay_ms_mean": float(np.mean([r["overlay"]["ms"] for r in rows])),
                          "free_ms_mean": float(np.mean([r["free"]["ms"] for r in rows]))}}


def rescore(raw: dict) -> dict:
    """Recompute every metric that needs no model (all but perplexity) from saved answers, in place."""
    qs = {d["question"]: Question(**{**d, "key_terms": tuple(d["key_terms"])}) for d in raw["questions"]}
    groups = [(r, SYSTEMS) for r in raw["rows"]] + [(r, ("overlay",)) for rs in raw["ablation_rows"].values() for r in rs]
    for row, systems in groups:
        for s in systems:
            old = row[s]["metrics"]
            new = answer_metrics(row[s]["answer"], qs[row["question"]], row.get("passage_texts", []), "", None)
            if "passage_texts" not in row:  # older result files: keep the support metrics as computed then
                new.update({k: old[k] for k in ("supported_share", "supported_bigram_share")})
            new.update({k: old.get(k) for k in ("perplexity", "n_tokens")})
            row[s]["metrics"] = new
    return raw


def report(raw: dict, seed: int = 0) -> dict[str, Any]:
    """The JSON summary (means, CIs, goal, ablation rows) of :func:`collect`'s raw rows."""
    rows = raw["rows"]
    summary = summarize(rows, SYSTEMS, seed)
    diffs = {m: bootstrap_ci([r["overlay"]["metrics"][m] for r in rows], seed,
                             paired_with=[r["free"]["metrics"][m] for r in rows])
             for m in ("supported_share", "rougeL")}
    diffs["perplexity_ratio"] = ratio_ci([r["overlay"]["metrics"]["perplexity"] for r in rows],
                                         [r["free"]["metrics"]["perplexity"] for r in rows], seed)
    abl_rows: list[dict] = []
    if raw["ablation_table"]:
        base = rows[: raw["n_ablation"]]
        for s in ("free", "retrieval"):
            abl_rows.append(_ablation_row(f"({s})", {}, {}, summarize(base, [s], seed), s))
        for name, so, wo in raw["ablation_table"]:
            arows = base if name == "default" else raw["ablation_rows"][name]
            abl_rows.append(_ablation_row(name, so, wo, summarize(arows, ["overlay"], seed), "overlay"))
    return {
        "n": len(rows), "n_ablation": raw["n_ablation"], "settings": raw["settings"], "weights": raw["weights"],
        **{k: {s: _r(summary[m][s][0]) for s in SYSTEMS} for k, m in
           (("supported_share", "supported_share"), ("supported_bigram_share", "supported_bigram_share"),
            ("rougeL", "rougeL"), ("key_term_share", "key_term_share"), ("perplexity", "perplexity"),
            ("degenerate_share", "degenerate"), ("rep3", "rep3"))},
        "ci": {m: {s: [_r(v) for v in summary[m][s]] for s in SYSTEMS} for m in METRICS},
        "goal": _round(goal_check(summary, diffs)),
        "ablations": abl_rows,
        "timings_s": _round(raw["timings_s"]),
    }


def run(home: Path, questions: list[Question], *, ablations: bool = True, n_ablation: int = 30, seed: int = 0,
        log=print, results_path: Path | None = None, ablation_names=None, settings: dict | None = None) -> dict[str, Any]:
    """The whole evaluation (main comparison + ablations) over a built ``home``; returns the JSON summary.

    ``ablation_names`` keeps only those rows of :data:`ABLATIONS` (default: all). With ``results_path``
    every answer and metric is saved there (re-summarize later with ``--rescore``).
    """
    raw = collect(home, questions, ablations=ablations, n_ablation=n_ablation, log=log, ablation_names=ablation_names,
                  settings=settings)
    if results_path is not None:
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(raw, indent=1, default=str))
    return report(raw, seed)


def _r(v, nd: int = 4):
    return None if v is None else round(float(v), nd)


def _round(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, float):
            out[k] = _r(v)
        elif isinstance(v, tuple):
            out[k] = [_r(x) for x in v]
        else:
            out[k] = v
    return out


def _ablation_row(name: str, so: dict, wo: dict, summ: dict, system: str) -> dict:
    return {"name": name, "settings": so, "weights": wo,
            **{m: [_r(v) for v in summ[m][system]] for m in METRICS}}


# ------------------------------------------------------------------------------ report
def _fmt_ci(t) -> str:
    mean, lo, hi = (list(t) + [None, None, None])[:3]
    if mean is None:
        return "-"
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{mean:.3f}"


def print_tables(result: dict) -> None:
    print(f"\nMain comparison: n={result['n']} questions (mean [95% bootstrap CI])")
    names = [("supported_share", "supported share"), ("supported_bigram_share", "supported bigram share"),
             ("rougeL", "ROUGE-L F"), ("key_term_share", "key-term share"), ("perplexity", "perplexity"),
             ("degenerate", "degenerate share"), ("rep3", "seq-rep-3")]
    print(f"| {'metric':<24} | " + " | ".join(f"{s:<24}" for s in SYSTEMS) + " |")
    print("|" + "-" * 26 + "|" + "|".join("-" * 26 for _ in SYSTEMS) + "|")
    for m, label in names:
        print(f"| {label:<24} | " + " | ".join(f"{_fmt_ci(result['ci'][m][s]):<24}" for s in SYSTEMS) + " |")
    g = result["goal"]
    print(f"\nGoal: supported higher {g['supported_share_higher']} (diff {_fmt_ci(g['supported_share_diff_ci'])}), "
          f"ROUGE-L higher {g['rougeL_higher']} (diff {_fmt_ci(g['rougeL_diff_ci'])}), "
          f"perplexity ratio {_fmt_ci(g['perplexity_ratio_ci'])} (<= 1.5: {g['perplexity_within_1_5x']}), "
          f"degenerate not more {g['degenerate_not_more']} -> reached: {g['reached']}")
    if result["ablations"]:
        print(f"\nAblations: n={result['n_ablation']} questions (overlay unless marked; mean [95% CI])")
        cols = ["supported_share", "supported_bigram_share", "rougeL", "key_term_share", "perplexity", "degenerate", "rep3"]
        print("| " + " | ".join(["row"] + ["supported", "sup. bigram", "ROUGE-L", "key terms", "perplexity", "degenerate",
                                          "seq-rep-3"]) + " |")
        print("|" + "---|" * (len(cols) + 1))
        for row in result["ablations"]:
            print(f"| {row['name']} | " + " | ".join(_fmt_ci(row[c]) for c in cols) + " |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="questions in the main comparison (first n of the pool)")
    ap.add_argument("--ablations", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--n-ablation", type=int, default=30, help="questions per ablation row")
    ap.add_argument("--ablation", action="append", default=None, metavar="ROW",
                    help="run only this ablation row (its name as printed; repeatable; default: every row)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distractors", type=int, default=300, help="random distractor entries in the index")
    ap.add_argument("--full-index", action="store_true", help="embed the whole FOLDOC (slow) instead of a subset")
    ap.add_argument("--adjacency", choices=("full", "subset"), default="full",
                    help="build the adjacency table from the whole FOLDOC (default) or the indexed subset")
    ap.add_argument("--rescore", type=Path, default=None, metavar="RESULTS_JSON",
                    help="no model run: recompute the text metrics of a saved results file and print the report")
    a = ap.parse_args(argv)
    if a.rescore is not None:
        raw = rescore(json.loads(a.rescore.read_text()))
        a.rescore.with_suffix(".rescored.json").write_text(json.dumps(raw, indent=1, default=str))
        result = report(raw, a.seed)
        print_tables(result)
        print(json.dumps(result))
        return 0
    if a.n < 1:
        raise SystemExit("--n must be >= 1")
    from overlay_core.ingest import foldoc_passages

    t0 = time.perf_counter()
    passages = foldoc_passages()
    pool = question_pool(max(POOL, a.n), a.seed, passages)
    questions = pool[: a.n]
    home = prepare_home(pool, n_random=a.distractors, seed=a.seed, full_index=a.full_index, adjacency=a.adjacency)
    print(f"index: {home} (ready in {time.perf_counter() - t0:.1f} s)", flush=True)
    out = CACHE / "results" / f"eval_grounding-n{a.n}-s{a.seed}.json"
    if a.ablation:
        unknown = sorted(set(a.ablation) - {name for name, _, _ in ABLATIONS})
        if unknown:
            raise SystemExit(f"unknown ablation rows {unknown}; choose from {[name for name, _, _ in ABLATIONS]}")
    result = run(home, questions, ablations=a.ablations, n_ablation=a.n_ablation, seed=a.seed,
                 log=lambda m: print(m, flush=True), results_path=out, ablation_names=a.ablation)
    print_tables(result)
    print(f"\nper-question answers: {out} (re-summarize without the model: --rescore {out})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
