"""The inspector report: one JSON-able dict, Markdown, HTML and pictures.

:func:`inspect_model` gathers everything (headers, counts, per-head statistics, optional
probes); :func:`report_json` turns it into the JSON object printed by
``overlay inspect PATH --json``; :func:`write_report` writes ``report.md``,
``report.html``, ``report.json`` and the PNG pictures into a folder (checked first by
:func:`check_out_dir`; every file is written atomically).

A file without identifiable attention heads (an Overlay state file, any non-transformer
tensor file) is still reported — tensors, dtypes, shapes, metadata — and the report says
why no head can be shown (:func:`no_heads_reason`).

JSON keys (``report_json``; ``schema`` = ``"overlay.inspector/1"``):

* ``path`` (str), ``format`` (``"safetensors"`` | ``"gguf"``), ``files`` (list of str),
  ``file_bytes`` (int, total size of the data files).
* ``family``, ``n_layers``, ``n_heads``, ``n_kv_heads``, ``head_dim``, ``hidden_size``,
  ``vocab_size``, ``intermediate_size``, ``n_params`` — each
  ``{"value": ..., "provenance": "stored" | "inferred" | "unknown", "source": str}``:
  *stored* = read from the file, its ``config.json`` or GGUF metadata; *inferred* = derived
  from tensor shapes or a convention (the ``source`` says which); *unknown* = not
  applicable or not determinable (e.g. heads of an Overlay state file). ``n_params``
  counts parameters (buffers such as ``position_ids`` excluded) from the stored shapes.
* ``naming_scheme`` (``"hf-llama"`` | ``"gpt2"`` | ``"bert"`` | ``"gguf"`` | ``"unknown"``).
* ``not_stored`` — list of sentences: what the file does not say or what had to be assumed.
* ``metadata`` — safetensors ``__metadata__`` or GGUF key/values (long arrays summarized).
* ``overlay`` — for Overlay state files ``{"kind", "format_version",
  "tensor_descriptions": {tensor: meaning}}``, else ``null``.
* ``parameters`` — ``{"total_params", "total_bytes", "by_dtype": {dtype: {"n_params",
  "bytes", "n_tensors"}}, "by_role": {...}, "buffers": {...}}``.
* ``tensors`` — list of ``{"name", "role", "layer", "part", "dtype", "shape" (row-major),
  "n_params", "file", "byte_start", "byte_end" (absolute offsets), "description"}``.
* ``head_location`` — ``{"layer", "head", "slices": [{"tensor", "role", "component",
  "axis", "index": [start, stop], "kv_head", "bytes": {"file", "start", "length",
  "stride", "count", "end"}, "shares_blocks"}]}`` for the chosen head (default 0, 0), or
  ``null`` when heads are unknown.
* ``head_statistics`` — ``{"definitions": {name: text}, name: [[float] * n_heads] * n_layers}``
  or ``null``.
* ``probe`` — only with probing: ``{"method", "settings", "scores": {class: [[float]]},
  "uniform_baseline": {class: float}, "labels": [[class | "none"]] (primary label per head),
  "all_labels": [[[class]]] (every class a head passes), "top_heads": {class: [{"layer",
  "head", "score"}]}}`` with classes ``previous_token, first_token, duplicate_token,
  induction`` and scores ``[n_layers][n_heads]`` in [0, 1]; else ``null``.
* ``figures`` — ``{name: file name}`` of the PNGs written (empty when none written).
* ``timings_s`` — seconds spent per stage (``open``, ``statistics``, ``probe``).
"""

from __future__ import annotations

import html
import inspect
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..storage import write_atomic
from ..text import utf8_safe, utf8_safe_tree
from . import plots
from .probes import CITATIONS, ProbeResult, probe_heads
from .static import HEAD_STATS, ModelInspection, head_slices, head_statistics, open_model, parameter_counts

SCHEMA = "overlay.inspector/1"


@dataclass
class Inspection:
    """Everything known about one model file after :func:`inspect_model`."""

    model: ModelInspection
    stats: dict[str, np.ndarray] | None = None
    probe: ProbeResult | None = None
    head: tuple[int, int] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    token_strings: list[str] | None = None


