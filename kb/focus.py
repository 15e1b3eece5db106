"""The decisive part of a long question: a short need wrapped in a preamble and instructions ("We are preparing
a report… Please base your answer on the documentation and keep it short. Which key breaks long lines?").

`focus()` keeps the question's sentences that ask something and drops the instructions about the answer; the
retriever embeds that focus as one more dense query beside the whole question (docs/retrieval.md, "Long
questions"). Short questions (one sentence, or few words) have no focus: they are searched as they are.

Standard library and kb.text only.
"""

from __future__ import annotations

import re

from kb.text import split_sentences, tokenize

# A question shorter than this (BM25 tokens) or of one sentence is its own focus.
MIN_TOKENS = 12

# Sentences that say how to answer, not what is asked: "Please base your answer on…", "Answer concisely.",
# "请基于官方文档回答", "不要猜测".
_INSTRUCTION_EN = re.compile(
    r"^\W*(?:and\s+|also\s+|then\s+)?(?:please|kindly|pls|answer|respond|reply|cite|quote|base|use\s+only|only\s+use"
    r"|do\s+not|don'?t|never|be\s+(?:brief|concise|precise|specific)|keep\s+(?:it|the\s+answer)|make\s+sure"
    r"|remember|note\s+that|think|reason|format|return|write\s+(?:the|your)|give\s+(?:the|your)\s+answer"
    r"|if\s+(?:you|the\s+(?:documents?|documentation|context|answer))|i\s+(?:need|want|would\s+like)\s+(?:you|an?\s+"
    r"(?:answer|short|concise|brief|detailed)))\b", re.IGNORECASE)
_INSTRUCTION_ZH = re.compile(r"^\W*(?:请|务必|不要|切勿|尽量|注意|回答时|答案|要求|以下|如果(?:文档|资料)|麻烦)")
_ASKS = re.compile(r"[?？]\W*$|^\W*(?:what|which|who|whom|whose|when|where|why|how|is|are|can|could|does|do|did|"
                   r"should|will|would|may)\b|(?:什么|哪|怎么|怎样|如何|为什么|为何|多少|几|是否|吗|呢)",
                   re.IGNORECASE)


def is_instruction(sentence: str) -> bool:
    """A sentence about how to answer ("Please cite the page.", "请简要回答。"), not about what is asked."""
    s = sentence.strip()
    return bool(_INSTRUCTION_EN.match(s) or _INSTRUCTION_ZH.match(s))


def asks(sentence: str) -> bool:
    """A sentence that asks something: ends with a question mark or has a question word."""
    return bool(_ASKS.search(sentence.strip()))


def focus(query: str) -> str | None:
    """The sentences of a long question that ask something and are not instructions, in order; None when the
    question is short (under MIN_TOKENS tokens or one sentence) or the focus would be the whole question."""
    if len(tokenize(query)) < MIN_TOKENS:
        return None
    sentences = [s for s in split_sentences(query) if s.strip()]
    if len(sentences) < 2:
        return None
    kept = [s for s in sentences if asks(s) and not is_instruction(s)]
    if not kept:
        kept = [s for s in sentences if not is_instruction(s)]
    if not kept or len(kept) == len(sentences):
        return None
    return " ".join(s.strip() for s in kept)
