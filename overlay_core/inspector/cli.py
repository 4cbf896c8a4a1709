"""``overlay inspect PATH``: the inspector's command (the lead mounts :func:`inspect_command`).

Usage::

    overlay inspect model.safetensors                 # writes ./model.safetensors.inspect/report.{md,html,json} + PNGs
    overlay inspect model.gguf --out reports/smol     # choose the folder (created if missing)
    overlay inspect model.gguf --json                 # one JSON object on stdout (keys: overlay_core.inspector.report)
    overlay inspect model.gguf --probe --json         # + per-head classification scores

The output folder is checked before the model is read (:func:`~.report.check_out_dir`): an
``--out`` that is a file, or a folder that cannot be written (e.g. the default one in a
read-only current folder), is a one-line error with exit code 2 and nothing is written.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ..cli_errors import cli_message, fail
from ..errors import OverlayError
from ..text import utf8_safe


#: Where the report goes without ``--out`` (shown in ``--help`` and in errors).
DEFAULT_OUT = "./<file name>.inspect/ in the current folder"


def _parse_head(head: str | None) -> tuple[int, int] | None:
    if head is None:
        return None
    try:
        layer, h = (int(x) for x in head.split(","))
    except ValueError:
        raise OverlayError(f"--head must be LAYER,HEAD (e.g. 3,5), got {head!r}") from None
    return layer, h


def inspect_command(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A .safetensors file, model.safetensors.index.json, .gguf file or a folder."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON object on stdout."),
    probe: bool = typer.Option(False, "--probe", help="Run the model on probe sequences and classify every head "
                               "(previous-token, first-token/sink, duplicate-token, induction)."),
    out: Path = typer.Option(None, "--out", help="Folder for report.md, report.html, report.json and the PNG pictures, "
                             f"created if missing. Default: {DEFAULT_OUT} (e.g. ./model.gguf.inspect/). "
                             "With --json nothing is written unless --out is given."),
    config: Path = typer.Option(None, "--config", help="A transformers config.json (default: next to the model)."),
    head: str = typer.Option(None, "--head", help="LAYER,HEAD whose rows/columns and bytes are reported (default 0,0)."),
) -> None:
    """Show where each attention head lives in a model file, what the file does not say, and what each head does.

    Writes report.md/.html/.json and PNG pictures to --out (default ./<file name>.inspect/).
    """
    from .report import check_out_dir, inspect_model, no_heads_reason, report_json_text, write_report

    try:
        if out is not None:
            out = check_out_dir(out)
        elif not json_out:
            name = Path(os.path.abspath(path)).name or "model"  # "x/.." names x; "/" has no name
            out = check_out_dir(Path.cwd() / f"{name}.inspect", default=DEFAULT_OUT)
        insp = inspect_model(path, config=config, probe=probe, head=_parse_head(head))
        written = write_report(insp, out) if out is not None else {}
        if json_out:
            sys.stdout.write(report_json_text(insp) + "\n")
        else:
            mi = insp.model
            g = {k: f"{f.value} ({f.provenance})" for k, f in mi.geometry.items()}
            # paths with undecodable bytes are shown as \xNN, as in the report (a terminal may not take them raw)
            typer.echo(utf8_safe(f"{mi.path}: {mi.format}, family {mi.family.value}; "
                                 + ", ".join(f"{k}={v}" for k, v in g.items())))
            if (reason := no_heads_reason(mi)) is not None:
                typer.echo(cli_message(reason, ctx))
            typer.echo(utf8_safe(f"report: {written['report.md']} and {written['report.html']}"))
    except OverlayError as exc:
        fail(exc, ctx)
