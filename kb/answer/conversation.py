"""Conversation memory for `kb shell`: the recent turns, and a follow-up ("and what about the second one?",
"那第二个呢？") rewritten into a standalone question before it is retrieved.

The LLM does the rewriting (a short greedy chat over the last few turns, each clipped to a token budget so the
prompt fits the context). Small models often reply with something other than a question, so the reply is
parsed defensively: an empty, overlong, multi-line, refusing or echoing reply is not used, and the search falls
back to the previous question followed by the current one. No terminal code here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from kb.answer.grounding import is_decline
from kb.text import LANGUAGE_NAME, question_language

MAX_TURNS = 3  # turns shown to the model
QUESTION_TOKENS = 96  # each earlier question is clipped to this many tokens in the prompt
ANSWER_TOKENS = 160  # each earlier answer, likewise
REWRITE_TOKENS = 64  # the longest rewrite the model may write
MAX_REWRITE_CHARS = 300  # a longer reply is not a question (unless the fallback itself is longer)

_LABEL = re.compile(r"^\s*(?:(?:the\s+)?(?:standalone|rewritten|reformulated)\s+question|question|user|"
                    r"独立问题|改写后的问题|问题)\s*[:：]\s*", re.IGNORECASE)
_REFUSAL = re.compile(r"^\W*(?:i'?m sorry|sorry\b|i (?:cannot|can'?t|am unable|won'?t)|as an ai\b|unfortunately"
                      r"|抱歉|对不起|我无法|我不能)", re.IGNORECASE)
_ANSWERING = re.compile(r"^\s*(?:assistant|answer|回答|答)\s*[:：]", re.IGNORECASE)
# A standalone question ends with a question mark or starts like one (or like a request); a reply that does
# neither is usually the model answering instead of rewriting.
_QUESTION_START = re.compile(r"^(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|"
                             r"could|should|must|may|will|would|has|have|list|name|tell|explain|describe|show|give|"
                             r"find|compare)\b", re.IGNORECASE)
_ZH_QUESTION = re.compile(r"[吗呢么]|什么|哪|多少|多久|多长|几|怎|如何|为何|为什么|是否|请")
_CITATION = re.compile(r"\s*\[\d+\]")
_QUOTES = "\"'“”‘’「」『』`*"


@dataclass
class Turn:
    question: str  # as the user typed it
    standalone: str  # what was retrieved and answered
    answer: str


@dataclass
class Rewrite:
    question: str  # the standalone question to retrieve and answer
    fallback: bool = False  # the model's reply was unusable: previous question + this one


_SYSTEM = ("You rewrite a follow-up question from a conversation into one standalone question that can be understood "
           "without the conversation. Replace words like \"it\", \"they\", \"that one\", \"the second one\", "
           "\"它\", \"那个\" with what they refer to. Do not answer the question. Reply with the rewritten question "
           "only, on one line.\n"
           "Example: after \"What are the two pumps of the X-9?\" answered \"The P1 and the P2.\", the follow-up "
           "\"how heavy is the second one?\" becomes \"How heavy is the P2 pump of the X-9?\"")
TEMPLATE_TOKENS = 32  # chat-template tokens around the messages, and rounding


def condense_prompt(turns: list[Turn], question: str, count_tokens: Callable[[str], int] | None = None,
                    n_ctx: int | None = None) -> list[dict]:
    """The chat messages that ask for `question` rewritten as a standalone question, given `turns`. Each turn is
    clipped to QUESTION_TOKENS + ANSWER_TOKENS, less when that would not fit `n_ctx`."""
    lang = question_language(question)

    def messages(lines: list[str]) -> list[dict]:
        user = ("Conversation:\n" + "\n".join(lines) + f"\n\nFollow-up question: {question}\n\n"
                f"Write the follow-up as a standalone question in {LANGUAGE_NAME[lang]}.")
        return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]

    q_budget, a_budget = QUESTION_TOKENS, ANSWER_TOKENS
    if n_ctx and turns:
        count = count_tokens or _approx_tokens
        base = sum(count(m["content"]) for m in messages([])) + TEMPLATE_TOKENS + REWRITE_TOKENS
        room = (n_ctx - base) // len(turns) - 8  # 8: the "User: " and "Assistant: " labels
        if room < q_budget + a_budget:
            scale = max(room, 16) / (q_budget + a_budget)
            q_budget, a_budget = max(int(q_budget * scale), 4), max(int(a_budget * scale), 4)
    lines = []
    for t in turns:
        lines.append(f"User: {clip(t.standalone, q_budget, count_tokens)}")
        lines.append(f"Assistant: {clip(_CITATION.sub('', t.answer), a_budget, count_tokens)}")
    return messages(lines)


def _approx_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def clip(text: str, budget: int, count_tokens: Callable[[str], int] | None = None) -> str:
    """`text` on one line, cut to at most `budget` tokens (about four characters a token without a tokenizer)."""
    text = " ".join(text.split())
    count = count_tokens or _approx_tokens
    if count(text) <= budget:
        return text
    lo, hi = 0, len(text)  # the longest prefix within budget, by bisection
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= budget - 1:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


def _normalise(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def parse_rewrite(reply: str, question: str, turns: list[Turn]) -> str | None:
    """The standalone question in the model's reply, or None when the reply is not one."""
    lines = [ln.strip() for ln in reply.strip().splitlines() if ln.strip()]
    while lines and not _LABEL.sub("", lines[0]).strip(_QUOTES + " "):
        lines.pop(0)  # a label alone on its line ("Standalone question:") before the question
    if not lines or _ANSWERING.match(lines[0]):
        return None
    text = _LABEL.sub("", lines[0], count=1).strip().strip(_QUOTES).strip()
    if len(lines) > 1 and not text.endswith(("?", "？")):
        return None  # several lines and the first is not a question: junk
    fallback = _fallback(question, turns)
    if not text or len(text) > max(MAX_REWRITE_CHARS, 2 * len(fallback)):
        return None
    if _REFUSAL.match(text) or is_decline(text):
        return None
    if not (text.endswith(("?", "？")) or _QUESTION_START.match(text) or _ZH_QUESTION.search(text)):
        return None  # a statement: the model answered instead of rewriting
    key = _normalise(text)
    if not key or any(key == _normalise(t.answer) or key == _normalise(t.standalone) for t in turns):
        return None  # the model repeated an earlier answer or question instead of rewriting this one
    return text


