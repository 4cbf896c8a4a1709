"""`overlay build PATH…` on a folder of mixed documents (real loaders, ChromaDB, the SmolLM2 GGUF)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from overlay_core.documents import html_sections, load_paths, markdown_sections

OVERLAY = str(Path(sys.executable).parent / "overlay")

GUIDE = """# Zephyr Toolkit

The Zephyr Toolkit is a library for drawing **weather** maps.

Zephyr Tools
============

## History

The Zephyr Toolkit was written by Margarethe Olsson in 2011 at the Bergen Institute.
It was first released in 2012.
"""


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    """txt, md with headings, html, a real one-page PDF, a broken PDF, a binary file named .txt, an empty file."""
    import matplotlib

    matplotlib.use("pdf")
    matplotlib.rcParams["pdf.fonttype"] = 42  # TrueType text: extractable by pypdf
    import matplotlib.pyplot as plt

    d = tmp_path_factory.mktemp("docs")
    (d / "guide.md").write_text(GUIDE)
    (d / "boreal.html").write_text("<html><body><h1>Boreal Database</h1><p>Boreal is a column store designed by "
                                   "Ivo Karlsson.</p><script>var x = 1;</script></body></html>")
    (d / "notes.txt").write_text("Plain notes: the Tundra scheduler was created by Ada Lindqvist in 2015.\n")
    fig = plt.figure(figsize=(8.5, 11))
    fig.text(0.1, 0.9, "The Aurora compiler was designed by Lena Berg in 2009.", fontsize=12)
    fig.savefig(d / "aurora.pdf")
    plt.close(fig)
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
    assert [(s.headings, s.text) for s in h] == [(["A"], "one"), (["A", "B"], "two")]


def test_bad_files_are_reported_one_line_each_and_the_rest_is_loaded(docs):
    passages, problems = load_paths([docs])
    why = {Path(f).name: w for f, w in problems}
    assert set(why) == {"broken.pdf", "junk.txt", "empty.md"}
    assert why["junk.txt"].startswith("a binary file with a text extension")
    assert why["broken.pdf"].startswith("not a readable PDF") and why["empty.md"] == "empty"
    files = {Path(p.metadata["file_path"]).name for p in passages}
    assert files == {"guide.md", "boreal.html", "notes.txt", "aurora.pdf"}
    pdf = [p for p in passages if p.metadata["file_path"].endswith("aurora.pdf")]
    assert pdf[0].metadata["page"] == 1 and "Lena Berg" in pdf[0].text
    assert all("#" not in p.text for p in passages)


def test_build_from_documents_then_ask_a_factoid_question(docs, tmp_path):
    env = dict(os.environ, OVERLAY_HOME=str(tmp_path / "home"))
    p = subprocess.run([OVERLAY, "build", str(docs), "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("skipped ") == 3 and "Traceback" not in p.stderr
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert {Path(s["file"]).name for s in report["skipped"]} == {"broken.pdf", "junk.txt", "empty.md"}
    again = subprocess.run([OVERLAY, "build", str(docs), "--json"], capture_output=True, text=True, env=env,
                           timeout=600)
    assert json.loads(again.stdout.strip().splitlines()[-1])["cached"] is True  # idempotent
    for question, key in [("Who wrote the Zephyr Toolkit?", "Margarethe Olsson"),
                          ("Who designed the Aurora compiler?", "Lena Berg")]:
        a = subprocess.run([OVERLAY, "ask", "--json", question], capture_output=True, text=True, env=env, timeout=600)
        assert a.returncode == 0, a.stderr
        res = json.loads(a.stdout)
        assert key in res["answer"] and not res["refused"], res["answer"]
        assert "#" not in res["answer"]
