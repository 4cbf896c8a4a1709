"""The selector's prompt: instruction, passages and question in the question's language, within the model's
context; and the text a candidate adds to the answer so far (what the selector scores)."""

from __future__ import annotations

from .. import text as T
from ..errors import InputError
from ..questions import analyze
from ..settings import ReasonerSettings

#: The selector's prompt in the question's language: (instruction, passages heading, question heading).
PROMPTS = {"en": ("Answer the question in one sentence, using only the passages.", "Passages", "Question"),
           "ru": ("Ответь на вопрос одним предложением, используя только фрагменты.", "Фрагменты", "Вопрос")}


def build_prompt(selector, question: str, passages, s: ReasonerSettings) -> tuple[str, list, list[str]]:
    """``(prompt, kept passages, dropped passage ids)``: the prompt in the question's language (:data:`PROMPTS`),
    formatted by ``selector.format_prompt``; the lowest-ranked passages are dropped first while it would not fit
    ``selector.n_ctx`` minus room for the answer (8 tokens per word of ``max_words + finish_sentence``, + 32).

    Raises:
        InputError: even with one passage the prompt does not fit (the question is too long).
    """
    kept = list(passages)
    dropped: list[str] = []
    lang = analyze(question).lang
    budget = getattr(selector, "n_ctx", 2048) - 8 * (s.max_words + s.finish_sentence) - 32
    while True:
        body = "\n".join(f"[{i + 1}] {p.text[: s.max_passage_chars]}" for i, p in enumerate(kept))
        instruction, passages_h, question_h = PROMPTS.get(lang, PROMPTS["en"])
        prompt = selector.format_prompt(instruction, f"{passages_h}:\n{body}\n\n{question_h}: {question}")
        if selector.count_tokens(prompt) <= budget or len(kept) <= 1:
            break
        dropped.append(kept.pop().id)
    if selector.count_tokens(prompt) > budget:
        raise InputError(f"the question is too long: with one passage the prompt needs "
                         f"{selector.count_tokens(prompt)} tokens but the model context allows {budget}; "
                         "shorten the question (in a flow, raising the LLM Selector node's Context Length also helps)")
    return prompt, kept, dropped


def continuation(answer_words: list[str], words: tuple[str, ...]) -> str:
    """The text ``words`` add after ``answer_words`` (with the spaces :func:`overlay_core.text.continuation`
    puts before each word)."""
    prev = list(answer_words)
    out = []
    for w in words:
        out.append(T.continuation(prev, w))
        prev.append(w)
    return "".join(out)
