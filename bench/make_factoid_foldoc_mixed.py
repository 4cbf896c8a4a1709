"""Build ``bench/data/factoid_foldoc_mixed.jsonl``: hand-written FOLDOC questions of every form, held out.

``bench/data/factoid_foldoc.jsonl`` is templated (who / when / stands for / port, one regular expression each).
This set is the complement the issue asks for: questions written by hand from the entries' text, in the forms
a reader uses — which company / how many / where / who / when / what … stand for (phrased several ways) /
why / how / what (not a definition) / yes-no, plus a few definitions — and not seen by the reasoner's
development (it was written after the reasoner's rules, from ``grep`` over the entries, without running the
reasoner on it first).

Checks, run by this script and by ``tests/test_bench_smoke.py`` (:func:`check`):

* every key of an answerable question occurs literally in its source entry (the entry's headwords and cleaned
  body, case-folded, whitespace collapsed), and one of them also as whole words after the bench's folding
  (``eval_factoid.fold``), so a hit is possible at all (a singular key may stand beside the entry's plural);
* a yes-no question's key is ``yes`` or ``no`` and its ``evidence`` (the sentence part that decides it) occurs
  in the entry the same way;
* every ``absent`` term of an unanswerable question occurs in no FOLDOC entry (case-folded, not inside a
  longer word), so the corpus cannot hold its answer.

Row fields: ``id``, ``question``, ``answers`` (keys; any one counts), ``kind`` (who / what / when / where /
which / how-many / stands-for / why / how / yes-no / definition), ``source`` (the entry's first headword;
``None`` when unanswerable), ``answerable``; ``evidence`` (yes-no) or ``absent`` (unanswerable) as above.

Usage: ``.venv/bin/python bench/make_factoid_foldoc_mixed.py`` (writes the set; exits 1 naming the first bad
row if a check fails).
"""

from __future__ import annotations

import json
import re
import sys
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

OUT = REPO / "bench" / "data" / "factoid_foldoc_mixed.jsonl"

