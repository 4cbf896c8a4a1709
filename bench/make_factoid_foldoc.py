"""Build ``bench/data/factoid_foldoc.jsonl``: factoid questions with answer keys drawn from FOLDOC's own text.

Each answerable question comes from a sentence pattern of one entry (whose fact it asks):

* ``stands-for``: an entry with an acronym headword and an expansion headword whose initials spell it
  ("What does TCP stand for?" → "transmission control protocol");
* ``who``: "<verb>ed by <Capitalised Name>" in the entry's first paragraph ("Who designed Pascal?" →
  "Wirth"; the key is the name's last word, so "N. Wirth" and "Niklaus Wirth" both count);
* ``when``: "<verb>ed in [Month] <year>" in the first paragraph ("When was COBOL designed?" → "1960");
* ``port``: "port <number>" anywhere in the entry ("What port does HTTP use?" → "80").

Every key is checked to occur in the entry's headwords or text (``source`` names the entry). The sample is
drawn with a fixed seed and balanced across the four kinds. The unanswerable questions are written by hand
(``UNANSWERABLE``): plausible questions whose answer FOLDOC does not hold, some about its own topics.

Bias, stated: templated questions favour facts that are spelled out in one sentence; the reasoner's frames
are built for such sentences. Hand-written questions of other shapes are in ``bench/data/factoid_dev.jsonl``
(used during development, so not a clean test).

Usage: ``.venv/bin/python bench/make_factoid_foldoc.py [--n 120] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from overlay_core import text as T  # noqa: E402
from overlay_core.evidence import initials_match  # noqa: E402
from overlay_core.ingest import bundled_foldoc, clean_foldoc_body, read_dictd  # noqa: E402

OUT = REPO / "bench" / "data" / "factoid_foldoc.jsonl"
_NAME = r"((?:[A-Z][a-z]+\.?\s|[A-Z]\.\s?)+(?:(?:van|de|von|der)\s)?[A-Z][a-zA-Z'\-]+)"
_WHO = re.compile(r"\b(invented|designed|developed|written|created|founded|coined|implemented) by " + _NAME)
_WHEN = re.compile(r"\b(released|introduced|developed|designed|invented|created|founded|published|announced|"
                   r"standardised|standardized) in (?:(?:early|late|mid|about|around)\s)?"
                   r"(?:(?:January|February|March|April|May|June|July|August|September|October|November|December)\s)?"
                   r"((?:19|20)\d\d)\b")
_PORT = re.compile(r"\b(?:TCP |UDP )?port (\d{2,5})\b")
_ACRONYM = re.compile(r"^[a-z0-9]{2,7}$")
_PARTICIPLE_TO_PAST = {"written": "wrote"}

UNANSWERABLE = [
    "Who won the 2018 World Cup?", "What is the capital of Australia?", "Who painted the Mona Lisa?",
    "When did the Berlin Wall fall?", "How many legs does a spider have?", "Who wrote War and Peace?",
    "What is the boiling point of water in Fahrenheit?", "Which planet is closest to the sun?",
    "Who was the first person to walk on the moon?", "What does NASA stand for?",
    "Who founded Amazon?", "When was the iPhone released?", "What port does Minecraft use?",
    "Who invented the hash table?", "Who designed the Rust programming language?", "When was Kubernetes released?",
    "What does GDPR stand for?", "Who wrote the Harry Potter books?", "What is the population of Tokyo?",
    "Which company makes the Tesla Model 3?", "When was TikTok launched?", "Who created Bitcoin?",
    "What port does PostgreSQL use?", "Who invented the transistor radio?", "How many players are on a soccer team?",
]


def facts():
    for entry in read_dictd(bundled_foldoc()):
        cat, body = clean_foldoc_body(entry)
        if not body:
            continue
        heads = list(entry.headwords)
        first_par = body.split("\n\n")[0]
        spelled = {}
        for h in heads:
            m = re.search(r"(?<![\w-])" + re.escape(h) + r"(?![\w-])", body, re.IGNORECASE)
            spelled[h] = m.group(0) if m else h
        acr = [h for h in heads if _ACRONYM.match(h) and re.search(r"\b" + re.escape(h.upper()) + r"\b", body)]
        for a in acr:
            for e in heads:
                if e != a and " " in e and initials_match(a.upper(), T.words(e)):
                    yield {"kind": "stands-for", "question": f"What does {a.upper()} stand for?", "answers": [e],
                           "source": heads[0]}
                    break
        # the subject of the fact: the headword as the body spells it
        head = max(heads, key=lambda h: (spelled[h] != h, len(h)))
        subj = spelled[head]
        if len(T.words(subj)) > 4:
            continue
        m = _WHO.search(first_par)
        if m:
            verb = _PARTICIPLE_TO_PAST.get(m.group(1), m.group(1))
            name = m.group(2).strip()
            yield {"kind": "who", "question": f"Who {verb} {subj}?", "answers": [name.split()[-1]],
                   "full": name, "source": heads[0]}
        m = _WHEN.search(first_par)
        if m:
            yield {"kind": "when", "question": f"When was {subj} {m.group(1)}?", "answers": [m.group(2)],
                   "source": heads[0]}
        m = _PORT.search(body)
        if m:
            yield {"kind": "port", "question": f"What port does {subj} use?", "answers": [m.group(1)],
                   "source": heads[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=120, help="answerable questions (balanced across kinds)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    by_kind: dict[str, list[dict]] = {}
    seen = set()
    for f in facts():
        if f["question"].casefold() in seen:
            continue
        seen.add(f["question"].casefold())
        by_kind.setdefault(f["kind"], []).append(f)
    rng = random.Random(a.seed)
    kinds = sorted(by_kind)
    per = a.n // len(kinds)
    chosen = []
    for k in kinds:
        pool = by_kind[k]
        rng.shuffle(pool)
        chosen += pool[: per]
    # top up with who/when questions (stands-for has the most candidates, port the fewest)
    rest = [f for k in ("who", "when") if k in by_kind for f in by_kind[k][per:]]
    rng.shuffle(rest)
    chosen += rest[: a.n - len(chosen)]
    rows = [dict(f, id=f"foldoc-{i:03d}", answerable=True) for i, f in enumerate(chosen)]
    rows += [{"id": f"foldoc-u{i:02d}", "question": q, "answers": [], "kind": "unanswerable", "answerable": False,
              "source": None} for i, q in enumerate(UNANSWERABLE)]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    counts = ", ".join(f"{k} {sum(r['kind'] == k for r in chosen)}" for k in kinds)
    avail = ", ".join(f"{k} {len(v)}" for k, v in by_kind.items())
    print(f"{OUT}: {len(chosen)} answerable ({counts}; available {avail}), {len(UNANSWERABLE)} unanswerable")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
