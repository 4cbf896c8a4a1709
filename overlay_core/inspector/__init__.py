"""SafeTensors / GGUF inspector: where each attention head lives in a model file, what the
file does not say, and what each head does.

Modules: :mod:`.static` (headers, roles, geometry stored vs inferred, head byte ranges,
parameter counts, per-head weight statistics), :mod:`.gguf_reader` (GGUF via ``gguf``),
:mod:`.forward` (numpy forward passes exposing attention), :mod:`.probes` (head
classification), :mod:`.plots` (PNG pictures), :mod:`.report` (JSON/Markdown/HTML),
:mod:`.cli` (``overlay inspect``).

Example:
    >>> from overlay_core.inspector import inspect_model, report_json   # doctest: +SKIP
    >>> j = report_json(inspect_model("model.gguf", probe=True))          # doctest: +SKIP
    >>> j["n_heads"]                                                       # doctest: +SKIP
    {'value': 9, 'provenance': 'stored', 'source': 'GGUF llama.attention.head_count'}
"""

from .forward import BertForward, ForwardResult, LlamaForward, forward_for
from .probes import ProbeResult, probe_heads
from .report import (Inspection, check_out_dir, inspect_model, no_heads_reason, report_html, report_json, report_markdown,
                     tensor_table, write_figures, write_report)
from .static import (ByteRange, Fact, HeadSlice, ModelInspection, TensorInfo, classify_tensor_name, head_slices,
                     head_statistics, open_model, parameter_counts)

__all__ = [
    "BertForward", "ByteRange", "Fact", "ForwardResult", "HeadSlice", "Inspection", "LlamaForward",
    "ModelInspection", "ProbeResult", "TensorInfo", "check_out_dir", "classify_tensor_name", "forward_for",
    "head_slices", "head_statistics", "inspect_model", "no_heads_reason", "open_model", "parameter_counts", "probe_heads", "report_html",
    "report_json", "report_markdown", "tensor_table", "write_figures", "write_report",
]
