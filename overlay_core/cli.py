"""``overlay`` — the command line for everything a flow does.

Commands: ``build`` (ingest + adjacency table), ``ask`` (answer with trace; ``--json``),
``neighbors`` (look up the adjacency table), ``review …`` (reviewer queue and verdicts),
``inspect`` (SafeTensors/GGUF inspector), ``lab`` (Specialization Lab), ``check-flow`` (the code a saved flow's nodes carry).
User mistakes (:class:`OverlayError`) are printed as one clear message with exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from typer.core import TyperCommand

from .accumulator import ScoreWeights
from .cli_errors import HomeOpt, err, fail as _fail, json_error, print_error
from .errors import InputError, OverlayError
from .settings import ReasonerSettings, render_help, specs
from .text import utf8_safe


class _Command(TyperCommand):
    """A command whose ``--help`` never cuts an option name.

    typer lists the options in a rich table, one column each for the names, the short names, the ``--no-`` names
    and the short ones, then the type and the help, and every column shrinks to fit the terminal: at 80 columns
    ``ask`` showed "--refuse-distance-m…" (a setting name users copy into flows and docs). Here the names of an
    option share one column, one name a line, that keeps its width; the help column wraps in the rest."""

    def format_help(self, ctx, formatter) -> None:
        from rich.table import Table
        from rich.text import Text
        from typer import rich_utils

        class OptionsTable(Table):
            def add_row(self, *cells, **kwargs) -> None:
                if len(cells) >= 6:  # an option row: [required,] 4 name cells, type, help (a command row has 2)
                    names = Text("\n").join(c for c in cells[-6:-2] if isinstance(c, Text) and c.plain)
                    cells = (*cells[:-6], names, *cells[-2:])
                super().add_row(*cells, **kwargs)
                for column in self.columns[:-2]:  # the type and help columns (the last two) may wrap
                    column.no_wrap = True

        table, rich_utils.Table = rich_utils.Table, OptionsTable  # only while this help is printed
        try:
            super().format_help(ctx, formatter)
        finally:
            rich_utils.Table = table


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Overlay: a transparent reasoning pipeline (adjacency tables + retrieval + LLM selector).")


def _setting_options(*classes: type):
    """Give a command one option per setting of each settings dataclass (see :mod:`overlay_core.settings`).

    The command takes a ``setting_values`` parameter instead: ``{name: value}`` of every setting, to build
    the dataclasses inside its own error handling (a bad value is then reported with its flag)."""
    extra: list[inspect.Parameter] = []
    for cls in classes:
        for s in specs(cls):
            decls = (f"{s.flag}/--no-{s.flag[2:]}",) if s.type is bool else (s.flag,)
            # help is rich markup: "G[edge]" is escaped, and the range is in parentheses, not brackets
            allowed = (f" (one of: {', '.join(s.choices)})" if s.choices
                       else f" ({s.bounds[0]:g} to {s.bounds[1]:g})" if s.bounds and s.type is int else "")
            opt = typer.Option(s.default, *decls, help=escape(render_help(s.help, cls, "cli")) + allowed)
            extra.append(inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=s.type))

    def decorate(fn):
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name != "setting_values"]

        @functools.wraps(fn)
        def command(**kwargs: Any):
            values = {p.name: kwargs.pop(p.name) for p in extra}
            return fn(**kwargs, setting_values=values)

        hints = typing.get_type_hints(fn)
        command.__signature__ = sig.replace(parameters=[p.replace(annotation=hints.get(p.name, p.annotation))
                                                        for p in own] + extra)
        command.__annotations__ = {**{p.name: hints[p.name] for p in own if p.name in hints},
                                   **{p.name: p.annotation for p in extra}}
        return command

    return decorate


def _pick(cls: type, values: dict[str, Any]) -> Any:
    return cls(**{s.name: values[s.name] for s in specs(cls)})


@app.command(cls=_Command)
def build(
    ctx: typer.Context,
    paths: Optional[list[Path]] = typer.Argument(None, help="Files or folders of your own documents (.txt, .md, "
                                                  ".html, .pdf); none = the dictionary (--corpus or FOLDOC)."),
    home: Optional[Path] = HomeOpt,
    corpus: Optional[Path] = typer.Option(None, help="A dictd .index file (default: the bundled FOLDOC)."),
    limit: Optional[int] = typer.Option(None, min=1, help="Only the first N dictionary entries."),
    order: int = typer.Option(3, min=2, max=3, help="n-gram order of the adjacency table."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Build again even if the same corpus is built."),
    server_url: Optional[str] = typer.Option(None, envvar="OVERLAY_CHROMA_URL", help="Chroma server URL (default: embedded)."),
    json_out: bool = typer.Option(False, "--json", help="Print the build report as JSON."),
    embedder: Optional[str] = typer.Option(
        None, help="Sentence embedder of the passages: minilm (English; the default), use-multilingual or e5-small "
        "(Russian and other languages). Default: the one the state folder was built with. Another one needs --rebuild."),
) -> None:
    """Build the knowledge: passages into ChromaDB and the adjacency table (cached by corpus fingerprint).

    With PATHs, from your own documents (bad files are skipped, one line each); else from a dictd dictionary.

    --json prints the report of overlay_core.knowledge.build_knowledge with missing_paths (mistyped PATHs: exit 1).

    Its ingest counts what this run stored (nothing when cached); last_build_ingest, what the stored build did."""
    from .knowledge import build_knowledge

    def skipped(f: str, why: str) -> None:
        err.print(f"skipped {escape(f)}: {escape(why)}", highlight=False, soft_wrap=True)

    try:
        if paths:
            from .documents import build_documents

            if corpus is not None or limit is not None:
                raise InputError("--corpus and --limit are for a dictionary; give either PATHs of documents or "
                                 "--corpus, not both")
            report = build_documents(paths, home, order=order, rebuild=rebuild, progress=not json_out,
                                     server_url=server_url, on_problem=skipped, embedder=embedder)
        else:
            report = build_knowledge(home, corpus=corpus, limit=limit, order=order, rebuild=rebuild,
                                     progress=not json_out, server_url=server_url, embedder=embedder)
    except OverlayError as exc:
        _fail(exc, ctx, json_out=json_out)
    missing = [p for p in paths or () if not Path(p).expanduser().exists()]  # skipped, named in the report
    if json_out:
        print(json.dumps(dict(report, missing_paths=[utf8_safe(str(p)) for p in missing])))
        _fail_missing(missing)
        return
    state = "already built (cached)" if report.get("cached") else "built"
    n, stored = report["n_passages"], report.get("store_count")
    passages = f"{n} passage{'s' * (n != 1)}" + (f" ({stored} in the knowledge)" if stored and stored != n else "")
    err.print(f"knowledge {state}: {passages}, {report['n_edges']} edges, "
              f"vocabulary {report['vocab_size']} (fingerprint {report['fingerprint']}, embedder "
              f"{report.get('embedder', 'minilm')})", highlight=False, soft_wrap=True)
    if report.get("documents_language") == "ru":
        err.print(f"the documents are in Russian: embedded with {report.get('embedder')} (the default minilm reads "
                  "English only); its distances run larger than minilm's, so questions are declined beyond "
                  "--refuse-distance-multilingual 0.8 (not --refuse-distance 0.6) and some answerable questions may "
                  "still be declined ('the nearest passage is at distance … > refuse_distance_multilingual'): "
                  "--embedder e5-small --rebuild retrieves better and embeds slower (docs/russian.md)",
                  highlight=False, soft_wrap=True)
    elif report.get("documents_language") == "mixed":
        err.print(f"some documents are in Russian: embedded with {report.get('embedder')}, which reads English and "
                  "Russian (the default minilm reads English only); give --embedder minilm --rebuild for English "
                  "questions only", highlight=False, soft_wrap=True)
    if report.get("unread_language"):
        err.print(f"note: {'these documents are' if report['unread_language'] == 'ru' else 'some documents are'} in "
                  f"Russian, but this knowledge was embedded with {report.get('embedder')}, which reads English only: "
                  "Russian questions will find little. To read both, build every path again with `--rebuild "
                  "--embedder use-multilingual`", highlight=False, soft_wrap=True)
    if "files" in report:
        status = [f["status"] for f in report["files"]]
        files = f"{len(status)} file" + ("s" if len(status) != 1 else "")
        gone = report["removed_files"]
        err.print(f"documents: {files} loaded ({status.count('new')} new, {status.count('changed')} changed, "
                  f"{status.count('unchanged')} unchanged), {len(report['skipped'])} skipped"
                  + (f", {len(gone)} removed from the store (no longer there or now skipped: "
                     + ", ".join(escape(f["file"]) for f in gone) + ")" if gone else ""),
                  highlight=False, soft_wrap=True)
    if not report.get("cached"):
        ing = report.get("ingest", {})
        err.print(f"passages: {ing.get('added', 0)} added, {ing.get('updated', 0)} updated, "
                  f"{ing.get('unchanged', 0)} unchanged (not embedded again), {ing.get('removed', 0)} old chunks "
                  "removed", highlight=False, soft_wrap=True)
    if report.get("store_extra"):
        extra = report["store_extra"]
        err.print(f"note: the knowledge also holds {extra} passage{'s' * (extra != 1)} from earlier builds (other "
                  f"paths{'' if paths else ', a larger --limit'} or the Knowledge Base node); they are kept in the "
                  "adjacency table too — "
                  + ("`overlay build --rebuild PATH…` starts over from PATH… only." if paths else
                     "`overlay build --rebuild` starts over from this dictionary only."),
                  highlight=False, soft_wrap=True)
    _fail_missing(missing)


def _fail_missing(missing: list[Path]) -> None:
    """Exit 1 naming the ``missing`` paths, if any: a mistyped path among others leaves the build of the others
    standing, but a script must see the mistake (in text and JSON mode alike)."""
    if missing:
        links = [p for p in missing if Path(p).expanduser().is_symlink()]
        gone = [p for p in missing if p not in links]
        what = ([f"no such file or folder: {', '.join(escape(str(p)) for p in gone)}"] if gone else []) + (
            [f"a symbolic link to nothing: {', '.join(escape(str(p)) for p in links)}"] if links else [])
        err.print(f"error: {'; '.join(what)} (the other paths were built); check the path", highlight=False,
                  soft_wrap=True)
        raise typer.Exit(1)


@app.command(cls=_Command)
@_setting_options(ReasonerSettings, ScoreWeights)
def ask(
    ctx: typer.Context,
    question: str = typer.Argument(..., help="The question, e.g. 'What is a hash table?'"),
    home: Optional[Path] = HomeOpt,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object: answer, trace, passages, settings."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the trace as Markdown tables."),
    model: Optional[str] = typer.Option(None, envvar="OVERLAY_MODEL", help="Selector model: a .gguf file or a name "
                                        "(smollm2, gemma-3-270m); default smollm2."),
    model_ru: str = typer.Option("auto", "--model-ru", envvar="OVERLAY_MODEL_RU", help="Selector of Russian questions: "
                                 "auto (gemma-3-270m beside the default model), same (as --model), a file or a name."),
    enqueue: bool = typer.Option(False, "--enqueue", help="Put the answer in the review queue and print its id "
                                 "(creates the review database if needed, in an existing folder)."),
    db: Optional[str] = typer.Option(None, "--db", help="Review database for --enqueue: SQLite file path or SQLAlchemy URL "
                                     "(default: $OVERLAY_DB_URL, else <state>/reviews.sqlite3, as `overlay review`)."),
    server_url: Optional[str] = typer.Option(None, envvar="OVERLAY_CHROMA_URL", help="Chroma server URL."),
    setting_values: Optional[dict] = None,
) -> None:
    """Answer a question word by word and print the answer with its trace.

    Every reasoner setting and score weight is an option (see overlay_core/settings.py)."""
    from .knowledge import make_reasoner, state_paths
    from .trace import to_markdown, to_text

    try:
        if enqueue:  # before answering: a missing folder or a foreign SQLite file is refused, nothing created
            from .verification_cli import check_enqueue_db

            check_enqueue_db(db, home)
        if json_out and markdown:
            raise InputError("--json and --markdown are two output formats; choose one")
        if not question.strip():  # before the state folder is looked for: this is the mistake to name
            raise InputError("the question is empty; ask something like 'What is a hash table?' "
                             "(«Что такое хеш-таблица?»)")
        settings, weights = _pick(ReasonerSettings, setting_values), _pick(ScoreWeights, setting_values)
        reasoner = make_reasoner(home, model_path=model, weights=weights, settings=settings, server_url=server_url,
                                 model_ru=model_ru)
        result = reasoner.answer(question)
        if enqueue:
            from .verification import ReviewStore

            store = ReviewStore(db or state_paths(home).review_db)
            waiting = store.pending_like(question, result["answer"])  # asked again: the item already queued
            result["answer_id"] = waiting.id if waiting else store.enqueue(
                flow="cli", question=question, answer=result["answer"], trace=result,
                model_fingerprint=result.get("model", ""), index_fingerprint=result.get("index", ""))
            if waiting:
                result["answer_queued_before"] = True
    except OverlayError as exc:
        _fail(exc, ctx, json_out=json_out)
    if json_out:
        print(json.dumps(result, ensure_ascii=False))
    elif markdown:
        print(to_markdown(result, more="`overlay ask --json` holds every candidate"))
    else:
        print(to_text(result))  # starts with "Answer: ..."
        if result.get("answer_id"):
            print(f"\nreview item: {result['answer_id']}" + (" (already waiting for review: the same answer to the "
                                                             "same question)" if result.get("answer_queued_before")
                                                             else ""))


@app.command(cls=_Command)
def neighbors(
    ctx: typer.Context,
    word: str = typer.Argument(..., help="Context: one word, or two words for a trigram context."),
    home: Optional[Path] = HomeOpt,
    top_n: int = typer.Option(10, "--top-n", min=1, help="How many next words (at least 1)."),
) -> None:
    """Show the top next words of a context in the adjacency table, with weights and example passages."""
    from .knowledge import load_table, state_paths
    from .text import words

    try:
        context = words(word)
        if not context:
            raise InputError("give a context word, e.g. `overlay neighbors hash`")
        table = load_table(state_paths(home).adjacency)
        edges = table.next_words(context, top_n)
        if not edges:
            raise InputError(f"{word!r} is not in the adjacency table's vocabulary: it has no next words")
    except OverlayError as exc:
        _fail(exc, ctx)
    for e in edges:
        eg = table.passage_source(e.passages[0]) if e.passages else ""
        print(f"{' '.join(e.context)} -> {e.word}\tp={e.prob:.3f}\tcount={e.count}\tpassages={e.n_passages}\te.g. {eg}")


@app.command("check-flow", cls=_Command)
def check_flow(
    ctx: typer.Context,
    flows: list[Path] = typer.Argument(..., help="Saved LangFlow flow files (.json)."),
) -> None:
    """Check the code each node of a saved flow carries: syntax errors and Overlay nodes edited away from the
    installed components, each named by node and id (lfx run names neither). Exit code 1 when any is found."""
    from .component_code import flow_code_problems

    found = 0
    for path in flows:
        try:
            try:
                flow = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise InputError(f"flow file {path} does not exist") from None
            except IsADirectoryError:
                raise InputError(f"{path} is a folder; give flow files (.json)") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"cannot read flow file {path}: {exc}") from None
            except ValueError as exc:
                raise InputError(f"{path} is not JSON ({exc}); give a flow file saved by LangFlow") from None
            if not isinstance(flow, dict):
                raise InputError(f"{path}: a flow file holds a JSON object, got a JSON {type(flow).__name__}")
        except OverlayError as exc:
            _fail(exc, ctx)
        problems = flow_code_problems(flow)
        found += len(problems)
        for problem in problems:
            print(f"{path}: {problem}")
        if not problems:
            err.print(f"{escape(str(path))}: every node's code compiles and every Overlay node is as installed",
                      highlight=False, soft_wrap=True)
    if found:
        raise typer.Exit(1)


def _mount_optional() -> None:
    try:
        from .verification_cli import review_app
    except ImportError:  # pragma: no cover - present once verification lands
        review_app = None
    if review_app is not None:
        app.add_typer(review_app, name="review", help="Reviewer queue: list, show, verdict, revert, apply, export.")
    try:
        from .inspector.cli import inspect_command
    except ImportError:  # pragma: no cover
        inspect_command = None
    if inspect_command is not None:
        app.command("inspect", cls=_Command,
                    help="Inspect a .safetensors or .gguf file: roles, heads, statistics, pictures.")(inspect_command)
    from .lab.cli import lab_command

    app.command("lab", cls=_Command, help="Train a tiny attention-only transformer and watch its heads specialize "
                "(checkpoints, probes, report).")(lab_command)


_mount_optional()


def main() -> None:
    """Console-script entry point.

    A mistyped command line (click's usage errors: a bad value such as ``--max-words abc``, a missing option or
    argument, an unknown option) is one ``error:`` line naming the option and pointing at ``--help``, exit code 2
    — not click's boxed usage block. ``overlay`` alone still prints the help. (typer 0.26 vendors click as
    ``typer._click``; tests/test_cli.py guards these lines.)"""
    from typer._click import exceptions as click

    try:
        rv = app(standalone_mode=False)
    except click.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        path = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "overlay"
        message = f"{exc.format_message().rstrip('.')} (see `{path} --help`)"
        print_error(message)
        if "--json" in sys.argv[1:]:  # a script reading stdout gets the error as JSON too
            print(json_error(message))
        sys.exit(exc.exit_code)
    except click.Abort:
        err.print("Aborted.", highlight=False)
        sys.exit(1)
    except OverlayError as exc:  # raised outside a command's own handler
        print_error(exc)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)
