"""Question forms, frames and sentence relevance (no model: fast unit tests beside the reasoner's e2e tests)."""

import pytest

from overlay_core import evidence as E
from overlay_core.questions import analyze, base_form, participle, past, third_person
from overlay_core.text import words


@pytest.mark.parametrize("question,kind,subject,frame,answer_type", [
    ("What is a hash table?", "definition", "hash table", "", "definition"),
    ("what's TCP", "definition", "TCP", "", "definition"),
    ("Define recursion.", "definition", "recursion", "", "definition"),
    ("Who is Richard Stallman?", "definition", "Richard Stallman", "", "definition"),
    ("What does TCP stand for?", "stands-for", "TCP", "TCP stands for", "expansion"),
    ("What is ANSI short for?", "stands-for", "ANSI", "ANSI stands for", "expansion"),
    ("Who invented Unix?", "who", "Unix", "Unix was invented", "person"),
    ("Who wrote the Jargon File?", "who", "Jargon File", "the Jargon File was written", "person"),
    ("Who maintains the Zephyr Toolkit today?", "who", "Zephyr Toolkit", "", "person"),
    ("Who owns Postgresql databases?", "who", "Postgresql databases", "", "person"),  # no frame: "is" or "are"?
    ("When was COBOL designed?", "when", "COBOL", "COBOL was designed", "year"),
    ("In what year was Perl released?", "when", "Perl", "Perl was released", "year"),
    ("When did Unix begin?", "when", "Unix", "Unix began", "year"),
    ("When was Foo written?", "when", "Foo", "Foo was written", "year"),  # not "Foo was writtened"
    ("When was the photo taken?", "when", "photo", "the photo was taken", "year"),
    ("Where was Unix developed?", "where", "Unix", "Unix was developed", "place"),
    ("Where was Linus Torvalds born?", "where", "Linus Torvalds", "Linus Torvalds was born", "place"),
    ("When was the lamp lit?", "when", "lamp", "the lamp was lit", "year"),
    ("Where does the Dunmore Lighthouse stand?", "where", "Dunmore Lighthouse", "the Dunmore Lighthouse stands",
     "place"),
    ("When does the museum open?", "when", "museum", "the museum opens", "year"),
    ("Which company developed Java?", "which", "Java", "Java was developed", "any"),
    ("What port does HTTP use?", "what", "HTTP", "HTTP uses", "any"),
    ("What language is Emacs written in?", "what", "Emacs", "Emacs is written", "any"),
    ("How many bits are in a byte?", "how-many", None, "", "number"),
    ("Why is COBOL verbose?", "why", None, "", "any"),
    ("How does a hash table work?", "how", None, "", "any"),
    ("Is TCP connection-oriented?", "yes-no", None, "", "yes-no"),
    ("What is the difference between TCP and UDP?", "difference", "TCP", "", "any"),
    ("What is the default port of HTTP?", "what", "HTTP", "", "any"),
    ("Who is considered a co-author of Unix?", "who", "Unix", "", "person"),
    ("What is the voice group useful for?", "what", "voice group", "", "any"),  # never "Voice group useful for is"
    ("What is group disk mostly equivalent to?", "what", "group disk", "", "any"),  # not a definition
    ("What is least recently used?", "definition", "least recently used", "", "definition"),
    ("What is jack in?", "definition", "jack in", "", "definition"),
    ("What is moving the WAL file's transactions back into the database called?", "what",
     "moving the WAL file's transactions back into the database", "", "any"),
])
def test_every_common_question_form_is_read(question, kind, subject, frame, answer_type):
    f = analyze(question)
    assert (f.kind, f.subject, " ".join(f.frame), f.answer_type) == (kind, subject, frame, answer_type)
    assert f.rule != "none"


def test_focus_words_leave_out_question_words_and_the_subject():
    assert analyze("Who invented Unix?").focus == ("invented",)
    assert analyze("How many bits are in a byte?").focus == ("bits", "byte")
    assert "considered" in analyze("Who is considered a co-author of Unix?").focus


def test_a_described_thing_whose_name_is_asked_is_read_by_all_its_words():
    f = analyze("What is moving the WAL file's transactions back into the database called?")
    assert f.rule == "what-called" and f.focus == ("moving", "WAL", "file's", "transactions", "back", "database")
    sent = words('Moving the WAL file transactions back into the database is called a "checkpoint".')
    other = words("The traditional rollback journal writes a copy of the original content into a journal file.")
    rel = E.relevance(f, sent, about_subject=False)[0]
    assert rel > 0.6 and E.relevance(f, other, about_subject=False)[0] < 0.4  # "file's" is "file"