def _fallback(question: str, turns: list[Turn]) -> str:
    return f"{turns[-1].standalone} {question}" if turns else question


@dataclass
class Conversation:
    """The turns of one shell session, newest last."""

    max_turns: int = MAX_TURNS
    turns: list[Turn] = field(default_factory=list)

    def add(self, question: str, standalone: str, answer: str) -> None:
        self.turns.append(Turn(question, standalone, answer))
        del self.turns[:-self.max_turns]

    def clear(self) -> None:
        self.turns.clear()

    def standalone(self, question: str, llm) -> Rewrite:
        """`question` rewritten with the recent turns (unchanged when there are none; `llm` is then not used).
        `llm` needs `chat(messages, max_tokens, temperature)`; `count_tokens` is used when it has one."""
        if not self.turns:
            return Rewrite(question)
        messages = condense_prompt(self.turns, question, getattr(llm, "count_tokens", None),
                                   getattr(llm, "n_ctx", None))
        try:
            reply = llm.chat(messages, max_tokens=REWRITE_TOKENS, temperature=0.0)
        except ValueError:  # the prompt does not fit (a tiny context window): no rewrite
            reply = ""
        text = parse_rewrite(reply, question, self.turns)
        if text is None:
            return Rewrite(_fallback(question, self.turns), fallback=True)
        return Rewrite(text)