def inspect_model(path: str | Path, *, config: str | Path | None = None, statistics: bool = True,
                  probe: bool = False, head: tuple[int, int] | None = None, probe_options: dict | None = None
                  ) -> Inspection:
    """Inspect a model file: headers, geometry, counts, per-head statistics, optional probes.

    Args:
        path: ``.safetensors`` / index JSON / ``.gguf`` / directory (see ``open_model``).
        config: optional ``config.json`` (default: next to the model).
        statistics: compute per-head weight statistics (reads the attention weights).
        probe: run the head-classification probes (needs a supported forward pass:
            BERT-family safetensors or Llama GGUF).
        head: ``(layer, head)`` whose location is reported (default ``(0, 0)``).
        probe_options: keyword arguments for :func:`~overlay_core.inspector.probes.probe_heads`.

    Raises:
        InputError, StateFileError: see ``open_model``; ModelError: ``probe`` on an
        unsupported family; InputError: ``head`` out of range.
    """
    t0 = time.perf_counter()
    mi = open_model(path, config=config)
    insp = Inspection(model=mi)
    insp.timings["open"] = time.perf_counter() - t0
    if mi.has_heads:
        insp.head = head or (0, 0)
        head_slices(mi, *insp.head)  # validates the range early
        if statistics:
            t = time.perf_counter()
            insp.stats = head_statistics(mi)
            insp.timings["statistics"] = time.perf_counter() - t
    elif head is not None:
        raise InputError(f"{mi.path}: {no_heads_reason(mi)} Head {head} cannot be located: inspect it without `head`.")
    if probe:
        from .forward import forward_for

        t = time.perf_counter()
        fw = forward_for(mi)
        opts = dict(probe_options or {})
        limit = getattr(fw, "max_probe_half_length", None)  # a model with few positions (an `overlay lab` checkpoint)
        if limit is not None and "half_length" not in opts:
            opts["half_length"] = min(limit, inspect.signature(probe_heads).parameters["half_length"].default)
        insp.probe = probe_heads(fw, **opts)
        insp.token_strings = fw.token_strings()
        insp.timings["probe"] = time.perf_counter() - t
    return insp


def no_heads_reason(mi: ModelInspection) -> str | None:
    """Why ``mi`` has no identifiable attention heads, as one sentence; ``None`` when it has them.

    Example: ``"No attention heads: this is an Overlay state file (kind 'adjacency'), not a
    transformer model."``
    """
    if mi.has_heads:
        return None
    if mi.overlay is not None:
        return f"No attention heads: this is an Overlay state file (kind {mi.overlay['kind']!r}), not a transformer model."
    if not mi.tensors:
        return "No attention heads: the file holds metadata only, no tensors (so no weights, heads or pictures)."
    missing = [k for k in ("n_layers", "n_heads", "n_kv_heads", "head_dim")
               if not (isinstance(mi.g(k), int) and mi.g(k) > 0)]
    by_source: dict[str, list[str]] = {}
    for k in missing:
        by_source.setdefault(mi.geometry[k].source if k in mi.geometry else "unknown", []).append(k)
    why = "; ".join(f"{', '.join(ks)}: {src}" for src, ks in by_source.items())
    return (f"No attention heads can be identified ({why}). If this is a transformer, give its config.json "
            "(`config`).")


def _tensor_rows(mi: ModelInspection) -> list[dict]:
    return [{"name": t.name, "role": t.role, "layer": t.layer, "part": t.part, "dtype": t.dtype, "shape": list(t.shape),
             "n_params": t.n_elements, "file": str(t.file), "byte_start": t.start, "byte_end": t.start + t.nbytes,
             "description": t.description} for t in mi.tensors.values()]


def tensor_table(insp: Inspection) -> list[dict]:
    """One row per tensor (name, role, layer, dtype, shape, params, byte range) — for table outputs."""
    return _tensor_rows(insp.model)


def report_json(insp: Inspection) -> dict:
    """The report as one JSON-serializable dict (keys documented in this module's docstring)."""
    mi = insp.model
    out: dict = {"schema": SCHEMA, "path": str(mi.path), "format": mi.format, "files": [str(f) for f in mi.files],
                 "file_bytes": int(sum(Path(f).stat().st_size for f in mi.files)),
                 "family": mi.family.to_json(), "naming_scheme": mi.scheme}
    for k, f in mi.geometry.items():
        out[k] = f.to_json()
    out["not_stored"] = list(mi.notes)
    out["metadata"] = dict(mi.metadata.items())
    out["overlay"] = mi.overlay
    out["parameters"] = parameter_counts(mi)
    out["tensors"] = _tensor_rows(mi)
    out["head_location"] = None
    if insp.head is not None:
        out["head_location"] = {"layer": insp.head[0], "head": insp.head[1],
                                "slices": [s.to_json() for s in head_slices(mi, *insp.head)]}
    out["head_statistics"] = None
    if insp.stats is not None:
        out["head_statistics"] = {"definitions": dict(HEAD_STATS),
                                  **{k: np.round(v, 4).tolist() for k, v in insp.stats.items()}}
    out["probe"] = insp.probe.to_json() if insp.probe is not None else None
    out["figures"] = dict(insp.figures)
    out["timings_s"] = {k: round(v, 3) for k, v in insp.timings.items()}
    return out


