"""The decisive part of a long question: a short need wrapped in a preamble and instructions ("We are preparing
a report… Please base your answer on the documentation and keep it short. Which key breaks long lines?").

`focus()` keeps the question's sentences that ask something and drops the instructions about the answer; the
retriever embeds that focus as one more dense query beside the whole question (docs/retrieval.md, "Questions
about long documents"). Short questions (one sentence, or few words) have no focus: they are searched as they are.

Standard library and kb.text only.
"""

from __future__ import annotations

import re

from kb.text import split_sentences, tokenize

# A question shorter than this (BM25 tokens) or of one sentence is its own focus.
MIN_TOKENS = 12

# Sentences that say how to answer, not what is asked: "Please base your answer on…", "Answer concisely.",
# "请基于官方文档回答", "不要猜测". One that starts like an instruction about the answer is one; one that starts
# as a request ("Please…", "请…") is one when it speaks of the answer, the sources or their form, so that
# "Please tell me ACME's revenue in 2017." stays the need.
_ABOUT_ANSWER = re.compile(
    r"^\W*(?:answer|respond|reply|cite|quote|base\s+your|use\s+only|only\s+use|be\s+(?:brief|concise|precise|"
    r"specific)|keep\s+(?:it|the\s+answer|your\s+answer)|think|reason|format|return|write\s+(?:the|your)\s+answer|"
    r"give\s+(?:the|your)\s+answer|if\s+(?:you|the\s+(?:documents?|documentation|context|answer)))\b|^\W*(?:回答时|答案|要求)",
    re.IGNORECASE)
_REQUEST = re.compile(r"^\W*(?:and\s+|also\s+|then\s+)?(?:please|kindly|pls|do\s+not|don'?t|never|make\s+sure|"
                      r"remember|note\s+that|i\s+(?:need|want|would\s+like)\s+you\s+to|请|务必|不要|切勿|尽量|注意|麻烦)",
                      re.IGNORECASE)
_ANSWER_WORDS = re.compile(
    r"answer|respon|repl(?:y|ies)|cit(?:e|ing|ation)|concise|brief|short|guess|invent|make\s+(?:anything|things)\s+up|"
    r"step\s+by\s+step|based?\s+on|documentation|documents?|sources?|context|format|english|chinese|sentences?|"
    r"words|pages?|examples?|回答|答案|引用|简要|简洁|猜测|编造|依据|根据|基于|文档|手册|资料|来源|出处|示例|步骤|解释",
    re.IGNORECASE)
_ASKS = re.compile(r"[?？]\W*$|^\W*(?:what|which|who|whom|whose|when|where|why|how|is|are|can|could|does|do|did|"
                   r"should|will|would|may)\b|\b(?:tell|show|give)\s+me\b|^\W*(?:please\s+)?(?:list|explain|"
                   r"describe|find|summari[sz]e|compare|calculate|compute)\b|(?:什么|哪|怎么|怎样|如何|为什么|为何|多少|"
                   r"几|是否|吗|呢)", re.IGNORECASE)


def is_instruction(sentence: str) -> bool:
    """A sentence about how to answer ("Please cite the page.", "请简要回答。"), not about what is asked."""
    s = sentence.strip()
    return bool(_ABOUT_ANSWER.match(s) or (_REQUEST.match(s) and _ANSWER_WORDS.search(s)))


def asks(sentence: str) -> bool:
    """A sentence that asks something: ends with a question mark, has a question word, or requests ("tell me…",
    "list…", "explain…")."""
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
