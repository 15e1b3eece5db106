"""Answering across languages by way of the sources' language: when the best passage the model will read is in
the other language than the question, the model answers the question's translation in the sources' language
(a small model reads and cites same-language sources far better: sample_docs, 0.92 cited same-language against
~0.3 across, issue 12), and its checked answer is then translated into the question's language.

What is decided here: whether to pivot (`pivot_language`), and the answer's translation (`translate_answer`):
its prompt, and the check that it kept the answer's figures and citation marks. The answering itself is the
Asker's.
"""

from __future__ import annotations

import re
from typing import Sequence

from kb.answer.grounding import figures
from kb.answer.types import Source
from kb.text import LANGUAGE_NAME, other_language, question_language, text_language

_MARK = re.compile(r"\s*\[(\d{1,3})\]")
_CODE = re.compile(r"[A-Za-z0-9]+(?:[-./][A-Za-z0-9]+)*")
SMALL_FIGURE = 12  # a translation may add a figure up to this (a month's number, a count written out in words)


def _marks(text: str) -> list[str]:
    return list(dict.fromkeys(_MARK.findall(text)))


def pivot_language(lang: str, sources: Sequence[Source]) -> str | None:
    """The best source's language when it is not the question's `lang`, else None (the model answers in the
    question's language directly). The best source decides, not the majority: over sample_docs' 78 cases with
    `translate` on, the expected place was in the other language for 22 of the 24 questions whose best source was,
    and for 18 of the 24 whose packed sources mostly were (docs/answering.md)."""
    return other_language(lang) if sources and text_language(sources[0].text) != lang else None


def answer_translation_prompt(text: str, lang: str) -> list[dict]:
    """Ask for an answer in `lang`, its figures, names, codes and [n] marks as they are."""
    return [{"role": "system", "content": "You are a translator. Reply with the translation only."},
            {"role": "user", "content": f"Translate this text into {LANGUAGE_NAME[lang]}. Keep every number, "
                                        f"name, code and citation mark such as [1] exactly as written.\n\n{text}"}]


def _codes(text: str) -> set[str]:
    """Latin-script codes and names with a digit or a capital inside (QF-300, OL-F-112, BL, LIMS): a translation
    into Chinese keeps them as they are."""
    return {t for t in _CODE.findall(text) if re.search("[A-Za-z]", t) and re.search(r"\d|[A-Z].*[A-Z]", t)}


def parse_answer_translation(reply: str, original: str, lang: str) -> str | None:
    """The translation of `original` if it is usable: in `lang`, with every figure and code of the original and
    no new figure but a small one (a month, a count written out: "14 March" → "3 月 14 日"). Its citation marks
    are the original's: when the translation moved or lost some, they are removed from it and the original's are
    put at its end (so a citation is never lost nor invented by the translator). Into English, the original's
    wording follows in brackets: this model turns Chinese names into English ones that are not theirs (沪澄科技
    → "Shanghai and Changjiang Technology"), and the reader must be able to see the name the source gives."""
    text = reply.strip().strip("\"“”「」").strip()
    bare, source = _MARK.sub(" ", text), _MARK.sub(" ", original)
    added = figures(bare) - figures(source)
    if not text or question_language(text) != lang or figures(source) - figures(bare) \
            or any(not f.isdigit() or int(f) > SMALL_FIGURE for f in added) or _codes(source) - _codes(bare):
        return None
    if set(_marks(text)) != set(_marks(original)):
        marks = "".join(f"[{n}]" for n in _marks(original))
        text = _MARK.sub("", text).rstrip() + (" " if lang == "en" else "") + marks
    if lang == "en":
        text += f"\n(Chinese: {' '.join(source.split())})"
    return text


def translate_answer(llm, text: str, lang: str, max_tokens: int) -> str | None:
    """`text` (a checked answer) in `lang`, or None when the model's translation is not usable."""
    reply = llm.chat(answer_translation_prompt(text, lang), max_tokens=max_tokens, temperature=0.0)
    return parse_answer_translation(reply, text, lang)