# ------------------------------------------------------------------------------------------
# Markdown / HTML
# ------------------------------------------------------------------------------------------

def _md_cell(v) -> str:
    s = "" if v is None else str(v)
    return s.replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _short(v, limit: int = 160) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str)
    return s if len(s) <= limit else f"{s[:limit]}... ({len(s):,} characters)"


def report_markdown(insp: Inspection) -> str:
    """The report as Markdown (pictures referenced by the file names in ``insp.figures``; undecodable bytes of a
    file name as ``\\xNN``)."""
    mi = insp.model
    j = report_json(insp)
    md = [f"# Inspection of `{Path(mi.path).name}`", ""]
    md.append(f"- Format: **{mi.format}**, {len(mi.files)} data file(s), {_mb(j['file_bytes'])}")
    md.append(f"- Family: **{mi.family.value}** ({mi.family.provenance}: {mi.family.source}); "
              f"tensor naming scheme `{mi.scheme}`")
    if mi.config_path:
        md.append(f"- Config: `{mi.config_path}`")
    md += ["", "## Geometry (stored or inferred)", ""]
    md.append(_table(["figure", "value", "provenance", "source"],
                     [[k, f.value, f"**{f.provenance}**", f.source] for k, f in mi.geometry.items()]))
    reason = no_heads_reason(mi)
    if reason is not None:
        md += ["", "## Attention heads", "", f"{reason} So there is no head location, no per-head statistics and "
               "no head probes; the tensors, dtypes, shapes and metadata below are what the file says."]
    md.append("")
    if mi.notes:
        md += ["## What the file does not say", ""] + [f"- {n}" for n in mi.notes] + [""]
    if mi.metadata:
        md += ["## Metadata", "", "Labels stored in the file (safetensors `__metadata__` or GGUF key/values; long "
               "values shortened).", ""]
        md.append(_table(["key", "value"], [[f"`{k}`", _short(v)] for k, v in mi.metadata.items()]))
        md.append("")
    if mi.overlay is not None:
        md += ["## Overlay state file", "",
               f"Kind `{mi.overlay['kind']}`, format version `{mi.overlay['format_version']}`.", ""]
        md.append(_table(["tensor", "dtype", "shape", "meaning (stored in overlay.tensors)"],
                         [[t.name, t.dtype, list(t.shape), t.description] for t in mi.tensors.values()]))
        md.append("")
    p = j["parameters"]
    md += ["## Parameters", "", f"{p['total_params']:,} parameters, {_mb(p['total_bytes'])} of tensor data"
           + (f" (+ {p['buffers']['n_params']:,} buffer elements)" if p["buffers"]["n_tensors"] else "") + ".", ""]
    md.append(_table(["dtype", "parameters", "bytes", "tensors"],
                     [[k, f"{v['n_params']:,}", f"{v['bytes']:,}", v["n_tensors"]] for k, v in p["by_dtype"].items()]))
    md.append("")
    md.append(_table(["role", "parameters", "share", "bytes", "tensors"],
                     [[k, f"{v['n_params']:,}", f"{100 * v['n_params'] / max(p['total_params'], 1):.1f}%", f"{v['bytes']:,}",
                       v["n_tensors"]] for k, v in p["by_role"].items()]))
    md.append("")
    if j["head_location"]:
        hl = j["head_location"]
        md += [f"## Where head {hl['head']} of layer {hl['layer']} lives", "",
               "Rows/columns of the row-major tensor (`axis` 0 = rows) and the absolute file bytes: "
               "`count` chunks of `length` bytes, `stride` apart.", ""]
        md.append(_table(["tensor", "part", "axis", "index", "kv head", "first byte", "length", "stride", "count",
                          "shares quant blocks"],
                         [[s["tensor"], s["component"], s["axis"], f"{s['index'][0]}:{s['index'][1]}", s["kv_head"],
                           s["bytes"]["start"], s["bytes"]["length"], s["bytes"]["stride"], s["bytes"]["count"],
                           s["shares_blocks"]] for s in hl["slices"]]))
        md.append("")
    if insp.stats is not None:
        md += ["## Per-head weight statistics", ""] + [f"- `{k}`: {v}" for k, v in HEAD_STATS.items()] + [
            "", "Computed on the stored (dequantized) weights; biases, norm gains, the 1/sqrt(head_dim) scale "
            "and RoPE are not folded in.", ""]
        if "head_stats" in insp.figures:
            md += [f"![per-head statistics]({insp.figures['head_stats']})", ""]
        rows = []
        for k, v in insp.stats.items():
            i = int(np.nanargmax(v))
            rows.append([k, f"{np.nanmin(v):.3g}", f"{np.nanmedian(v):.3g}", f"{np.nanmax(v):.3g}",
                         f"L{i // v.shape[1]} H{i % v.shape[1]}"])
        md.append(_table(["statistic", "min", "median", "max", "argmax"], rows))
        md.append("")
    if insp.probe is not None:
        pr = insp.probe
        md += ["## What the heads do (probes)", "",
               f"{pr.settings['n_sequences']} sequences of {pr.settings['half_length']} random ordinary tokens repeated "
               f"twice (length {pr.settings['sequence_length']}, seed {pr.settings['seed']}). Score = mean attention on the "
               f"class's target position; a head gets a class when its score is >= {pr.settings['threshold']} and >= 2x "
               "the uniform baseline (primary label: the most specific passing class, induction > duplicate_token > "
               "previous_token > first_token).", ""]
        md += [f"- `{c}`: {CITATIONS[c]} (uniform baseline {pr.uniform_baseline[c]:.3f})" for c in CITATIONS] + [""]
        md.append(_table(["class", "top heads (layer, head: score)", "heads with this primary label"],
                         [[c, ", ".join(f"L{h['layer']} H{h['head']}: {h['score']:.2f}" for h in pr.top_heads[c]),
                           sum(row.count(c) for row in pr.labels)] for c in CITATIONS]))
        md.append("")
        for key, alt in (("probe_scores", "probe scores"), ("attention_maps", "attention maps of the top heads")):
            if key in insp.figures:
                md += [f"![{alt}]({insp.figures[key]})", ""]
    if "tensor_map" in insp.figures:
        md += ["## Tensor map", "", f"![tensor map]({insp.figures['tensor_map']})", ""]
    md += ["## Tensors", ""]
    md.append(_table(["name", "role", "layer", "dtype", "shape", "parameters", "bytes (absolute)"]
                     + (["description"] if mi.overlay else []),
                     [[t["name"], t["role"], t["layer"], t["dtype"], t["shape"], f"{t['n_params']:,}",
                       f"{t['byte_start']}..{t['byte_end']}"] + ([t["description"]] if mi.overlay else [])
                      for t in j["tensors"]]))
    md += ["", "## Timings", "", ", ".join(f"{k}: {v:.2f} s" for k, v in insp.timings.items()), ""]
    return utf8_safe("\n".join(md))  # a file name with undecodable bytes: \xNN escapes (report.md is UTF-8)


