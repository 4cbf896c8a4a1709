"""How every ``overlay`` command reports a user mistake: one red line on stderr, exit code 2.

Shared by :mod:`overlay_core.cli`, :mod:`overlay_core.verification_cli` and
:mod:`overlay_core.inspector.cli`, so the three print errors the same way.

Messages from ``overlay_core`` name a field the caller gave in backticks, as ``` `word` ```
or ``` `new_edge=True` ``` (the Python/JSON spelling that library and LangFlow users type).
Given the command's context (a ``ctx: typer.Context`` parameter), :func:`cli_message`
rewrites each such marker whose name is an option of that command into its command-line
spelling: ``--word``, ``--new-edge``, ``--kind approve``. Markers naming anything else
(e.g. ``` `overlay review list` ```) are left as written.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from .text import utf8_safe

#: stderr console of every command (created once; rich looks up ``sys.stderr`` at print time).
err = Console(stderr=True, emoji=False)  # "it_:x:" is an id, not an emoji shortcode

_MARKER = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)(?:=([^`]*))?`")

#: How ``repr()`` writes an undecodable byte of typed text (a lone surrogate from ``surrogateescape``).
_REPR_BYTE = re.compile(r"\\udc([89a-fA-F][0-9a-fA-F])")

#: Exit code of a user mistake (click uses 2 for usage errors too).
EXIT_USER_ERROR = 2


def _options(ctx) -> dict:
    """Python name -> option of the command of ``ctx`` (a click/typer context; duck-typed,
    since typer ships its own copy of click)."""
    command = getattr(ctx, "command", None)
    return {p.name: p for p in getattr(command, "params", ())
            if getattr(p, "param_type_name", None) == "option" and p.name and p.opts}


def _flag(opt) -> str:
    longs = [o for o in opt.opts if o.startswith("--")]
    return (longs or opt.opts)[0]


def _value(raw: str) -> str:
    """``'two words'`` -> ``'two words'`` (shell-quoted), ``'table'`` -> ``table``, ``N`` -> ``N``."""
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
    return shlex.quote(value) if isinstance(value, str) else str(value)


def cli_message(text: str, ctx=None) -> str:
    """``text`` with each ``` `field` ``` / ``` `field=value` ``` marker naming an option of the
    command of ``ctx`` spelled as that option: ``--field`` / ``--field value``.

    A boolean flag marker ``` `flag=True` ``` becomes ``--flag``. Without a context the text
    is returned unchanged.

    Example:
        ``"a correction needs the step it corrects (`step=N`)"`` -> ``"... (--step N)"`` in
        ``overlay review verdict``.
    """
    opts = _options(ctx)
    if not opts:
        return text

    def sub(m: re.Match) -> str:
        opt = opts.get(m.group(1))
        if opt is None:
            return m.group(0)
        flag, raw = _flag(opt), m.group(2)
        if raw is None or (opt.is_flag and raw.strip() == "True"):
            return flag
        return f"{flag} {_value(raw.strip())}"

    return _MARKER.sub(sub, text)


def print_error(exc: BaseException | str, ctx=None) -> None:
    """Print ``error: MESSAGE`` in red on stderr (flag names as the CLI spells them).

    The message is escaped, so user text such as ``[1]`` or ``trace['trace'][2]`` is shown
    as typed instead of being read as rich markup; ``soft_wrap`` keeps it one line (paths,
    ids stay greppable). A byte that is not UTF-8 (``$'\\xff'`` typed in bash) is shown as
    ``\\xff``, not as Python's ``\\udcff``.
    """
    # undecodable bytes: as characters (a path) or as Python's repr of them (an id in quotes)
    text = _REPR_BYTE.sub(r"\\x\1", utf8_safe(cli_message(str(exc), ctx)))
    err.print(f"[bold red]error:[/] {escape(text)}", style="red", highlight=False, soft_wrap=True)


def fail(exc: BaseException | str, ctx=None, *, json_out: bool = False) -> NoReturn:
    """:func:`print_error` then leave the command with exit code 2 (no traceback).

    Pass the command's ``ctx: typer.Context`` so field names print as its flags. ``json_out`` (a command run with
    ``--json``): stdout also gets one JSON object, :func:`json_error`, so a script that parses stdout reads the
    error instead of nothing.
    """
    print_error(exc, ctx)
    if json_out:
        print(json_error(exc, ctx))
    raise typer.Exit(EXIT_USER_ERROR)


def json_error(exc: BaseException | str, ctx=None) -> str:
    """``{"error": MESSAGE, "kind": EXCEPTION CLASS, "exit_code": 2}`` as one JSON line (the message as
    :func:`print_error` prints it, without "error: "; ``kind`` is ``"UsageError"`` for a plain string)."""
    import json

    return json.dumps({"error": utf8_safe(cli_message(str(exc), ctx)),
                       "kind": type(exc).__name__ if isinstance(exc, BaseException) else "UsageError",
                       "exit_code": EXIT_USER_ERROR}, ensure_ascii=False)


def home_path(value: str) -> Path:
    """``--home``'s value as a path; an empty value is a mistake (``Path("")`` is the current folder, so the
    knowledge was written among the user's files), not the default. Raises: typer.BadParameter."""
    if not str(value).strip():
        raise typer.BadParameter("is empty; give a state folder, or leave --home out for ./.overlay")
    return Path(value)


#: The ``--home`` option every command shares.
HomeOpt = typer.Option(None, "--home", envvar="OVERLAY_HOME", parser=home_path, metavar="PATH",
                       help="State folder (default ./.overlay).")