# (question, keys, kind, source headword[, evidence for yes-no])
QUESTIONS: list[tuple] = [
    # which (company, processor, port)
    ("Which companies developed NDIS?", ["Microsoft", "3COM"], "which", "ndis"),
    ("Which company developed the AIFF audio format?", ["Apple"], "which", "aiff"),
    ("Which company developed Encapsulated PostScript?", ["Adobe"], "which", "encapsulated postscript"),
    ("Which company developed XDR for remote procedure call systems?", ["Sun Microsystems"], "which",
     "external data representation"),
    ("Which companies developed the ACPI standard?", ["Intel", "Microsoft", "Toshiba"], "which", "acpi"),
    ("Which company originally developed Microsoft SQL Server?", ["Sybase"], "which", "microsoft sql server"),
    ("Which company developed NFS?", ["Sun Microsystems"], "which", "network file system"),
    ("Which company produced the BeBox?", ["Be Inc"], "which", "bebox"),
    ("Which company produced the CATIA CAD/CAM system?", ["Dassault"], "which", "catia"),
    ("Which company designed the 6x86 chip?", ["Cyrix"], "which", "6x86"),
    ("Which company developed the WAV sound format?", ["Microsoft"], "which", "wav"),
    ("Which company developed VFAT?", ["Microsoft"], "which", "vfat"),
    ("Which company originally developed Digital Linear Tape?", ["DEC"], "which", "digital linear tape"),
    ("Which company developed SQL?", ["IBM"], "which", "sql"),
    ("Which company first developed TrueType?", ["Apple"], "which", "truetype"),
    ("Which companies co-developed the Prodigy service?", ["IBM", "Sears"], "which", "prodigy"),
    ("Which company developed HASP for NASA?", ["IBM"], "which", "hasp"),
    ("Which company developed OS/360?", ["IBM"], "which", "operating system/360"),
    ("Which company developed ATA-2?", ["Western Digital"], "which",
     "advanced technology attachment interface with extensions"),
    ("Which company made the MCP-1600 processor?", ["Western Digital"], "which", "mcp-1600"),
    ("Which company developed SCPI?", ["Hewlett-Packard"], "which", "scpi"),
    ("Which company released GWHIS?", ["Quadralay"], "which", "gwhis"),
    ("Which processor was used in the original IBM PC?", ["8088"], "which", "8088"),
    ("Which processor was the Sun-3 workstation based on?", ["68020"], "which", "sun-3 workstation"),
    ("Which port does an SMTP server normally listen on?", ["25"], "which", "simple mail transfer protocol"),
    # how many
    ("How many bits wide is the data bus of the 80286?", ["16"], "how-many", "80286"),
    ("How many bits wide was the address bus of the 8080?", ["16"], "how-many", "8080"),
    ("How many 8-bit registers did the 8080 have?", ["seven"], "how-many", "8080"),
    ("How many bits long is an IDEA key?", ["128"], "how-many", "international data encryption algorithm"),
    ("How many bits long is the Skipjack key?", ["80"], "how-many", "skipjack"),
    ("How many bits wide is the address bus of the 386SX?", ["24"], "how-many", "386sx"),
    ("How many bits does US-ASCII use?", ["seven"], "how-many", "american standard code for information interchange"),
    ("How many bytes long are IPv6 addresses?", ["16"], "how-many", "internet protocol version 6"),
    ("How many CPUs did the ILLIAC IV have?", ["64"], "how-many", "lilliac iv"),
    ("How many PowerPC processors does a BeBox contain?", ["two and eight"], "how-many", "bebox"),
    ("How many bits wide was the address bus of the IMS 6100?", ["12"], "how-many", "ims 6100"),
    ("How long are the RC4 keys that the US government approves for export?", ["40"], "how-many", "rc4"),
    ("How many companies have incorporated NFS in their products?", ["two hundred"], "how-many", "network file system"),
    # where
    ("Where was Gopher started?", ["University of Minnesota"], "where", "gopher"),
    ("Where does the Clean language come from?", ["Nijmegen"], "where", "clean"),
    ("Where was EDSAC completed?", ["Cambridge"], "where", "edsac"),
    ("At which university was Magma developed?", ["Sydney"], "where", "magma"),
    ("Where was Usenet originally implemented?", ["Duke University"], "where", "usenet"),
    ("Where was Smalltalk developed?", ["Xerox PARC"], "where", "smalltalk"),
    ("Where was the Mentat language developed?", ["University of Virginia"], "where", "mentat"),
    ("Where was the Emerald language developed?", ["University of Washington"], "where", "emerald"),
    ("Where was Ada-O developed?", ["Karlsruhe"], "where", "ada-o"),
    ("Where did Marc Andreessen create the Mosaic prototype?", ["University of Illinois"], "where", "marc andreessen"),
    ("Where was the ALOHA net implemented?", ["University of Hawaii"], "where", "aloha net"),
    ("Where did Giuseppe Peano teach?", ["University of Turin"], "where", "giuseppe peano"),
    ("Where was the Parallaxis language developed?", ["Stuttgart"], "where", "parallaxis"),
    ("Where was CORAL developed?", ["Wisconsin"], "where", "coral"),
    # who
    ("Who wrote the Lions Book?", ["John Lions"], "who", "lions book"),
    ("Who wrote the first version of AberMUD?", ["Alan Cox", "Richard Acott", "Jim Finnis", "Leon Thrane"], "who",
     "abermud"),
    ("Who wrote a book giving OS/360 as an example of the second-system effect?", ["Brooks"], "who",
     "operating system/360"),
    ("Who started Perl?", ["Larry Wall"], "who", "perl"),
    ("Who coordinates work on the Linux kernel?", ["Linus Torvalds"], "who", "linux"),
    ("Who first described Ethernet?", ["Metcalfe"], "who", "ethernet"),
    ("Who led the group that developed Smalltalk?", ["Alan Kay"], "who", "smalltalk"),
    ("Who designed COBOL?", ["CODASYL"], "who", "cobol"),
    ("Who wrote Adamakegen?", ["Owen O'Malley"], "who", "adamakegen"),
    ("Who wrote T-gen?", ["Justin Graver"], "who", "t-gen"),
    ("Who led the team that developed Arjuna?", ["Santosh Shrivastava"], "who", "arjuna"),
    ("Who wrote the Dragon Book?", ["Aho", "Sethi", "Ullman"], "who", "dragon book"),
    ("Who wrote the Cinderella Book?", ["Hopcroft", "Ullman"], "who", "cinderella book"),
    ("Who developed the Michigan Algorithm Decoder?", ["Graham", "Arden", "Galler"], "who",
     "michigan algorithm decoder"),
    ("Who developed BSD at Berkeley?", ["Bill Joy"], "who", "4.2bsd"),
    ("Who created the NCSA Mosaic research prototype?", ["Andreessen"], "who", "mosaic"),
    ("Who wrote the devil book?", ["Leffler", "McKusick", "Karels", "Quarterman"], "who", "devil book"),
    # when
    ("In what year was Python invented?", ["1991"], "when", "python"),
    ("When was Perl started?", ["1987"], "when", "perl"),
    ("When was Ethernet first described?", ["1976"], "when", "ethernet"),
    ("When did EDSAC perform its first calculation?", ["1949-05-06"], "when", "edsac"),
    ("When was the IBM 360 released?", ["1964-04-07"], "when", "ibm 360"),
    ("In what year did Intel develop the 8031?", ["1980"], "when", "8031"),
    ("In which year did DEC sell the PDP-7?", ["1964"], "when", "pdp-7"),
    ("When was Darwin originally released?", ["March 1999"], "when", "darwin"),
    ("When was Usenet originally implemented?", ["1979"], "when", "usenet"),
    ("In which decade was SQL developed?", ["1970s"], "when", "sql"),
    ("When was the Human Interface Technology Laboratory founded?", ["1990"], "when", "hitl"),
    ("When was BSDI founded?", ["1991"], "when", "berkeley software design, inc"),
    ("When was the 80186 developed?", ["1982"], "when", "80186"),
    # stands for, phrased several ways
    ("What does ASCII stand for?", ["American Standard Code for Information Interchange"], "stands-for",
     "american standard code for information interchange"),
    ("What is the name Usenet short for?", ["Users' Network"], "stands-for", "usenet"),
    ("What does DLT stand for?", ["Digital Linear Tape"], "stands-for", "digital linear tape"),
    ("What is GRIP an acronym for?", ["Graph Reduction In Parallel"], "stands-for", "grip"),
    ("What does GLASS stand for?", ["General LAnguage for System Semantics"], "stands-for", "glass"),
    ("What does EHTS stand for?", ["Emacs HyperText System"], "stands-for", "ehts"),
    ("What does DACTL stand for?", ["Declarative Alvey Compiler Target Language"], "stands-for", "dactl"),
    ("What does PGA stand for in computer graphics?", ["Professional Graphics Adapter"], "stands-for",
     "professional graphics adapter"),
    ("What does KSR stand for?", ["Keyboard Send Receive"], "stands-for", "keyboard send receive"),
    ("What does the name Emacs stand for?", ["Editing MACroS", "Extensible MACro System"], "stands-for", "emacs"),
    ("What is the full name of CIDR?", ["Classless Inter-Domain Routing"], "stands-for", "cidr"),
    # why
    ("Why is a bang path so called?", ["bang sign", "exclamation mark"], "why", "bang path"),
    ("Why is the Dragon Book so called?", ["cover design"], "why", "dragon book"),
    ("Why were banana labels so called?", ["blunt-ended bananas"], "why", "banana label"),
    ("Why is a flippy so called?", ["flipped over"], "why", "flippy"),
    ("Why is the D-type connector so named?", ["one side is shorter"], "why", "d-type"),
    ("Why is CIDR called classless?", ["not limited to the subnet masks"], "why", "cidr"),
    ("Why does first fit fragment free space more than best fit?", ["split up a large free block"], "why",
     "first fit"),
    ("Why is the factorial of zero one?", ["empty product"], "why", "factorial"),
    ("Why is 100BaseVG also called 100VG-AnyLAN?", ["both Ethernet and token ring"], "why", "100basevg"),
    ("Why can dead code never be executed?", ["no control flow path"], "why", "dead code"),
    ("Why is the devil book so called?", ["little devil"], "why", "devil book"),
    ("Why is NFS implemented using UDP?", ["stateless"], "why", "network file system"),
    ("Why was IPv6 designed?", ["shortage of IP addresses"], "why", "internet protocol version 6"),
    # how
    ("How does Ethernet transmit each packet?", ["CSMA/CD"], "how", "ethernet"),
    ("How does NFS let a computer access files over a network?", ["as if they were on its local disks"], "how",
     "network file system"),
    ("How is computation expressed in Smalltalk?", ["send a message to an object"], "how", "smalltalk"),
    ("How are the higher levels of Emacs programmed?", ["Emacs Lisp"], "how", "emacs"),
    ("How does Skipjack encrypt data?", ["64-bit blocks"], "how", "skipjack"),
    ("How does a hardware device come to respond at multiple addresses?", ["decodes a subset of the address lines"],
     "how", "aliasing"),
    ("How is a byte-code program run?", ["byte-code interpreter"], "how", "byte-code"),
    ("How does first fit find a block of memory?", ["scans the list from the beginning"], "how", "first fit"),
    # what (not a definition)
    ("What language is the empeg user interface written in?", ["Python"], "what", "empeg"),
    ("What language was the original Marseille Prolog interpreter written in?", ["Fortran"], "what",
     "marseille prolog"),
    ("What language is ayacc written in?", ["Ada"], "what", "ayacc"),
    ("What languages did Python combine ideas from?", ["ABC", "Modula-3", "Icon"], "what", "python"),
    ("What did COBOL introduce?", ["record structure"], "what", "cobol"),
    ("Which RFC defines Gopher?", ["RFC 1436"], "what", "gopher"),
    ("In which RFC is FTP defined?", ["RFC 959"], "what", "file transfer protocol"),
    ("What does DNS translate hostnames into?", ["Internet addresses", "Internet address"], "what",
     "domain name system"),
    ("What was the 80186 an improvement on?", ["8086"], "what", "80186"),
    ("What superseded EXEC 2?", ["REXX"], "what", "exec 2"),
    ("What followed the Sun-2 workstation?", ["Sun-3"], "what", "sun-2 workstation"),
    ("What is the bandwidth of Ethernet?", ["10 Mbit/s"], "what", "ethernet"),
    ("What was Emacs in Richard Stallman's GNU project?", ["first step"], "what", "emacs"),
    ("What is Bison a replacement for?", ["yacc"], "what", "bison"),
    # definitions
    ("What is a dangling pointer?", ["doesn't actually lead anywhere", "point at anything valid"], "definition",
     "dangling pointer"),
    ("What is Gopher?", ["distributed document retrieval system"], "definition", "gopher"),
    ("What is FreeBSD?", ["free operating system"], "definition", "freebsd"),
    ("What is a banana label?", ["macrotape reels"], "definition", "banana label"),
    ("What is first fit?", ["resource allocation scheme"], "definition", "first fit"),
    # yes-no: the key is the answer's first word; the evidence decides it
    ("Was COBOL designed by the CODASYL Committee?", ["yes"], "yes-no", "cobol", "designed by the CODASYL Committee"),
    ("Does the 8088 have an 8-bit data bus?", ["yes"], "yes-no", "8088", "an 8-bit data bus"),
    ("Did the 8080 have a 32-bit address bus?", ["no"], "yes-no", "8080", "The 8080 had a 16-bit address bus"),
    ("Is Clean a lazy functional language?", ["yes"], "yes-no", "clean",
     "A lazy higher-order purely functional language"),
    ("Is Python object-oriented?", ["yes"], "yes-no", "python", "It is object-oriented"),
    ("Was Perl originally developed for Windows?", ["no"], "yes-no", "perl", "Originally developed for Unix"),
    ("Is SMTP a client to server protocol?", ["no"], "yes-no", "simple mail transfer protocol",
     "It is a server to server protocol"),
    ("Is Emacs distributed by the Free Software Foundation?", ["yes"], "yes-no", "emacs",
     "Emacs is distributed by the Free Software Foundation"),
    ("Did the 6502 have many registers?", ["no"], "yes-no", "6502", "the 6502 had very few registers"),
    ("Does the Intel 80386DX have a 32-bit data bus?", ["yes"], "yes-no", "intel 80386dx", "with a 32-bit data bus"),
    ("Was EDSAC completed in England?", ["yes"], "yes-no", "edsac", "Mathematical Laboratory in England"),
    ("Does CORAL have a Prolog-like syntax?", ["yes"], "yes-no", "coral", "has a Prolog-like syntax"),
    ("Is Unicode maintained by a for-profit company?", ["no"], "yes-no", "unicode",
     "non-profit consortium Unicode Inc"),
]

