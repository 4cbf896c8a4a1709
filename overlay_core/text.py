"""The one tokenization convention shared by the adjacency table, the LLM selector and the trace.

Convention (all of Overlay uses exactly this):

* **Normalization** — text is cleaned with :func:`normalize`: Unicode NFC (so the NFC
  and NFD spellings of a word are one entry), lone surrogates replaced by U+FFFD,
  NUL and other C0/C1 control characters replaced by a space, and the invisible
  format characters ZERO WIDTH SPACE (U+200B), ZERO WIDTH NON-JOINER (U+200C),
  WORD JOINER (U+2060) and BOM (U+FEFF) removed. ZERO WIDTH JOINER (U+200D) is
  kept because it glues emoji sequences (👩‍💻).
* **Words** — :func:`words` splits normalized text into *word tokens*, tried in this order:

  1. a URL with a scheme (``http://vax.co.uk/``; trailing ``.,;:!?)]}'`` stay outside);
  2. an e-mail address (``denis@doc.ic.ac.uk``);
  3. a dotted abbreviation of one- or two-letter parts, final dot included (``e.g.``,
     ``i.e.``, ``U.S.``, ``Ph.D.``), so it never reads as a sentence end;
  4. a run of letters/digits/underscore (any script: Latin, Cyrillic, CJK …) with inner
     ``-``, ``'``, ``’``, ``/`` or ``.`` joins between word characters (``e-mail``, ``don't``,
     ``TCP/IP``, ``I/O``, ``OS/2``, ``3.14``, ``index.html``) and ``,`` between digits (a decimal comma
     ``1,8``, digit groups ``2,147,483,647``: "1, 8" would read as two numbers), a leading ``.`` or ``/`` when it
     starts a word (``.NET``, ``/dev/null``) and a trailing ``++`` or ``#`` (``C++``, ``C#``);
  5. a single non-space, non-word character (punctuation, symbols, emoji, with any
     following ZWJ/variation-selector continuation).

  The version of this rule set is :data:`TOKENIZATION`; tables record it and are rebuilt
  when it changes. Case is preserved: the table stores
  surface forms; lookups fall back to a case-folded key (see ``AdjacencyTable``).
* **Spacing** — words are joined by one space, except that closing punctuation
  (:data:`NO_SPACE_BEFORE`) attaches to the previous word and nothing follows opening
  brackets (:data:`NO_SPACE_AFTER`) with a space. :func:`continuation` gives the exact
  string appended to the answer text when a word is chosen; the LLM selector scores
  exactly that string, so the leading space belongs to the candidate, never to the
  context.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Sequence

#: Characters removed by :func:`normalize` (invisible format characters, not ZWJ).
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u2060\ufeff"), None)
#: C0/C1 control characters except tab/newline/carriage return become spaces.
_CONTROL = {c: " " for c in list(range(0, 9)) + [11, 12] + list(range(14, 32)) + list(range(127, 160))}

NO_SPACE_BEFORE = frozenset(".,;:!?)]}%'\u2019»…")
NO_SPACE_AFTER = frozenset("([{«")
SENTENCE_END = frozenset(".!?")

#: Version of the word-token rules; stored in every adjacency table's build parameters.
TOKENIZATION = ("overlay_core.text.words/3 (NFC, case kept; URLs, e-mail addresses, dotted abbreviations, "
                "slash and dot compounds, digits joined by a comma, leading ./ and trailing ++/# one token)")

_WORD_RE = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"]*[^\s<>\".,;:!?)\]}'\u2019]"  # URL with a scheme
    r"|\w+(?:[.+-]\w+)*@\w+(?:[.-]\w+)+"  # e-mail address
    r"|(?:[^\W\d_]{1,2}\.){2,}(?!\w)"  # dotted abbreviation: e.g. i.e. U.S. Ph.D.
    r"|(?:(?<![\w.])[./](?=\w))?"  # a word may start with "." or "/" (.NET, /dev/null)
    r"\w+(?:(?:[-'\u2019/]|\.(?=\w)|(?<=\d),(?=\d))\w+)*"  # words, with inner hyphens/apostrophes/slashes/dots,
    # and a comma between digits (1,8; 2,147,483,647)
    r"(?:(?:\+\+|#)(?![\w+#]))?"  # C++, C#
    r"|[^\w\s][\u200d\ufe0f\U0001f3fb-\U0001f3ff]*(?:(?<=\u200d)[^\w\s][\u200d\ufe0f]*)*"  # one symbol (+emoji joins)
)


def normalize(text: str) -> str:
    """Return ``text`` cleaned by the shared convention (NFC, no lone surrogates, controls, invisibles).

    Args:
        text: any ``str``, possibly containing lone surrogates or NUL.

    Returns:
        A ``str`` safe to encode as UTF-8.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize() expects str, got {type(text).__name__}")
    # Lone surrogates cannot be encoded as UTF-8: round-trip through UTF-16 with replacement.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = text.translate(_INVISIBLE).translate(_CONTROL)
    return unicodedata.normalize("NFC", text)


