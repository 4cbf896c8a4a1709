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


def test_straight_quotes_open_and_close_by_parity():
    toks = ["a", '"', "starvation", "deadlock", '"', ",", "though", "(", '"', "x", '"', ")"]
    assert T.join(toks) == 'a "starvation deadlock", though ("x")'