# (question, kind, terms no FOLDOC entry contains: so the corpus cannot hold the answer)
UNANSWERABLE: list[tuple] = [
    ("Which company developed Kotlin?", "which", ["Kotlin"]),
    ("What port does Redis use by default?", "which", ["Redis"]),
    ("When was Python 3 released?", "when", ["Python 3"]),
    ("How many cores does the Apple M1 chip have?", "how-many", ["M1"]),
    ("Who founded Netflix?", "who", ["Netflix"]),
    ("What does USB-C stand for?", "stands-for", ["USB-C"]),
    ("Which company created TypeScript?", "which", ["TypeScript"]),
    ("How many bits long is a SHA-3 hash?", "how-many", ["SHA-3"]),
    ("When was Docker first released?", "when", ["Docker"]),
    ("Who became CEO of Microsoft in 2014?", "who", ["Satya Nadella"]),
    ("What is the tallest mountain in Africa?", "what", ["Kilimanjaro"]),
    ("How many moons does Mars have?", "how-many", ["moons"]),
    ("Which river flows through Cairo?", "which", ["Nile"]),
    ("How many bits are in an IPv8 address?", "how-many", ["IPv8"]),
    ("Who succeeded Steve Jobs as CEO of Apple?", "who", ["Tim Cook"]),
    ("When was Instagram launched?", "when", ["Instagram"]),
    ("Who designed the Raspberry Pi?", "who", ["Raspberry Pi"]),
    ("Is WebAssembly faster than JavaScript?", "yes-no", ["WebAssembly"]),
    ("Who created the Hadoop framework?", "who", ["Hadoop"]),
    ("What does WPA2 stand for?", "stands-for", ["WPA2"]),
    ("When was Windows 10 released?", "when", ["Windows 10"]),
    ("What programming language is Ruby on Rails written in?", "what", ["Ruby on Rails"]),
    ("Why was Google+ shut down?", "why", ["Google+"]),
    ("How does Kubernetes schedule containers?", "how", ["Kubernetes"]),
]


