"""Stages named by plain data, as the LangFlow stage nodes give them: a :class:`SourceSpec` or :class:`GuardSpec`
says which stage (``stage``), the name the trace shows for it (``name``) and its words (glossary terms, banned
words, the required term); :func:`build_sources` / :func:`build_guards` make the stage objects in the loop's
order, whatever order the nodes were connected in. A :class:`FeatureSpec` is one feature of the score and its
weight; :func:`weights_from_features` makes the :class:`~overlay_core.accumulator.ScoreWeights` of a set of them
(a feature not given counts 0)."""

from __future__ import annotations

from dataclasses import dataclass

from ..accumulator import ScoreWeights
from ..errors import InputError
from ..settings import specs as setting_specs
from . import guards as G
from . import sources as S

#: Candidate sources in the loop's order: stage -> (description for people, needs words).
SOURCES = {
    "corpus": ("successors of the last word(s) in the whole corpus (the adjacency table)", False),
    "passage": ("words and spans that follow the answer's last word(s) inside the retrieved passages", False),
    "passage-start": ("the opening of each passage's definition, at the first step of a definition", False),
    "answer-span": ("spans of the passage sentences that bear on the question, at the first step", False),
    "glossary": ("your own terms, proposed at every step", True),
    "after-yes-no": ("after 'Yes,'/'No,' keeps only openings of the sentences that bear on the question", False),
    "expert": ("words a reviewer added after the last word", False),
}
#: Guards in the loop's order: stage -> (description for people, needs words).
GUARDS = {
    "closing-quote": ("after a sentence ended inside a quote, only the closing quote may follow", False),
    "min-words": ("no sentence end before the minimum number of words", False),
    "sentence-inside-span": ("a multi-word span may end a sentence only with its last word", False),
    "repeated-ngram": ("no word sequence (n-gram) twice in the answer", False),
    "keep-sentence": ("an answer copying a sentence that bears on the question finishes it", False),
    "ban-words": ("blocks candidates holding any of your banned words", True),
    "require-term": ("the answer may not end before it holds your term", True),
    "reviewer-rejections": ("stops when reviewers rejected every remaining candidate", False),
}

#: Features of the score in the formula's order: stage -> the :class:`ScoreWeights` field that weighs it (its
#: help is the feature's description).
FEATURES = {"adjacency": "w_adj", "passage-support": "w_ctx", "llm": "w_llm", "verdicts": "w_glob",
            "relevance": "w_rel"}


def feature_help(stage: str) -> str:
    """One line on what feature ``stage`` measures (the help of its weight's declaration)."""
    field = FEATURES[stage]
    return next(s.help for s in setting_specs(ScoreWeights) if s.name == field)


@dataclass(frozen=True)
class SourceSpec:
    """A candidate source by name: ``stage`` (a key of :data:`SOURCES`), ``words`` (the glossary's terms) and, for
    a glossary, ``name``: the source the trace shows for its candidates (default ``"glossary"``; the built-in
    sources keep their stage name, which other stages read)."""

    stage: str
    name: str = ""
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class GuardSpec:
    """A guard by name: ``stage`` (a key of :data:`GUARDS`), ``words`` (the banned words, or the required term)
    and, for those two, ``name``: shown in the reasons of their blocks (default: ``stage``)."""

    stage: str
    name: str = ""
    words: tuple[str, ...] = ()


def _check(spec, table: dict, what: str) -> None:
    if spec.stage not in table:
        raise InputError(f"unknown {what} {spec.stage!r}; choose one of: {', '.join(table)}")
    if table[spec.stage][1] and not any(w.strip() for w in spec.words):
        raise InputError(f"the {what} {spec.name or spec.stage!r} needs words: type at least one (one per line)")


def _source(stage: str, words: tuple[str, ...], name: dict, table, accumulator):
    if stage == "corpus":
        return S.CorpusSuccessors(table)
    if stage == "expert":
        return S.ExpertEdges(accumulator)
    if stage == "glossary":
        return S.Glossary(words, **name)
    return {"passage": S.PassageSuccessors, "passage-start": S.DefinitionOpenings, "answer-span": S.AnswerSpans,
            "after-yes-no": S.AfterYesNo}[stage]()


def _guard(stage: str, words: tuple[str, ...], name: dict, accumulator):
    if stage == "reviewer-rejections":
        return G.ReviewerRejections(accumulator)
    if stage == "ban-words":
        return G.BanWords(words, **name)
    if stage == "require-term":
        return G.RequireTerm(" ".join(words), **name)
    return {"closing-quote": G.ClosingQuote, "min-words": G.MinWords, "sentence-inside-span": G.SentenceInsideSpan,
            "repeated-ngram": G.RepeatedNgram, "keep-sentence": G.KeepSentence}[stage]()


def _build(specs, table: dict, what: str, make) -> list:
    for spec in specs:
        _check(spec, table, what)
    out = []
    for spec in sorted(specs, key=lambda x: list(table).index(x.stage)):
        name = {"name": spec.name} if spec.name else {}
        out.append(make(spec.stage, tuple(w.strip() for w in spec.words if w.strip()), name))
    return out


def build_sources(specs, table, accumulator) -> list:
    """The candidate source objects of ``specs`` (:class:`SourceSpec`), in the loop's order (:data:`SOURCES`);
    ``table`` and ``accumulator`` feed the corpus and expert sources.

    Raises:
        InputError: an unknown stage, or a glossary without terms.
    """
    return _build(specs, SOURCES, "candidate source", lambda st, w, n: _source(st, w, n, table, accumulator))


def build_guards(specs, accumulator) -> list:
    """The guard objects of ``specs`` (:class:`GuardSpec`), in the loop's order (:data:`GUARDS`); ``accumulator``
    feeds the reviewer-rejections guard.

    Raises:
        InputError: an unknown stage, or a ban-words / require-term guard without words.
    """
    return _build(specs, GUARDS, "guard", lambda st, w, n: _guard(st, w, n, accumulator))


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of the score (``stage``, a key of :data:`FEATURES`) and its ``weight`` (float)."""

    stage: str
    weight: float


def weights_from_features(specs) -> ScoreWeights:
    """The :class:`ScoreWeights` of the features ``specs`` (:class:`FeatureSpec`): each one's weight, 0 for a feature
    not given (it no longer counts in the score).

    Raises:
        InputError: an unknown feature, the same feature twice, or a weight out of bounds (naming its field).
    """
    weights: dict[str, float] = {}
    for spec in specs:
        if spec.stage not in FEATURES:
            raise InputError(f"unknown feature {spec.stage!r}; choose one of: {', '.join(FEATURES)}")
        field = FEATURES[spec.stage]
        if field in weights:
            raise InputError(f"two Feature nodes give the weight of {spec.stage!r}; keep one")
        weights[field] = spec.weight
    return ScoreWeights(**{f: weights.get(f, 0.0) for f in FEATURES.values()})


def default_feature_specs() -> list[FeatureSpec]:
    """Today's features with their default weights (:class:`ScoreWeights` defaults)."""
    w = ScoreWeights()
    return [FeatureSpec(k, getattr(w, f)) for k, f in FEATURES.items()]


def default_source_specs() -> list[SourceSpec]:
    """Today's sources (every stage of :data:`SOURCES` that needs no words)."""
    return [SourceSpec(k) for k, (_, needs) in SOURCES.items() if not needs]


def default_guard_specs() -> list[GuardSpec]:
    """Today's guards (every stage of :data:`GUARDS` that needs no words)."""
    return [GuardSpec(k) for k, (_, needs) in GUARDS.items() if not needs]