def test_possessives_and_hyphenated_words_match_their_parts():
    assert E.stem("SQLite's") == E.stem("SQLite") and E.stem("file’s") == E.stem("file")
    f = analyze("In which language are SQLite's syntax diagrams written?")
    sent = words("Each diagram is hand-written using the Pikchr diagramming language.")
    assert E.relevance(f, sent, about_subject=False)[1]["focus"] == pytest.approx(0.6)  # language, diagrams, written
    # a path's or slash compound's parts too: "/etc/shadow" holds "shadow" (one word token, read whole elsewhere)
    f = analyze("Which file is readable by the shadow group?")
    shadow = words("/etc/shadow is readable by this group.")
    kmem = words("/dev/kmem and similar files are readable by this group.")
    assert E.relevance(f, shadow, about_subject=False)[0] >= E.relevance(f, kmem, about_subject=False)[0]


def test_verb_forms():
    assert [participle(v) for v in ("invented", "wrote", "build", "designed")] == ["invented", "written", "built", "designed"]
    assert [past(v) for v in ("develop", "create", "apply", "begin")] == ["developed", "created", "applied", "began"]
    assert [third_person(v) for v in ("use", "support", "do", "carry", "have")] == ["uses", "supports", "does", "carries", "has"]
    assert [base_form(v) for v in ("maintains", "uses", "carries", "pushes", "has", "goes", "discusses")] == \
        ["maintain", "use", "carry", "push", "have", "go", "discuss"]


def test_a_verb_given_in_the_form_asked_for_is_kept():
    """``participle("written")`` used to be "writtened" ("When was X written?" -> "X was writtened"), and ``past``
    added -ed to a past form the same way ("When did Unix began?" -> "Unix beganed")."""
    from overlay_core.questions import _PARTICIPLES

    assert (participle("written"), participle("wrote"), participle("invented")) == ("written", "written", "invented")
    assert [participle(v) for v in ("taken", "given", "drawn", "begun", "done", "gone")] == \
        ["taken", "given", "drawn", "begun", "done", "gone"]
    assert all(participle(v) == v for v in _PARTICIPLES.values())
    assert [participle(v) for v in ("did", "went", "stood")] == ["done", "gone", "stood"]
    assert [past(v) for v in ("began", "wrote", "stood", "invented", "read")] == \
        ["began", "wrote", "stood", "invented", "read"]
    # base forms that end like past forms keep their -ed: "Which company did Jobs found?" -> "Jobs founded"
    assert [past(v) for v in ("found", "succeed", "need")] == ["founded", "succeeded", "needed"]


def test_material_drops_dictionary_furniture_but_keeps_the_words():
    text = "cobol: /koh'bol/ (COBOL) A programming language. 2. <language> An imperative language [Jargon File]"
    toks = E.material_tokens(text)
    assert toks[:3] == ["(", "COBOL", ")"] and "koh'bol" not in " ".join(toks)
    assert "2" not in toks and "<" not in toks and "Jargon" not in toks
    assert E.material_tokens("hacker: (Originally) 1. A person.\n\n2. One who programs.") == \
        ["(", "Originally", ")", "A", "person", ".", "One", "who", "programs", "."]
    assert E.material_tokens("v: In version 2. The next")[-4:] == ["2", ".", "The", "next"]  # not a sense number
    assert E.material_tokens("shadow: /etc/shadow is readable")[0] == "/etc/shadow"  # a path, not a pronunciation


def test_acronym_expansions():
    assert E.expansions("TCP", words("the Transmission Control Protocol is")) == [(1, 4)]
    assert E.expansions("EMACS", words("(Editing MACroS, or")) == [(1, 3)]
    assert E.initials_match("ANSI", words("american national standards institute"))
    assert not E.initials_match("TCP", words("Transmission Control Protocol is"))
    assert E.expansions("NFS", words("no files on a system")) == []  # running text: capitalised words only
    assert E.expansions("NFS", words("NFS since 1984")) == []  # never the acronym itself


def test_relevance_prefers_the_sentence_with_the_fact():
    form = analyze("Who invented Unix?")
    fact = words("An interactive operating system invented in 1969 by Ken Thompson after Bell Labs left Multics.")
    other = words("Unix subsequently underwent mutations and expansions.")
    r_fact, parts = E.relevance(form, fact, about_subject=True)
    r_other, _ = E.relevance(form, other, about_subject=True)
    assert r_fact > r_other and parts == {"focus": 1.0, "subject": 0.75, "type": 1.0}
    assert E.frame_anchor(form, fact) == fact.index("invented") + 1
    assert E.frame_anchor(form, other) is None
    when = analyze("When was COBOL designed?")
    assert E.relevance(when, words("COBOL was designed by CODASYL in April 1960."), about_subject=True)[1]["type"] == 1.0


def test_a_subject_word_may_be_in_the_headings_the_sentence_stands_under():
    f = analyze("What was the codename of version 2.0 of Orbitdesk?")
    row = words("Version: 2.0; Codename: Saltmarsh; Year: 2018.")
    under = E.relevance(f, row, about_subject=False, context=words("Orbitdesk Server > Releases"))[1]
    elsewhere = E.relevance(f, row, about_subject=False, context=words("Quillmark Editor > Release history"))[1]
    assert (under["subject"], elsewhere["subject"]) == (1.0, 0.0)
