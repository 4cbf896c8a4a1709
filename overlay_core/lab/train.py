"""Train the lab model from a random initialization on CPU (JAX + optax) and write labelled checkpoints.

Why JAX + optax: both are Apache-2.0, install from PyPI as CPU wheels (``jax``, ``jaxlib``,
``optax``; with ``ml-dtypes`` Apache-2.0 and ``opt-einsum`` MIT) with no GPU libraries, and
``jax.random`` makes the initialization a pure function of the seed. PyTorch's PyPI wheel for
Linux pulls in the CUDA libraries (several GB) even on a CPU-only machine. See the README.

Reproducibility: the initialization comes from ``jax.random.PRNGKey(seed)``, the data from
``numpy.random.default_rng(SeedSequence([seed, 0]))`` (evaluation batch: ``[seed, 1]``), the
optimizer is deterministic and XLA's CPU kernels are too for a fixed program, so two runs with
the same settings write bit-identical checkpoints (tested). Timings are kept out of the files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..inspector.probes import ProbeResult, probe_heads
from .checkpoints import check_existing, checkpoint_metadata, checkpoint_name, write_checkpoint
from .data import repeated_runs
from .model import LabConfig, LabForward, tensor_names

#: Sequences in the fixed evaluation batch (first/second-copy losses at every checkpoint).
EVAL_SEQUENCES = 128


@dataclass
class Checkpoint:
    """One written checkpoint and what was measured on it.

    Attributes:
        step: optimizer updates applied. path: the ``.safetensors`` file.
        losses: ``loss``, ``first_copy_loss``, ``second_copy_loss`` (eval batch, nats), ``train_loss``.
        probe: the inspector's probe result on these weights.
    """

    step: int
    path: Path
    losses: dict[str, float]
    probe: ProbeResult


@dataclass
class LabRun:
    """The result of :func:`train`.

    Attributes:
        cfg: settings. out_dir: the run folder. checkpoints: in step order.
        train_losses: ``float32 [steps]`` training-batch loss of every update (update ``i`` at index ``i-1``).
        timings: seconds: ``train`` (updates, including JIT compilation), ``compile`` (first update),
            ``checkpoints`` (evaluation, probes and writing), ``total``.
    """

    cfg: LabConfig
    out_dir: Path
    checkpoints: list[Checkpoint] = field(default_factory=list)
    train_losses: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    timings: dict[str, float] = field(default_factory=dict)


def init_params(cfg: LabConfig) -> dict[str, np.ndarray]:
    """Random initialization from ``jax.random.PRNGKey(cfg.seed)``: float32 arrays by tensor name.

    Embeddings and unembedding ``N(0, 0.02^2)`` (GPT-2's scale); q/k/v ``N(0, 1/d_model)`` so that
    attention scores start with unit variance; o ``N(0, 1/(2 n_layers d_model))`` (GPT-2's residual scaling).
    """
    import jax

    names = tensor_names(cfg)
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed), len(names))
    d = cfg.d_model
    out = {}
    for key, (name, shape) in zip(keys, names.items(), strict=True):
        if "embed" in name or name == "lm_head.weight":
            scale = 0.02
        elif name.endswith("o_proj.weight"):
            scale = 1 / math.sqrt(d) / math.sqrt(2 * cfg.n_layers)
        else:
            scale = 1 / math.sqrt(d)
        out[name] = np.asarray(jax.random.normal(key, shape, dtype=np.float32) * np.float32(scale))
    return out


def _functions(cfg: LabConfig):
    """``(update, evaluate, optimizer)``: jitted JAX functions of the model (same maths as LabForward)."""
    import jax
    import jax.numpy as jnp
    import optax

    nh, hd, nl = cfg.n_heads, cfg.head_dim, cfg.n_layers

    def logits_of(p, ids):
        b, t = ids.shape
        x = p["model.embed_tokens.weight"][ids] + p["model.embed_positions.weight"][:t]
        causal = jnp.tril(jnp.ones((t, t), dtype=bool))
        for layer in range(nl):
            pre = f"model.layers.{layer}.self_attn."

            def heads(name, pre=pre, x=x):
                return (x @ p[pre + name].T).reshape(b, t, nh, hd).transpose(0, 2, 1, 3)

            q, k, v = heads("q_proj.weight"), heads("k_proj.weight"), heads("v_proj.weight")
            s = jnp.where(causal, q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd), -jnp.inf)
            a = jax.nn.softmax(s, axis=-1)
            x = x + (a @ v).transpose(0, 2, 1, 3).reshape(b, t, nh * hd) @ p[pre + "o_proj.weight"].T
        return x @ p["lm_head.weight"].T

    def token_nll(p, ids):
        lp = jax.nn.log_softmax(logits_of(p, ids[:, :-1]), axis=-1)
        return -jnp.take_along_axis(lp, ids[:, 1:, None], axis=-1)[..., 0]

    def loss(p, ids):
        return token_nll(p, ids).mean()

    opt = optax.adam(cfg.learning_rate)

    @jax.jit
    def update(p, state, ids):
        value, grads = jax.value_and_grad(loss)(p, ids)
        upd, state = opt.update(grads, state, p)
        return optax.apply_updates(p, upd), state, value

    @jax.jit
    def evaluate(p, ids, first, second):
        nll = token_nll(p, ids)
        return nll.mean(), (nll * first).sum() / first.sum(), (nll * second).sum() / second.sum()

    return update, evaluate, opt


def prepare_out_dir(cfg: LabConfig, out_dir: str | Path) -> Path:
    """Validate ``cfg`` and check the run folder before any work: writable, and no checkpoints of other settings.

    Returns:
        the folder as an absolute path.

    Raises:
        InputError: see :func:`train`.
    """
    from ..inspector.report import check_out_dir

    cfg.validate()
    out = check_out_dir(out_dir, suffix=".lab")
    check_existing(out / "checkpoints", cfg)
    return out


def train(cfg: LabConfig, out_dir: str | Path, *, on_step: Callable[[int, float], None] | None = None) -> LabRun:
    """Train from scratch and write a checkpoint at step 0, every ``checkpoint_every`` steps and at the end.

    Args:
        cfg: settings (validated here).
        out_dir: the run folder; checkpoints go to ``out_dir/checkpoints/``. Checked before training.
        on_step: called after every update with ``(step, training loss)`` (a progress bar).

    Returns:
        :class:`LabRun`.

    Raises:
        InputError: invalid settings; ``out_dir`` not a writable folder; checkpoints of other settings
            already in it.
    """
    import jax.numpy as jnp

    t_start = time.perf_counter()
    out = prepare_out_dir(cfg, out_dir)
    ckpt_dir = out / "checkpoints"
    update, evaluate, opt = _functions(cfg)
    params = {k: jnp.asarray(v) for k, v in init_params(cfg).items()}
    state = opt.init(params)
    data_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0]))
    ev = repeated_runs(np.random.default_rng(np.random.SeedSequence([cfg.seed, 1])), cfg, EVAL_SEQUENCES)
    ev = tuple(jnp.asarray(a) for a in ev)
    run = LabRun(cfg=cfg, out_dir=out)
    losses = np.zeros(cfg.steps, dtype=np.float32)
    t_ckpt = 0.0
    t_compile = 0.0
    last_ckpt = 0

    def checkpoint(step: int) -> None:
        nonlocal t_ckpt, last_ckpt
        t0 = time.perf_counter()
        weights = {k: np.asarray(v) for k, v in params.items()}
        mean, first, second = (float(x) for x in evaluate(params, *ev))
        lo = {"loss": mean, "first_copy_loss": first, "second_copy_loss": second}
        if step > 0:
            lo["train_loss"] = float(np.mean(losses[last_ckpt:step], dtype=np.float64))
        probe = probe_heads(LabForward(cfg, weights), half_length=cfg.probe_half_length)
        path = write_checkpoint(ckpt_dir / checkpoint_name(step), weights, checkpoint_metadata(cfg, step, lo, probe))
        run.checkpoints.append(Checkpoint(step=step, path=path, losses=lo, probe=probe))
        last_ckpt = step
        t_ckpt += time.perf_counter() - t0

    checkpoint(0)
    t_train0, t_ckpt0 = time.perf_counter(), t_ckpt
    for step in range(1, cfg.steps + 1):
        ids, _, _ = repeated_runs(data_rng, cfg, cfg.batch_size)
        t0 = time.perf_counter()
        params, state, value = update(params, state, jnp.asarray(ids))
        losses[step - 1] = value = float(value)  # also waits for the update: the timing is real
        if step == 1:
            t_compile = time.perf_counter() - t0
        if on_step is not None:
            on_step(step, value)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            checkpoint(step)
    t_end = time.perf_counter()
    run.train_losses = losses
    run.timings = {"train": t_end - t_train0 - (t_ckpt - t_ckpt0), "compile": t_compile,
                   "checkpoints": t_ckpt, "total": t_end - t_start}
    return run