def _squash(text: str) -> str:
    return " ".join(text.casefold().split())


@lru_cache(maxsize=1)
def entries() -> dict[str, list[str]]:
    """headword -> texts of the entries it names (a headword may name several: "lynx", "glass"); each text is
    the entry's headwords and cleaned body, case-folded with whitespace collapsed (what the bench can match)."""
    from overlay_core.ingest import bundled_foldoc, clean_foldoc_body, read_dictd

    out: dict[str, list[str]] = {}
    for e in read_dictd(bundled_foldoc()):
        text = _squash(" ".join(e.headwords) + " " + clean_foldoc_body(e)[1])
        for h in e.headwords:
            out.setdefault(h, []).append(text)
    return out


@lru_cache(maxsize=1)
def _corpus() -> str:
    return "\n".join(t for ts in entries().values() for t in ts)


def mentioned(term: str) -> bool:
    """``term`` occurs in some FOLDOC entry, case-folded, not inside a longer word."""
    return re.search(r"(?<!\w)" + re.escape(_squash(term)) + r"(?!\w)", _corpus()) is not None


def occurs(key: str, texts: list[str]) -> bool:
    """``key`` occurs literally (case-folded) and as whole words after the bench's folding in one of ``texts``."""
    from eval_factoid import fold

    return any(_squash(key) in t and f" {fold(key)} " in f" {fold(t)} " for t in texts)


