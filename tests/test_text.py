import unicodedata

from overlay_core import text as T


def test_words_split_punctuation_and_keep_inner_joins():
    assert T.words("A hash-table isn't slow, is it?") == ["A", "hash-table", "isn't", "slow", ",", "is", "it", "?"]


def test_nfc_and_nfd_are_one_word():
    nfd = unicodedata.normalize("NFD", "café")
    assert nfd != "café"
    assert T.words(nfd) == T.words("café") == ["café"]


def test_cyrillic_cjk_and_emoji_zwj_sequences():
    assert T.words("Привет, мир") == ["Привет", ",", "мир"]
    assert T.words("数据 👩\u200d💻!") == ["数据", "👩\u200d💻", "!"]


def test_lone_surrogate_nul_and_zero_width_do_not_crash():
    out = T.words("a\ud800b c\x00d e\u200bf")
    assert out == ["a", "\ufffd", "b", "c", "d", "ef"]  # U+FFFD is a symbol token
    for w in out:
        w.encode("utf-8")  # always encodable


def test_continuation_spacing_convention():
    assert T.continuation([], "A") == "A"
    assert T.continuation(["A"], "hash") == " hash"
    assert T.continuation(["table"], ".") == "."
    assert T.continuation(["table"], ",") == ","
    assert T.continuation(["("], "or") == "or"
    assert T.join(["A", "hash", "table", "(", "or", "map", ")", "is", "fast", "."]) == "A hash table (or map) is fast."
    # empty brackets stay on their word (an answer said "SQLite competes with fopen ()")
    assert T.join(T.words("SQLite competes with fopen().")) == "SQLite competes with fopen()."
    assert T.join(T.words("x, () y")) == "x, () y"


def test_straight_quotes_open_and_close_by_parity():
    toks = ["a", '"', "starvation", "deadlock", '"', ",", "though", "(", '"', "x", '"', ")"]
    assert T.join(toks) == 'a "starvation deadlock", though ("x")'


def test_urls_emails_abbreviations_and_numbers_are_one_token():
    # FOLDOC has ~2 600 URLs, ~870 e-mail addresses and ~1 300 "e.g."/"i.e.": split, they made
    # answers like "carpet cleaner (http: / / vax." that stopped at the first dot of a domain.
    assert T.words("cleaner (http://vax.co.uk/).") == ["cleaner", "(", "http://vax.co.uk/", ")", "."]
    assert T.words("see ftp://ftp.x.org/pub, or http://a.b/c?d=1&e=2.") == [
        "see", "ftp://ftp.x.org/pub", ",", "or", "http://a.b/c?d=1&e=2", "."]
    assert T.words("Mail denis@doc.ic.ac.uk.") == ["Mail", "denis@doc.ic.ac.uk", "."]
    assert T.words("Lisp, e.g. Scheme; i.e., U.S. rules. E.g. Ph.D.") == [
        "Lisp", ",", "e.g.", "Scheme", ";", "i.e.", ",", "U.S.", "rules", ".", "E.g.", "Ph.D."]
    assert T.words("Version 3.14 of index.html and src.doc.ic.ac.uk.") == [
        "Version", "3.14", "of", "index.html", "and", "src.doc.ic.ac.uk", "."]
    # a comma between digits joins them (a decimal comma, digit groups): "1, 8" would read as two numbers
    assert T.words("вмещает 1,8 литра; up to 2,147,483,647 rows; 1, 8; x1,y2") == [
        "вмещает", "1,8", "литра", ";", "up", "to", "2,147,483,647", "rows", ";", "1", ",", "8", ";", "x1", ",", "y2"]
    assert T.join(T.words("Резервуар вмещает 1,8 литра.")) == "Резервуар вмещает 1,8 литра."
    # an abbreviation is a word, not a sentence end; joined text reads as written
    assert not T.is_punct("e.g.") and "e.g." not in T.SENTENCE_END
    for text in ("Lisp, e.g. Scheme; i.e., U.S. rules.", "cleaner (http://vax.co.uk/).", "Version 3.14 costs 2.0."):
        assert T.join(T.words(text)) == text
    assert T.words("TCP/IP over I/O, and/or OS/2 / DOS.") == ["TCP/IP", "over", "I/O", ",", "and/or", "OS/2", "/", "DOS", "."]
    assert T.words("What is .NET, /dev/null or C++ (not C#)?") == [
        "What", "is", ".NET", ",", "/dev/null", "or", "C++", "(", "not", "C#", ")", "?"]
    assert T.join(T.words("the .NET framework, /dev/null and C++.")) == "the .NET framework, /dev/null and C++."
    assert T.words("1 / 2 ... x.") == ["1", "/", "2", ".", ".", ".", "x", "."]
    # dots between words still split when followed by a space or at the end
    assert T.words("end. Next") == ["end", ".", "Next"]
    assert T.words("...and") == [".", ".", ".", "and"]


def test_initials_and_titles_do_not_end_a_sentence():
    from overlay_core.text import ends_sentence, words

    toks = words("Maintained by Eric S. Raymond under Dr. Dixon. Next one.")
    ends = [i for i in range(len(toks)) if ends_sentence(toks, i)]
    assert [toks[i - 1] for i in ends] == ["Dixon", "one"]


def test_shell_quote_gives_a_command_line_argument_bash_reads_back_byte_for_byte():
    """Hints print commands with paths; a path with undecodable bytes needs bash's $'...' form to run as printed."""
    import os
    import subprocess

    from overlay_core.text import shell_quote

    for s in ["/tmp/plain", "/tmp/my home", "/tmp/it's", "/tmp/caf\u00e9", "/tmp/h\udcff", "/tmp/it's \udcfe\u00e9"]:
        p = subprocess.run(["bash", "-c", f"printf %s {shell_quote(s)}"], capture_output=True, check=True)
        assert p.stdout == os.fsencode(s), (s, shell_quote(s))
    assert shell_quote("/tmp/h\udcff") == "$'/tmp/h\\xff'"


def test_utf8_safe_tree_escapes_undecodable_bytes_inside_json_values():
    import json

    from overlay_core.text import utf8_safe_tree

    value = {"k\udcff": ["a\udcfe", ("b", 1.5)], "n": None}
    assert json.loads(json.dumps(utf8_safe_tree(value), ensure_ascii=False)) == {"k\\xff": ["a\\xfe", ["b", 1.5]],
                                                                                   "n": None}


def test_a_clock_time_keeps_its_colon_between_digits():
    assert T.join(T.words("open 10:00 to 17:00.")) == "open 10:00 to 17:00."
    assert T.join(T.words("Note: 10 items")) == "Note: 10 items"
