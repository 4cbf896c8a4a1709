"""`overlay build PATH…` on a folder of mixed documents (real loaders, ChromaDB, the SmolLM2 GGUF)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from overlay_core import text as T
from overlay_core.documents import (DocumentError, build_documents, decode_text, html_sections, load_file, load_paths,
                                    markdown_sections, text_sections)
from overlay_core.evidence import material_tokens

OVERLAY = str(Path(sys.executable).parent / "overlay")

GUIDE = """# Zephyr Toolkit

The Zephyr Toolkit is a library for drawing **weather** maps.

Zephyr Tools
============

## History

The Zephyr Toolkit was written by Margarethe Olsson in 2011 at the Bergen Institute.
It was first released in 2012.
"""

#: Markdown furniture: front matter, a rule, a table, a definition list, raw HTML, inline marks, a code fence
FURNITURE = """---
title: Furniture
tags: [a, b]
---
# Setup: the basics

Use *snake_case_names* and **bold** text, a [link](https://example.org/x) and ![a diagram](d.png) &amp; <b>tags</b>.

***

| option | meaning |
|--------|---------|
| -v     | verbose |

Cache
: a store of recent results

<div class="note">A raw <em>HTML</em> block.</div>

```sh
# a shell comment stays in code
make install
```

Usage
-----

Run it.
"""


def write_pdf(path: Path, pages: list[str], bookmarks: list[tuple[str, int, int | None]] = ()) -> None:
    """A real PDF with a text layer (matplotlib's PDF backend, TrueType text) and optional bookmarks
    ``(title, page index, parent bookmark index)`` (pypdf)."""
    import matplotlib

    matplotlib.use("pdf")
    matplotlib.rcParams["pdf.fonttype"] = 42  # TrueType text: extractable by pypdf
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path) as pdf:
        for text in pages:
            fig = plt.figure(figsize=(8.5, 11))
            fig.text(0.1, 0.9, text, fontsize=12)
            pdf.savefig(fig)
            plt.close(fig)
    if bookmarks:
        from pypdf import PdfWriter

        w = PdfWriter(clone_from=path)
        made = []
        for title, page, parent in bookmarks:
            made.append(w.add_outline_item(title, page, parent=made[parent] if parent is not None else None))
        w.write(path)


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    """txt, md with headings, html, a real one-page PDF, a broken PDF, a binary file named .txt, an empty file."""
    d = tmp_path_factory.mktemp("docs")
    (d / "guide.md").write_text(GUIDE)
    (d / "boreal.html").write_text("<html><body><h1>Boreal Database</h1><p>Boreal is a column store designed by "
                                   "Ivo Karlsson.</p><script>var x = 1;</script></body></html>")
    (d / "notes.txt").write_text("Plain notes: the Tundra scheduler was created by Ada Lindqvist in 2015.\n")
    write_pdf(d / "aurora.pdf", ["The Aurora compiler was designed by Lena Berg in 2009."])
    (d / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    (d / "junk.txt").write_bytes(b"a\x00b\x00\x01binary")
    (d / "empty.md").write_text("")
    return d


def test_markdown_and_html_sections_keep_headings_as_context_not_as_text():
    secs = markdown_sections(GUIDE)
    assert [s.headings for s in secs] == [["Zephyr Toolkit"], ["Zephyr Tools", "History"]]  # setext heading too
    assert secs[0].text == "The Zephyr Toolkit is a library for drawing weather maps."
    assert not any("#" in s.text or "===" in s.text or "**" in s.text for s in secs)
    h = html_sections("<h1>A</h1><p>one</p><h2>B</h2><ul><li>two</li></ul><script>bad()</script>")
    assert [(s.headings, s.text) for s in h] == [(["A"], "one"), (["A", "B"], "two.")]


def test_list_items_and_run_in_headings_are_read_as_the_document_means_them():
    # unclosed <li> (html.parser nests each in the one before): each item is its own chunk, closed as a sentence
    # when it does not end one; a bold-only paragraph is a run-in heading, not the first words of the next one
    h = html_sections("<h1>Limits</h1><p>SQLite is found in:</p><ul><li>Every phone<li>Every Mac<li>Skype.</ul>"
                      "<ul><li><p><b>Maximum Number Of Columns</b></p><p>The default is 2000.</p></li>"
                      "<li><p><b>NULL</b>. The value is a NULL value.</p></li></ul>")
    assert [(s.headings, s.text) for s in h] == [
        (["Limits"], "SQLite is found in:\n\nEvery phone.\n\nEvery Mac.\n\nSkype."),
        (["Limits", "Maximum Number Of Columns"], "The default is 2000."),  # the heading of its list item only
        (["Limits"], "NULL . The value is a NULL value.")]
    # a bold line anywhere else stays text, a sentence of its own (names, a profile card, a table's header row);
    # a list item's paragraph is closed like the item
    assert [s.text for s in html_sections("<h2>Team</h2><ul><li><b>Ada Berg</b></li><li><b>Bo Lind</b></li></ul>"
                                          "<p><strong>Priya Raman</strong></p><p>Head of QA, in Brno.</p>"
                                          "<table><tr><td><p><b>Name</b></p></td></tr></table>"
                                          "<ul><li><p>Every phone</p></li><li>a comma,</li></ul>")] == [
        "Ada Berg.\n\nBo Lind.\n\nPriya Raman.\n\nHead of QA, in Brno.\n\nName.\n\nEvery phone.\n\na comma,"]
    # a bold line followed by a blockquote heads it (a term and its indented description), and only it
    quote = html_sections("<h1>F</h1><p><b>Zero-Configuration</b></p><blockquote>No setup is needed.</blockquote>"
                          "<p>After.</p>")
    assert [(s.headings, s.text) for s in quote] == [(["F", "Zero-Configuration"], "No setup is needed."),
                                                     (["F"], "After.")]
    # a definition-list term heads its list, not the text after it; a term with nothing under it stays text;
    # terms sharing one description head it together
    toc = html_sections("<h1>Ch</h1><dl><dt>1. Q one</dt><dd><dl><dt>1.1 Q two</dt></dl></dd></dl><p>Intro.</p>"
                        "<dl><dt>Alpha</dt><dt>Beta</dt><dd>Shared.</dd></dl>")
    assert [(s.headings, s.text) for s in toc] == [(["Ch"], "1. Q one."), (["Ch"], "1.1 Q two.\n\nIntro."),
                                                   (["Ch", "Alpha; Beta"], "Shared.")]
    # a table row of plain cells is one line, its cells joined by "; " and named by the header row's (a row of
    # values alone does not say what they are); a header cell starting a row, a table without a header row and a
    # header alone stay plain; a table inside a blockquote is never also the blockquote's text; a layout table's
    # cell holding blocks is read block by block
    rows = html_sections("<table><tr><th>Model</th><th>Payload</th></tr><tr><td>RX-200</td><td>5 kg</td></tr>"
                         "<tr><td>RX-9</td><td></td></tr></table>"
                         "<blockquote><table><thead><tr><td></td><td>Linux</td></tr></thead>"
                         "<tr><th>Max path</th><td>4096</td></tr></table></blockquote>"
                         "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"
                         "<table><tr><th>Lone</th><th>header</th></tr></table>"
                         "<table><tr><td><p>Layout text.</p><ul><li>item</li></ul></td></tr></table>")
    assert rows[0].text == ("Model: RX-200; Payload: 5 kg.\n\nModel: RX-9.\n\nMax path; Linux: 4096.\n\na; b.\n\nc; d."
                            "\n\nLone; header.\n\nLayout text.\n\nitem.")
    md = markdown_sections("# T\n\nFound in:\n\n- every phone\n- every Mac (all)\n- Skype!\n\nEnd of text\n")
    assert md[0].text == "Found in:\n\nevery phone.\n\nevery Mac (all).\n\nSkype!\n\nEnd of text"


def test_markdown_furniture_never_reaches_the_text():
    secs = markdown_sections(FURNITURE)
    assert [s.headings for s in secs] == [["Setup: the basics"], ["Setup: the basics", "Cache"],
                                          ["Setup: the basics"], ["Setup: the basics", "Usage"]]
    body = "\n".join(s.text for s in secs)
    # inline marks, link targets, image syntax, tags and entities are rendered away, the words stay
    assert secs[0].text.startswith("Use snake_case_names and bold text, a link and a diagram & tags.")
    # a table row is a line named by the header row's cells; no delimiter row
    assert "option: -v; meaning: verbose." in secs[0].text and "option; meaning" not in secs[0].text
    assert secs[1].text == "a store of recent results"  # a definition-list term heads its definition
    assert "A raw HTML block." in secs[2].text and "# a shell comment stays in code\nmake install" in secs[2].text
    for junk in ("title:", "tags:", "***", "---", "===", "|", "](", "<b>", "&amp;", "**"):
        assert junk not in body, junk


def test_plain_text_headings_and_rules():
    text = ("Project Foo\n===========\n\nIntro text.\nSecond line.\n\nInstall\n-------\nRun it.\n\n"
            "# Usage\nuse it\n*****\nend\n")
    assert [(s.headings, s.text) for s in text_sections(text)] == [
        (["Project Foo"], "Intro text.\nSecond line."), (["Project Foo", "Install"], "Run it."),
        (["Usage"], "use it\nend")]
    assert [s.text for s in text_sections("no headings here\n")] == ["no headings here"]
    # a short first line over a blank line is the file's title ("Заря Заря — это …" was the first sentence); a
    # first line that ends a sentence, runs on, or is all there is, is text
    assert [(s.headings, s.text) for s in text_sections("Заря\n\nЗаря — это программа.\n")] == [
        (["Заря"], "Заря — это программа.")]
    assert text_sections("It works.\n\nMore.\n")[0].headings == []
    assert text_sections("Intro without a stop\nruns on.\n\nMore.\n")[0].headings == []
    assert text_sections("One line\n")[0].headings == []
    # a title may end in a closing quote (a name in «ёлочки» or "quotes"); a quoted sentence may not
    assert text_sections("Ботанический сад «Лесная поляна»\n\nСад открылся в 1965 году.\n")[0].headings == [
        "Ботанический сад «Лесная поляна»"]
    assert text_sections('Garden "Meadow"\n\nIt opened.\n')[0].headings == ['Garden "Meadow"']
    assert text_sections("Он сказал «Привет.»\n\nИ ушёл.\n")[0].headings == []
    # a short line alone between blank lines, with text after it, is a section title under the file's title
    secs = text_sections("A History of Marrowby\n\nA small town.\n\nRailway\n\nThe railway reached it in 1863.\n\n"
                         "See the list below:\n\nOne item.\n")
    assert [(x.headings, x.text) for x in secs] == [
        (["A History of Marrowby"], "A small town."),
        (["A History of Marrowby", "Railway"], "The railway reached it in 1863.\n\nSee the list below:\n\nOne item.")]
    # a title right over its paragraph (a fresh user's notes); a hard-wrapped short line is no title
    secs = text_sections("Reading Club\nThe club meets in the east hall.\n\nMembership\nMembership is free.\n\n"
                         "Opening hours for the\nreading room are long.\n")
    assert [(x.headings, x.text) for x in secs] == [
        (["Reading Club"], "The club meets in the east hall."),
        (["Membership"], "Membership is free.\n\nOpening hours for the\nreading room are long.")]


def test_a_dangling_link_in_a_folder_is_named(tmp_path):
    (tmp_path / "a.md").write_text("# Alpha\n\nAlpha is a test document.\n")
    (tmp_path / "dangling.md").symlink_to(tmp_path / "nothing.md")
    passages, problems = load_paths([tmp_path])
    assert len(passages) == 1
    assert problems == [(str(tmp_path / "dangling.md"), "a symbolic link to a file that does not exist")]


def test_text_or_binary():
    assert decode_text("UTF-16 from Notepad\n".encode("utf-16")) == "UTF-16 from Notepad\n"  # NULs, but a BOM
    assert decode_text("café".encode("cp1252")) == "café"
    # Russian saved by an older Windows tool is read as Russian, not as "Çàìåòêè"; German Windows-1252 stays German
    ru = "Заметки: Штуковину изобрёл Пётр Иванов в 1890 году. Она работает на паре."
    assert decode_text(ru.encode("cp1251")) == ru and decode_text(ru.encode("koi8-r")) == ru
    de = "Straße, Größe und Übermaß: Müller schrieb das Buch."
    assert decode_text(de.encode("cp1252")) == de
    assert decode_text(b'<meta charset="iso-8859-15"><p>\xa4</p>', html=True).endswith("<p>€</p>")
    assert decode_text(b"\x1b[31mred\x1b[0m log line\n").startswith("\x1b")  # escape codes are text
    with pytest.raises(DocumentError, match="binary file with a text extension .it holds NUL bytes"):
        decode_text(b"PK\x03\x04\x00\x00text")
    with pytest.raises(DocumentError, match=r"binary file with a text extension \(4 of its first 4 characters"):
        decode_text(b"\x01\x02\x03\x04")


def test_pdf_pages_take_their_heading_path_from_the_bookmarks(tmp_path):
    pdf = tmp_path / "book.pdf"
    write_pdf(pdf, ["The Aurora compiler was designed by Lena Berg. It compiles quick-\nly.", "Borealis text.",
                    "Install text."], bookmarks=[("Aurora", 0, None), ("Borealis", 1, 0), ("Installation", 2, None)])
    secs = load_file(pdf)
    assert [(s.page, s.headings) for s in secs] == [(1, ["Aurora"]), (2, ["Aurora", "Borealis"]),
                                                     (3, ["Installation"])]
    assert secs[0].text == "The Aurora compiler was designed by Lena Berg. It compiles quickly."  # de-hyphenated
    from pypdf import PdfWriter

    w = PdfWriter(clone_from=pdf)
    w.encrypt("secret")
    w.write(tmp_path / "locked.pdf")
    with pytest.raises(DocumentError, match="an encrypted PDF"):
        load_file(tmp_path / "locked.pdf")
    (tmp_path / "cut.pdf").write_bytes(pdf.read_bytes()[:3000])
    with pytest.raises(DocumentError, match="not a readable PDF"):
        load_file(tmp_path / "cut.pdf")


def test_passage_label_is_what_the_reasoner_reads_as_the_label(tmp_path):
    """A heading with a colon, or too long for the reasoner's label window, still leaves exactly the chunk as
    answer material (evidence.material_tokens cuts the label at the first colon within 12 tokens)."""
    long = "A heading that goes on for many more words than any label window of the reasoner can hold"
    (tmp_path / "a.md").write_text(f"# Step 1: Install\n\nRun the installer now.\n\n# {long}\n\nSecond body text.\n")
    passages, problems = load_paths([tmp_path])
    assert problems == []
    by_head = {p.metadata["headings"]: p for p in passages}
    assert set(by_head) == {"Step 1: Install", long}  # the full heading path is kept in the metadata
    assert by_head["Step 1: Install"].metadata["headword"] == "step 1: install"
    for p, body in [(by_head["Step 1: Install"], "Run the installer now."), (by_head[long], "Second body text.")]:
        assert material_tokens(p.text) == T.words(body), p.text


def test_bad_files_are_reported_one_line_each_and_the_rest_is_loaded(docs):
    passages, problems = load_paths([docs])
    why = {Path(f).name: w for f, w in problems}
    assert set(why) == {"broken.pdf", "junk.txt", "empty.md"}
    assert why["junk.txt"].startswith("a binary file with a text extension")
    assert why["broken.pdf"].startswith("not a readable PDF") and why["empty.md"] == "empty"
    assert all("\n" not in w for w in why.values())
    files = {Path(p.metadata["file_path"]).name for p in passages}
    assert files == {"guide.md", "boreal.html", "notes.txt", "aurora.pdf"}
    root = docs.resolve()
    assert all(p.metadata["source"] == p.metadata["file_path"] == str(root / Path(p.metadata["file_path"]).name)
               for p in passages)  # the absolute path: one document however the folder was spelled
    pdf = [p for p in passages if p.metadata["file_path"].endswith("aurora.pdf")]
    assert pdf[0].metadata["page"] == 1 and pdf[0].metadata["file_type"] == "pdf" and "Lena Berg" in pdf[0].text
    assert all("#" not in p.text for p in passages)


def test_rerun_ingests_only_what_changed_and_forgets_what_is_gone(tmp_path, monkeypatch):
    """Real ChromaDB: a re-run embeds only new passages, a changed file replaces its passages, a deleted (or now
    broken) file's passages leave the store, and another spelling of the same folder is the same build. The state
    folder sits inside the documents folder: it is never read as documents."""
    from overlay_core.knowledge import state_paths
    from overlay_core.retrieval import get_knowledge_base

    d = tmp_path / "docs"
    home = d / "state"
    d.mkdir()
    (d / "a.md").write_text("# Alpha\n\nAlpha was written by Ann.\n")
    (d / "b.txt").write_text("Beta was written by Bob.\n")
    first = build_documents([d], home)
    # named once as left out (a fresh user's walk: it was silent, and another build of the folder listed its files)
    assert first["ingest"]["added"] == 2 and not first["cached"] and [
        (Path(s["file"]).name, s["why"]) for s in first["skipped"]] == [
        ("state", "the state folder of this build, left out; keep it outside the documents folder")]
    assert {Path(f["file"]).name: f["status"] for f in first["files"]} == {"a.md": "new", "b.txt": "new"}
    assert build_documents([d], home)["cached"] is True

    (d / "c.html").write_text("<h1>Gamma</h1><p>Gamma was written by Cid.</p>")
    added = build_documents([d], home)
    assert (added["ingest"]["added"], added["ingest"]["unchanged"]) == (1, 2)
    assert {Path(f["file"]).name: f["status"] for f in added["files"]} == {"a.md": "unchanged", "b.txt": "unchanged",
                                                                           "c.html": "new"}
    (d / "a.md").write_text("# Alpha\n\nAlpha was rewritten by Ada.\n")
    changed = build_documents([d], home)
    assert (changed["ingest"]["added"], changed["ingest"]["removed"]) == (1, 1)  # the old version is gone
    assert [f["status"] for f in changed["files"] if f["file"].endswith("a.md")] == ["changed"]

    (d / "b.txt").unlink()
    (d / "c.html").write_bytes(b"\x00\x01\x02")  # now binary: skipped, and its old passage goes too
    gone = build_documents([d], home)
    assert sorted(Path(f["file"]).name for f in gone["removed_files"]) == ["b.txt", "c.html"]
    assert [Path(s["file"]).name for s in gone["skipped"]] == ["state", "c.html"]
    kb = get_knowledge_base(state_paths(home).chroma)
    texts = [p.text for p in kb.get(list(kb.metadata({"file_type": {"$in": ["html", "markdown", "text"]}})))]
    assert texts == ["Alpha: Alpha was rewritten by Ada."] and gone["store_count"] == 1 == kb.count()

    monkeypatch.chdir(d)  # a relative spelling of the same folder: same passages, nothing new in the store
    again = build_documents(["."], home)
    assert again["cached"] is True and kb.count() == 1
    # built into another state folder, the folder's own state folder is one line, not its files
    other = build_documents([d], tmp_path / "other")
    assert [(Path(s["file"]).name, s["why"].split(":")[0]) for s in other["skipped"]] == [
        ("state", "an Overlay state folder, not documents"),
        ("c.html", "a binary file with a text extension (it holds NUL bytes); not ingested")]


def test_build_from_documents_then_ask_a_factoid_question(docs, tmp_path):
    env = dict(os.environ, OVERLAY_HOME=str(tmp_path / "home"))
    p = subprocess.run([OVERLAY, "build", str(docs), "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("skipped ") == 3 and "Traceback" not in p.stderr
    assert all(len(line.split("skipped ", 1)[1].split(": ", 1)) == 2 for line in p.stderr.splitlines()
               if line.startswith("skipped "))  # "skipped FILE: WHY", one line each
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert {Path(s["file"]).name for s in report["skipped"]} == {"broken.pdf", "junk.txt", "empty.md"}
    again = subprocess.run([OVERLAY, "build", str(docs)], capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "already built (cached)" in again.stderr  # idempotent
    assert "documents: 4 files loaded (0 new, 0 changed, 4 unchanged), 3 skipped" in again.stderr
    for question, key in [("Who wrote the Zephyr Toolkit?", "Margarethe Olsson"),
                          ("Who designed the Aurora compiler?", "Lena Berg")]:
        a = subprocess.run([OVERLAY, "ask", "--json", question], capture_output=True, text=True, env=env, timeout=600)
        assert a.returncode == 0, a.stderr
        res = json.loads(a.stdout)
        assert key in res["answer"] and not res["refused"], res["answer"]
        assert "#" not in res["answer"]
        assert any(Path(p["source"].rsplit(":", 1)[0]).parent == docs.resolve() for p in res["passages"])


def _reasoner_over(tmp_path, files: dict[str, str]):
    """A reasoner over a new folder of ``files`` (name -> text), built into its own state folder."""
    from overlay_core.knowledge import make_reasoner

    docs, home = tmp_path / "docs", tmp_path / "home"
    docs.mkdir()
    for name, text in files.items():
        (docs / name).write_text(text, encoding="utf-8")
    build_documents([docs], home)
    return make_reasoner(home)


def test_answers_from_sections_and_sentences_that_name_the_subject_only_once(tmp_path):
    """From a new user's walk: the fact in a sentence that opens with "It" (its subject named in the sentence
    before), and a definition in a section farther from the question than the same document's History."""
    from overlay_core.knowledge import make_reasoner

    docs, home = tmp_path / "docs", tmp_path / "home"
    docs.mkdir()
    (docs / "a.txt").write_text("The Zephyr Toolkit is a small library for drawing diagrams. It was written by Marta "
                                "Kowalski in 2015 at the University of Gdansk.\nThe toolkit is released under the MIT "
                                "license.\n")
    (docs / "b.md").write_text("# Quokka Database\n\nQuokka is an embedded key-value database written in Rust. It "
                               "stores data in a log-structured merge tree.\n\n## History\n\nQuokka was created by "
                               "Daniel Ortega in 2019. Version 2.0 added transactions.\n")
    (docs / "c.md").write_text("# Heron Protocol\n\nThe Heron protocol is a messaging protocol for sensor networks. "
                               "It uses UDP port 5701 and encrypts every message with AES.\n")
    build_documents([docs], home)
    r = make_reasoner(home)
    for question, expected in [
            ("Who wrote the Zephyr Toolkit?", "The Zephyr Toolkit was written by Marta Kowalski"),
            ("What is Quokka?", "Quokka is an embedded key-value database written in Rust."),
            ("What is the Heron protocol?", "The Heron protocol is a messaging protocol for sensor networks.")]:
        answer = r.answer(question)["answer"]
        assert answer.startswith(expected), (question, answer)


def test_glossary_definitions_and_the_questions_own_article(tmp_path):
    """From a fresh user's walk: a glossary ("**Tether drift.** The slow change …") gave "Tether drift is measured
    in millimetres per day." and "Anchor plate is an interpreted scripting language …" (another document's
    opening); "What is Tarn?" opened "A tarn is" (the corpus also says "the tarn interpreter"); and "Is the bakery
    open on Mondays?" was answered "Yes, the bakery is closed on Mondays." """
    r = _reasoner_over(tmp_path, {
        "glossary.md":
        "# Glossary\n\n**Tether drift.** The slow change of a tether's length caused by temperature. It is measured "
        "in millimetres per day.\n\n**Anchor plate.** A steel plate bolted to the rock that holds the tether's lower "
        "end.\n\nSpool brake: a friction brake on the winch spool that stops the tether from unwinding.\n",
        "tarn.md": "# Tarn\n\nTarn is an interpreted scripting language for automating build pipelines. Tarn scripts "
                   "are run by the tarn interpreter; there is no compiler.\n",
        "bakery.md": "# Millbrook Bakery\n\nThe Millbrook Bakery is a family bakery on Harbour Street. The bakery opens "
                     "at 7 am from Tuesday to Sunday. The bakery is closed on Mondays.\n"})
    for question, expected in [
            ("What is tether drift?", "Tether drift is the slow change of a tether's length caused by temperature."),
            ("What is an anchor plate?", "An anchor plate is a steel plate bolted to the rock that holds the tether's "
                                         "lower end."),
            ("What is a spool brake?", "A spool brake is a friction brake on the winch spool that stops the tether "
                                       "from unwinding."),
            ("What is Tarn?", "Tarn is an interpreted scripting language for automating build pipelines."),
            ("Is the bakery open on Mondays?", "No, the bakery is closed on Mondays.")]:
        assert r.answer(question)["answer"] == expected, question


def test_a_pronoun_after_the_short_name_and_a_where_does_question(tmp_path):
    """"It stands on Gull Point" after "The lighthouse was designed …" (the short name of the Dunmore Lighthouse) is
    about the lighthouse; "Where does X stand?" was read as no question form at all and answered with the
    sentence naming the lighthouse most ("Construction of the Dunmore Lighthouse began in 1871.")."""
    r = _reasoner_over(tmp_path, {"history.md": (
        "# Dunmore Lighthouse\n\nConstruction of the Dunmore Lighthouse began in 1871. Three years later, the lamp "
        "was lit for the first time.\nThe lighthouse was designed by the engineer Thomas Reid. It stands on Gull "
        "Point, north of the harbour.\nIn 1932 the lamp was electrified.\n")})
    assert r.answer("Where does the Dunmore Lighthouse stand?")["answer"] == (
        "The Dunmore Lighthouse stands on Gull Point, north of the harbour.")
    assert r.answer("When was the lamp electrified?")["answer"] == "In 1932 the lamp was electrified."


def test_an_faq_answers_what_is_not_what_is_not_and_keeps_its_clock_times(tmp_path):
    """From a fresh user's walk over a museum FAQ: "Which systems does the guide app support?" stopped at "The guide
    app supports" (the frame was kept for "It does not support Windows Phone."), "Is the museum open on Mondays?"
    said "Yes, it is closed …", and times read "10: 00"."""
    r = _reasoner_over(tmp_path, {"faq.md": (
        "# Frequently Asked Questions about the Lantern Museum\n\n## When is the museum open?\n\nThe Lantern Museum "
        "is open from Wednesday to Sunday, 10:00 to 17:00. It is closed on Mondays and Tuesdays.\n\n## Which systems "
        "does the guide app support?\n\nThe guide app runs on Android and iOS. It does not support Windows Phone.\n")})
    for question, expected in [
            ("Which systems does the guide app support?", "The guide app runs on Android and iOS."),
            ("When is the museum open?", "The museum is open from Wednesday to Sunday, 10:00 to 17:00."),
            ("Is the museum open on Tuesdays?", "No, it is closed on Mondays and Tuesdays.")]:
        assert r.answer(question)["answer"] == expected, question


def test_a_yes_no_answer_is_read_from_the_sentence_that_names_the_claim(tmp_path):
    """"Does TideLog support macOS?": the sentence that writes "macOS" answers, not the more relevant one about the
    systems it does support (that one gave "Yes, TideLog runs on Windows 11 …", blocking the right No)."""
    from overlay_core.knowledge import make_reasoner

    docs, home = tmp_path / "docs", tmp_path / "home"
    docs.mkdir()
    (docs / "faq.md").write_text("# TideLog FAQ\n\n## Which operating systems are supported?\n\nTideLog runs on "
                                 "Windows 11 and on Ubuntu 22.04. macOS is not supported.\n\n## Who wrote it?\n\n"
                                 "TideLog was written in Rust by a team led by Anjali Rao.\n")
    build_documents([docs], home)
    r = make_reasoner(home)
    assert r.answer("Does TideLog support macOS?")["answer"] == "No, macOS is not supported."
    assert r.answer("Does TideLog support Windows 11?")["answer"].startswith("Yes, TideLog runs on Windows 11")


def test_no_loadable_file_is_one_clear_error(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"\x00")
    p = subprocess.run([OVERLAY, "build", str(tmp_path), "--home", str(tmp_path / "h")], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "skipped " in p.stderr and "none of the 1 file(s) given could be loaded" in p.stderr


def test_a_missing_path_is_one_clear_line(tmp_path):
    """Every path given missing: one line naming it, not a 'skipped' line plus advice about file types."""
    p = subprocess.run([OVERLAY, "build", "no-such-folder", "--home", str(tmp_path / "h")], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [f"error: no such file or folder: no-such-folder (from {tmp_path}); "
                                             "check the path"]


def test_a_dangling_link_given_as_the_path_is_named_as_a_link(tmp_path):
    """The link is there, its target is not: "no such file or folder" would send the user looking for a typo."""
    (tmp_path / "notes.md").symlink_to(tmp_path / "moved-away.md")
    p = subprocess.run([OVERLAY, "build", "notes.md", "--home", str(tmp_path / "h")], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [f"error: notes.md is a symbolic link to {tmp_path / 'moved-away.md'}, "
                                             "which does not exist; fix or remove the link, or give the file itself"]


def test_a_missing_path_among_others_is_built_around_but_fails_the_command(tmp_path):
    """A mistyped path next to good ones: the good ones are built, the missing one is named and the exit is 1."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Alpha\n\nAlpha is a test document about nothing.\n")
    p = subprocess.run([OVERLAY, "build", str(docs), "typo", "--home", str(tmp_path / "h")], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "skipped typo: no such file or folder" in p.stderr and "1 file loaded (1 new" in p.stderr
    assert p.stderr.strip().splitlines()[-1] == "error: no such file or folder: typo (the other paths were built); " \
                                                "check the path"


def test_a_missing_path_among_others_is_named_in_json_mode_too(tmp_path):
    """`--json`: the report on stdout names the missing paths (``missing_paths``) and stderr still says the error;
    both used to say nothing of it, only the exit code 1 did."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Alpha\n\nAlpha is a test document about nothing.\n")
    home = tmp_path / "h"
    p = subprocess.run([OVERLAY, "build", str(docs), "typo", "--json", "--home", str(home)], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    report = json.loads(p.stdout)
    assert report["missing_paths"] == ["typo"] and [Path(f["file"]).name for f in report["files"]] == ["a.md"]
    assert p.stderr.strip().splitlines()[-1] == "error: no such file or folder: typo (the other paths were built); " \
                                                "check the path"
    p = subprocess.run([OVERLAY, "build", str(docs), "--json", "--home", str(home)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0 and p.stderr == "" and json.loads(p.stdout)["missing_paths"] == []


def test_building_the_same_folder_again_with_json_reports_that_nothing_was_ingested(tmp_path):
    """The second `overlay build docs --json` reuses the cached build; its ``ingest`` used to repeat the first
    build's counts (1 added) as if it had embedded the passage again."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Alpha\n\nAlpha is a test document about nothing.\n")
    cmd = [OVERLAY, "build", str(docs), "--json", "--home", str(tmp_path / "h")]
    first, again = (json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout)
                    for _ in range(2))
    assert first["cached"] is False and first["ingest"]["added"] == 1
    assert again["cached"] is True and (again["ingest"]["added"], again["ingest"]["unchanged"]) == (0, 1)
    assert again["last_build_ingest"] == first["ingest"] == first["last_build_ingest"]


def test_an_empty_folder_is_named_in_one_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".hidden.txt").write_text("not looked at")
    p = subprocess.run([OVERLAY, "build", str(empty), "--home", str(tmp_path / "h")], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [f"error: no document found in {empty} (empty, or only hidden files); give "
                                             "files or folders holding .txt, .md, .html or .pdf files"]
    assert not (tmp_path / "h" / "knowledge.json").exists()


def test_documents_given_inside_the_state_folder_are_named_not_called_empty(tmp_path):
    """`overlay build notes --home notes`: the state folder is never ingested, so nothing is loaded; the error says
    why (it used to say the folder was empty, with six files in it), and nothing is built."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# Quillon\n\nQuillon is a spell checker.\n")
    p = subprocess.run([OVERLAY, "build", str(notes), "--home", str(notes)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        f"error: {notes} is the state folder (--home / $OVERLAY_HOME), which is never read as documents; give --home "
        f"a folder that does not hold the documents, e.g. --home {notes / '.overlay'} (hidden folders are not read)"]
    p = subprocess.run([OVERLAY, "build", str(notes / "a.md"), "--home", str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"error: {notes / 'a.md'} is inside the state folder {tmp_path} (--home" in p.stderr, p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["notes"] and [x.name for x in notes.iterdir()] == ["a.md"]


@pytest.fixture(scope="module")
def two_products(tmp_path_factory) -> Path:
    """tests/data/two-products (a fresh-user walk's documents): two products, each with a release table whose rows
    name neither product ("Version: 2.0; Codename: …") — only the headings above them do."""
    home = tmp_path_factory.mktemp("two-products-home")
    p = subprocess.run([OVERLAY, "build", str(Path(__file__).parent / "data" / "two-products"), "--home", str(home)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return home


@pytest.mark.parametrize("question,start", [
    ("Is Quillmark written in Rust?", None),  # no passage writes "Rust": neither yes nor no
    ("Does Quillmark store documents as plain text?", "Yes, Quillmark stores documents as plain text"),
])
def test_a_yes_no_question_about_a_name_no_passage_writes_is_declined(two_products, question, start):
    a = subprocess.run([OVERLAY, "ask", "--json", "--home", str(two_products), question], capture_output=True,
                       text=True, timeout=600)
    assert a.returncode == 0, a.stderr
    res = json.loads(a.stdout)
    if start is None:
        assert res["refused"] and "'Rust' (a name in the question) occurs in none of the retrieved passages" \
            in res["refusal"], res
    else:
        assert res["answer"].startswith(start) and not res["refused"], res["answer"]


@pytest.mark.parametrize("question,key,other", [
    # known defect: both rows open "Version: 2.0;" and the answer goes on in the row of the better-ranked passage
    # (passage support outweighs the relevance its headings give the Orbitdesk row); restricting a shared opening to
    # its most relevant sentence fixed this but lost "The Sun-3 workstation was based on the Motorola 68020." on
    # foldoc_mixed (docs/evaluation.md, round 5)
    pytest.param("What was the codename of version 2.0 of Orbitdesk?", "Saltmarsh", "Thistledown",
                 marks=pytest.mark.xfail(strict=True, reason="a shared opening goes on in the better-ranked passage")),
    ("What was the codename of version 2.0 of Quillmark?", "Thistledown", "Saltmarsh"),
    ("Which version of Orbitdesk is called Ravenglass?", "3.0", "Moonpetal"),
])
def test_a_table_row_is_answered_for_the_product_whose_headings_it_stands_under(two_products, question, key, other):
    # the row's headings ("Orbitdesk Server > Releases") count for the subject
    a = subprocess.run([OVERLAY, "ask", "--json", "--home", str(two_products), question], capture_output=True,
                       text=True, timeout=600)
    assert a.returncode == 0, a.stderr
    res = json.loads(a.stdout)
    assert key in res["answer"] and other not in res["answer"] and not res["refused"], res["answer"]


def test_russian_documents_added_to_an_english_knowledge_base_are_named(tmp_path):
    """An English knowledge base (minilm) keeps its embedder; Russian documents built into it later are stored but
    its embedder cannot read them: the report says so (``unread_language``), and an English build does not."""
    en, ru, home = tmp_path / "en", tmp_path / "ru", tmp_path / "home"
    en.mkdir(), ru.mkdir()
    (en / "a.md").write_text("# Tarn\n\nTarn is an interpreted scripting language for build pipelines.\n")
    (ru / "b.md").write_text("# Заречье\n\nЗаречье — небольшой город на левом берегу реки Сож. Город основан в 1568 "
                             "году купцом Фёдором Лыковым.\n")
    first = build_documents([en], home)
    assert first["embedder"] == "minilm" and "unread_language" not in first
    second = build_documents([ru], home)
    assert second["embedder"] == "minilm" and second["unread_language"] == "ru"