def keys_problem(keys: list[str], texts: list[str]) -> str | None:
    """Why ``keys`` are not valid for a source with ``texts``: each key must occur literally (case-folded) in the
    source, and one of them also as whole words (:func:`occurs`) — so "Internet address" may stand beside the
    source's "Internet addresses" — or None."""
    bad = [k for k in keys if not any(_squash(k) in t for t in texts)]
    if bad:
        return f"key(s) {bad} not in the source"
    return None if any(occurs(k, texts) for k in keys) else f"no key of {keys} occurs as whole words in the source"


def question_rows(prefix: str, questions, unanswerable, extra=lambda q: {}) -> list[dict]:
    """The rows of a factoid set: ``questions`` as ``(question, keys, kind, source[, evidence])`` tuples with ids
    ``<prefix>-000``…, then ``unanswerable`` as ``(question, kind, absent terms)`` with ids ``<prefix>-u00``…;
    ``extra(question)`` adds fields to an answerable row (after ``answerable``)."""
    out = []
    for i, (q, keys, kind, source, *evidence) in enumerate(questions):
        row = {"id": f"{prefix}-{i:03d}", "question": q, "answers": keys, "kind": kind, "source": source,
               "answerable": True, **extra(q)}
        if evidence:
            row["evidence"] = evidence[0]
        out.append(row)
    for i, (q, kind, absent) in enumerate(unanswerable):
        out.append({"id": f"{prefix}-u{i:02d}", "question": q, "answers": [], "kind": kind, "source": None,
                    "answerable": False, "absent": absent})
    return out