def utf8_safe(s: str) -> str:
    """``s`` if it encodes as UTF-8; else the same text with each undecodable byte (a lone surrogate from
    ``surrogateescape``) written as a ``\\xNN`` escape, so a file name like ``b"x\\xff.txt"`` stays distinguishable."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape" if _only_escapes(s) else "surrogatepass").decode(
            "utf-8", "backslashreplace")


def shell_quote(s: str) -> str:
    """``s`` quoted for a POSIX shell command printed in a message, runnable as printed: :func:`shlex.quote`, or,
    when ``s`` holds undecodable bytes (a path typed as ``$'\\xff'``), bash's ``$'...'`` form with each such byte
    as ``\\xNN``."""
    import shlex

    if utf8_safe(s) == s:
        return shlex.quote(s)
    out = []
    for b in os.fsencode(s):
        c = chr(b)
        out.append(c if 32 <= b < 127 and c not in "'\\" else f"\\x{b:02x}")
    return "$'" + "".join(out) + "'"


def utf8_safe_tree(value):
    """``value`` with :func:`utf8_safe` applied to every string inside it (dict keys and values, list and tuple
    items; tuples become lists, as in JSON): what to JSON-encode, since escaping the encoded JSON text instead
    would put ``\\x`` (not a JSON escape) inside its strings."""
    if isinstance(value, str):
        return utf8_safe(value)
    if isinstance(value, dict):
        return {utf8_safe(k) if isinstance(k, str) else k: utf8_safe_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [utf8_safe_tree(v) for v in value]
    return value


def _only_escapes(s: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in s)


def words(text: str) -> list[str]:
    """Split ``text`` into word tokens by the shared convention (see module docstring)."""
    return _WORD_RE.findall(normalize(text))


def fold(word: str) -> str:
    """Case-folded key of a word token, used for case-insensitive fallback lookups."""
    return word.casefold()


def is_punct(word: str) -> bool:
    """True when ``word`` is a single punctuation/symbol token (no letter or digit)."""
    return not any(ch.isalnum() or ch == "_" for ch in word)


def continuation(previous: Sequence[str], word: str) -> str:
    """The exact text appended to an answer when ``word`` follows the words ``previous``.

    ``""`` separator at the start, before closing punctuation and after opening brackets;
    one leading space otherwise. A straight double quote ``"`` opens or closes by parity: an
    opening quote takes a space before it and none after, a closing quote none before it
    (``a "starvation deadlock", though``); digits after a colon after digits join them (a clock time, "10:00").
    The LLM selector scores this string.
    """
    if not previous:
        return word
    prev = previous[-1]
    open_quote = previous.count('"') % 2 == 1
    if prev in NO_SPACE_AFTER or (prev == '"' and open_quote):
        return word
    if prev == ":" and len(previous) > 1 and previous[-2].isdigit() and word.isdigit():
        return word  # a clock time, "10:00" (tokenized "10", ":", "00")
    if word == '"':
        return word if open_quote else " " + word
    if word[:1] in NO_SPACE_BEFORE and is_punct(word):
        return word
    return " " + word


#: Abbreviations that precede a name or a number, so their dot never ends a sentence ("Dr. Dixon", "No. 5").
TITLES = frozenset({"Dr", "Mr", "Mrs", "Ms", "Prof", "Rev", "Gen", "Sen", "Rep", "Mt", "Ft", "No", "Nos", "Fig",
                    "vs", "cf", "approx", "ca", "Vol", "pp"})


def ends_sentence(tokens: Sequence[str], i: int) -> bool:
    """True when ``tokens[i]`` ends a sentence: ``.``, ``!`` or ``?``, except the dot of a one-letter initial
    ("Eric S. Raymond": ``S`` ``.`` ``Raymond`` goes on) or of a title (:data:`TITLES`: "Dr. Dixon")."""
    w = tokens[i]
    if w not in SENTENCE_END:
        return False
    if w != "." or i == 0:
        return True
    prev = tokens[i - 1]
    return not ((len(prev) == 1 and prev.isupper()) or prev in TITLES)


def join(tokens: Iterable[str]) -> str:
    """Detokenize: join word tokens into text using :func:`continuation` spacing, except that empty brackets right
    after a word stay on it ("fopen()", not "fopen ()": :func:`continuation` cannot see the ``)`` coming)."""
    out: list[str] = []
    parts: list[str] = []
    for tok in tokens:
        parts.append(continuation(out, tok))
        if tok == ")" and len(out) > 1 and out[-1] == "(" and not is_punct(out[-2]) and parts[-2] == " (":
            parts[-2] = "("
        out.append(tok)
    return "".join(parts)


#: A Cyrillic letter (Unicode block U+0400–U+04FF).
CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def is_cyrillic(word: str) -> bool:
    """True when ``word`` holds a Cyrillic letter."""
    return bool(CYRILLIC.search(word))