def report_html(markdown: str, title: str) -> str:
    """Render the Markdown report as a standalone HTML page (markdown-it-py, CommonMark + tables)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    css = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
           "img{max-width:100%}code{background:#f4f4f4}")
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{css}</style></head><body>\n{body}</body></html>\n")


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def check_out_dir(out_dir: str | Path, *, field: str = "out", default: str | None = None,
                  suffix: str = ".inspect") -> Path:
    """Check, before anything is written, that the report folder ``out_dir`` can be created and written.

    The check really writes: a temporary file in ``out_dir`` (or a temporary folder in its
    nearest existing parent), removed at once, so nothing is left behind either way.

    Args:
        out_dir: the folder (created later by :func:`write_figures` / :func:`write_report` if missing).
        field: the name of the setting that chose the folder, quoted in messages (``out`` is the
            CLI's ``--out``).
        default: when the folder is the default, how that default is chosen (quoted in messages).
        suffix: appended to a file given as the folder to suggest a folder name (``.inspect``; the lab's ``.lab``).

    Returns:
        ``out_dir`` as an absolute path.

    Raises:
        InputError: ``out_dir`` or one of its parents is a file, not a folder; or the folder
            cannot be created or written (permission denied, read-only file system...).
    """
    out = Path(out_dir).expanduser().absolute()
    what = f"{out} (the default `{field}`: {default})" if default else f"`{field}` {out}"
    todo = ("run from a folder you can write, or choose one with `{f}=DIR`" if default
            else "choose a folder you can write with `{f}=DIR`").format(f=field)
    existing = out
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == out:
            raise InputError(f"{what} is a file, not a folder: give a folder for the report (it is created if missing), "
                             f"e.g. `{field}={out}{suffix}`")
        raise InputError(f"cannot create {what}: {existing} is a file, not a folder; {todo}")
    try:
        if existing == out:
            fd, probe = tempfile.mkstemp(prefix=".overlay-write-check.", dir=out)
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".overlay-write-check.", dir=existing))
    except OSError as exc:
        where = "" if existing == out else f" (in {existing})"
        raise InputError(f"cannot write the report to {what}: {_os_reason(exc)}{where}; {todo}") from None
    return out


def write_figures(insp: Inspection, out_dir: str | Path, *, field: str = "out") -> dict[str, str]:
    """Write the PNG pictures into ``out_dir`` (created if missing; checked with :func:`check_out_dir`).

    Returns:
        (and stores in ``insp.figures``) name -> file name.

    Raises:
        InputError: the folder is a file or cannot be written (see :func:`check_out_dir`); a
            write failing midway (e.g. disk full) removes the folder if this call created it.
    """
    out = check_out_dir(out_dir, field=field)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        return _write_figures(insp, out)
    except OSError as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise InputError(f"cannot write the pictures to `{field}` {out}: {_os_reason(exc)}; "
                         f"choose a folder you can write with `{field}=DIR`") from None


def _write_figures(insp: Inspection, out: Path) -> dict[str, str]:
    mi = insp.model
    if not mi.tensors:  # a file holding only metadata: nothing to draw (the report says what it holds)
        return {}
    figs = {"tensor_map": plots.plot_tensor_map(mi, out / "tensor_map.png").name}
    if insp.stats is not None:
        figs["head_stats"] = plots.plot_head_grid(insp.stats, out / "head_stats.png",
                                                  title="per-head weight statistics (layer x head)").name
    if insp.probe is not None:
        pr = insp.probe
        figs["probe_scores"] = plots.plot_head_grid(pr.scores, out / "probe_scores.png", vmin_zero=True,
                                                    title="probe scores (layer x head)", cmap="Reds").name
        maps = []
        for c in CITATIONS:
            for h in pr.top_heads[c][:2]:
                maps.append((f"{c} L{h['layer']} H{h['head']} ({h['score']:.2f})",
                             pr.example_attention[h["layer"]][h["head"]]))
        labels = None
        if insp.token_strings is not None:
            labels = [insp.token_strings[i][:8] for i in pr.tokens[0]]
        figs["attention_maps"] = plots.plot_attention(maps, out / "attention_maps.png", tokens=labels).name
    insp.figures = figs
    return figs


def report_json_text(insp: Inspection, *, indent: int | None = None) -> str:
    """:func:`report_json` as JSON text, UTF-8-safe: strings with undecodable bytes (a file name that is not
    UTF-8) hold them as ``\\xNN`` escapes, as in report.md."""
    doc = utf8_safe_tree(json.loads(json.dumps(report_json(insp), default=str)))
    return json.dumps(doc, indent=indent, ensure_ascii=False)


def write_report(insp: Inspection, out_dir: str | Path, *, field: str = "out") -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``report.json`` and the PNGs into ``out_dir`` (atomic writes).

    Args:
        field: the setting that chose ``out_dir``, quoted in error messages (see :func:`check_out_dir`).

    Returns:
        name -> path of every file written.

    Raises:
        InputError: ``out_dir`` is a file or cannot be written; a write failing midway removes
            the folder if this call created it (files already there are replaced whole or not at all).
    """
    out = check_out_dir(out_dir, field=field)
    created = not out.exists()
    figs = write_figures(insp, out, field=field)
    md = report_markdown(insp)
    paths = {k: out / v for k, v in figs.items()}
    try:
        for name, data in (("report.md", md),
                           ("report.html", report_html(md, f"Inspection of {utf8_safe(Path(insp.model.path).name)}")),
                           ("report.json", report_json_text(insp, indent=1))):
            write_atomic(out / name, data.encode("utf-8"))
            paths[name] = out / name
    except OSError as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise InputError(f"cannot write the report to `{field}` {out}: {_os_reason(exc)}; "
                         f"choose a folder you can write with `{field}=DIR`") from None
    return paths