def rows() -> list[dict]:
    return question_rows("foldoc-mixed", QUESTIONS, UNANSWERABLE)


def check(row: dict) -> str | None:
    """Why ``row`` is not a valid question of this set (see the module docstring), or None."""
    ents = entries()
    if row["answerable"]:
        texts = ents.get(row["source"])
        if not texts:
            return f"source {row['source']!r} is not a FOLDOC headword"
        if row["kind"] == "yes-no":
            if row["answers"] not in (["yes"], ["no"]):
                return f"yes-no keys must be ['yes'] or ['no'], not {row['answers']}"
            if not occurs(row["evidence"], texts):
                return f"evidence {row['evidence']!r} is not in entry {row['source']!r}"
        else:
            why = keys_problem(row["answers"], texts)
            return f"{why} (entry {row['source']!r})" if why else None
        return None
    present = [t for t in row["absent"] if mentioned(t)]
    return f"'absent' term(s) {present} occur in FOLDOC" if present else None


def main() -> int:
    out = rows()
    for r in out:
        why = check(r)
        if why:
            print(f"{r['id']} {r['question']!r}: {why}", file=sys.stderr)
            return 1
    qs = [r["question"].casefold() for r in out]
    if len(set(qs)) != len(qs):
        print("duplicate questions", file=sys.stderr)
        return 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    tmp.replace(OUT)
    ans = [r for r in out if r["answerable"]]
    kinds = {}
    for r in ans:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    print(f"{OUT}: {len(ans)} answerable ({', '.join(f'{k} {v}' for k, v in kinds.items())}), "
          f"{len(out) - len(ans)} unanswerable")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
