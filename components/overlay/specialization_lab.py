"""Specialization Lab node: train a tiny attention-only transformer and watch its heads specialize.

Delegates to ``overlay_core.lab`` (the same code as ``overlay lab``): JAX training on CPU, a labelled
.safetensors checkpoint every N steps, the SafeTensors Inspector's probes on every checkpoint, and a report
saying where the induction head's specialization is written in the file.
"""

from dataclasses import replace

from lfx.custom.custom_component.component import Component
from lfx.io import BoolInput, FloatInput, IntInput, Output, StrInput
from lfx.schema.dataframe import DataFrame
from lfx.schema.message import Message

from overlay_core.errors import OverlayError
from overlay_core.knowledge import state_paths
from overlay_core.lab import LabConfig, run_lab
from overlay_core.lab.cli import QUICK, run_name
from overlay_core.node_base import OverlayNode


class OverlaySpecializationLab(OverlayNode, Component):
    display_name = "Specialization Lab"
    description = ("Trains a 2-layer attention-only transformer from random weights on repeated random tokens (CPU, "
                   "about a minute), writes labelled .safetensors checkpoints, probes every head with the inspector "
                   "and reports when the induction head forms and which bytes of the file changed.")
    icon = "flask-conical"
    name = "OverlaySpecializationLab"

    inputs = [
        IntInput(name="steps", display_name="Steps", value=LabConfig.steps, info="Optimizer steps."),
        IntInput(name="n_layers", display_name="Layers", value=LabConfig.n_layers, info="Attention layers (no MLP)."),
        IntInput(name="n_heads", display_name="Heads", value=LabConfig.n_heads,
                 info="Heads per layer; must divide d_model."),
        IntInput(name="d_model", display_name="d_model", value=LabConfig.d_model, info="Residual stream width."),
        IntInput(name="seq_len", display_name="Sequence Length", value=LabConfig.seq_len,
                 info="Tokens per training sequence, BOS included."),
        IntInput(name="seed", display_name="Seed", value=LabConfig.seed,
                 info="Seed of the initialization and the data: the same seed writes identical checkpoints."),
        IntInput(name="checkpoint_every", display_name="Checkpoint Every", value=LabConfig.checkpoint_every,
                 info="Write a labelled checkpoint every N steps (and at step 0 and the end).", advanced=True),
        FloatInput(name="learning_rate", display_name="Learning Rate", value=LabConfig.learning_rate,
                   info="Adam step size.", advanced=True),
        BoolInput(name="quick", display_name="Quick", value=False, advanced=True,
                  info="A tiny configuration that runs in seconds (too short for an induction head); keeps the seed."),
        StrInput(name="out_dir", display_name="Run Folder", value="", advanced=True,
                 info="Where checkpoints and report go; empty = $OVERLAY_HOME/lab/<run name>/ (default ./.overlay)."),
    ]
    outputs = [
        Output(display_name="Report", name="report", method="build_report", group_outputs=True),
        Output(display_name="Checkpoints", name="checkpoints", method="build_checkpoints", group_outputs=True),
    ]

    def _run(self) -> dict:
        if getattr(self, "_summary", None) is None:
            fields = ("steps", "n_layers", "n_heads", "d_model", "seq_len", "seed", "checkpoint_every", "learning_rate")
            cfg = replace(LabConfig(), **{f: getattr(self, f) for f in fields})
            if self.quick:
                cfg = replace(cfg, **QUICK)
            out = self.out_dir or state_paths().home / "lab" / run_name(cfg)
            try:
                self._summary = run_lab(cfg.validate(), out)
            except OverlayError as exc:  # one line for the person (or API caller) who set the values
                raise ValueError(str(exc)) from None
            s = self._summary
            self.status = (f"induction {s['induction_score_max']:.2f} (step 0: {s['induction_score_step0']:.2f}), "
                           f"phase change at step {s['phase_change_step']}")
        return self._summary

    def build_report(self) -> Message:
        s = self._run()
        with open(s["report"]["report.md"], encoding="utf-8") as fh:
            text = fh.read()
        return Message(text=f"{text}\n\n**Files**: `{s['report']['report.html']}`, `{s['report']['lab_timeline.png']}`")

    def build_checkpoints(self) -> DataFrame:
        import json

        with open(self._run()["report"]["report.json"], encoding="utf-8") as fh:
            doc = json.load(fh)
        tl, best = doc["timeline"], doc["best_head"]
        return DataFrame([{"step": step, "loss": round(tl["loss"][i], 4), "first_copy_loss": round(tl["first_copy_loss"][i], 4),
                           "second_copy_loss": round(tl["second_copy_loss"][i], 4),
                           "induction_best_head": round(tl["scores"]["induction"][i][best["layer"]][best["head"]], 4),
                           "path": doc["checkpoints"][i]} for i, step in enumerate(tl["steps"])])
