"""RAG-Fusion: the LLM rewrites the question into a few search queries; each is retrieved and all lists are
fused with Reciprocal Rank Fusion (kb.retrieve does the fusing, kb.answer.asker decides when).

Small models return junk often enough that the parsing is defensive: numbering, bullets, quotes and
preambles are stripped; empty, duplicate, overlong and echoed lines are dropped, and so are lines that answer
instead of asking (a figure or an address the question lacks); no usable line means the original question alone.
One variant is the question translated into the other of our two languages (its own request: small models
translate reliably only when that is the whole task), which is what lets an English question find a Chinese
passage, and the reverse, when the embedding model alone does not.
"""

from __future__ import annotations

import re
import time
from typing import Sequence

from kb.text import LANGUAGE_NAME, question_language

MAX_VARIANT_CHARS = 200
_PREFIX = re.compile(r"^\s*(?:[-*•·]+|\(?\d{1,2}[.)、:：]|\(?[a-zA-Z][.)]|(?:query|variant|查询|问题)\s*\d*\s*[:：])\s*",
                     re.IGNORECASE)
_PREAMBLE = re.compile(r"^(?:here (?:are|is)|sure|certainly|okay|ok\b|the following|以下是|好的|当然)", re.IGNORECASE)
# words of our own instructions: a line holding them is the model echoing the prompt, not a query
_ECHO = re.compile(r"search quer|reworded|translated into|translate into|the question|key terms|synonyms|简体中文",
                   re.IGNORECASE)
_QUOTES = "\"'“”‘’「」『』`"


def variants_prompt(question: str, n: int) -> list[dict]:
    """Ask for `n` rewordings in the question's own language."""
    own = LANGUAGE_NAME[question_language(question)]
    system = ("You write search queries for a document search engine. Reply with the queries only, one per line, "
              "with no numbering and no explanations.")
    user = (f"Write {n} different search queries in {own} that would find passages answering this question. "
            f"Use other words and synonyms than the question does.\n\nQuestion: {question}")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def translation_prompt(question: str) -> list[dict]:
    """Ask for the question in the other of our two languages: small models translate far more reliably when
    that is the whole task than when it is one item of a list. Asked to "translate into English" only, Qwen 1.5B
    answered 13 of the 78 sample_docs questions instead, with invented figures ("The warranty period for QF-300
    is 1 year."); told that it translates questions and never answers them, none of those 13 (stop 18)."""
    other = LANGUAGE_NAME["en" if question_language(question) == "zh" else "zh"]
    return [{"role": "system", "content": "You are a translator. You translate questions; you never answer them. "
                                          "Reply with the translated question only, on one line."},
            {"role": "user", "content": f"Translate this question into {other}:\n{question}"}]


def _normalise(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def parse_variants(text: str, question: str, n: int) -> list[str]:
    """The usable query lines of an LLM reply, at most `n`, never the question itself."""
    seen = {_normalise(question)}
    limit = max(MAX_VARIANT_CHARS, 3 * len(question))
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        for _ in range(2):  # "1. - query" and similar double prefixes
            line = _PREFIX.sub("", line, count=1).strip()
        line = line.strip(_QUOTES).strip()
        if not line or len(line) > limit or _PREAMBLE.match(line) or _ECHO.search(line) \
                or line.endswith((":", "：")):
            continue
        key = _normalise(line)
        if len(key) < 2 or key in seen:
            continue
        seen.add(key)
        out.append(line)
        if len(out) == n:
            break
    return out


# a figure standing alone (not part of a code such as CO2, QF-300 or 4.2.0's neighbours), in either language
_FIGURE = re.compile(r"(?<![A-Za-z0-9.\-])\d+(?:[.,:/]\d+)*(?![A-Za-z0-9\-])")


_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|https?://\S+|www\.\S+", re.IGNORECASE)


def answers_instead(line: str, question: str) -> bool:
    """Whether a rewording is an answer, often invented, rather than a query: it adds a figure, an e-mail address
    or a web address the question does not have. Asked "Which email address handles QF-300 support requests?",
    Qwen 1.5B's rewordings were "Email address for QF-300 support requests is qf300support@company.com." and
    "Support email for QF-300 is support@company.com.": searched, they look for the invented address."""
    return bool(set(_FIGURE.findall(line)) - set(_FIGURE.findall(question))
                or set(_ADDRESS.findall(line)) - set(_ADDRESS.findall(question)))


def parse_translation(text: str, question: str) -> str | None:
    """The first usable line of a translation reply, if it is in the other language and adds no figure the
    question does not have (a reply that does is an answer, often invented, not the question: searched, it
    would look for the invented figure)."""
    target = "en" if question_language(question) == "zh" else "zh"
    asked = set(_FIGURE.findall(question))
    for line in parse_variants(text, question, 3):
        if question_language(line) == target:
            return None if set(_FIGURE.findall(line)) - asked else line
    return None


def translate(llm, question: str) -> str | None:
    """The question in the other of our two languages (one short greedy call), or None when the reply is not
    usable."""
    return parse_translation(llm.chat(translation_prompt(question), max_tokens=96, temperature=0.0), question)


def translator(settings):
    """`translated(searcher, query)`: the configured LLM's translation of the query into the other language when
    part of the searcher's corpus is in it, else None (`kb search --translate`, `kb eval --mode
    hybrid+translate`). The LLM is loaded on the first query that needs it."""
    llm = []

    def translated(searcher, query: str) -> str | None:
        if not searcher.cross_language(query):
            return None
        if not llm:
            from kb.llm import load_llm

            llm.append(load_llm(settings))
        return translate(llm[0], query)

    return translated


def generate_variants(llm, question: str, n: int, max_tokens: int = 160, translated: str | None = None
                      ) -> tuple[list[str], float]:
    """(variants, milliseconds): n - 1 rewordings and the question in the other language (or as many of those
    as the model wrote usably; `translated` when the caller already has the translation). Greedy decoding: the
    same question gets the same variants."""
    if n <= 0:
        return [], 0.0
    t = time.perf_counter()
    out: list[str] = []
    if n > 1:
        reply = llm.chat(variants_prompt(question, n - 1), max_tokens=max_tokens, temperature=0.0)
        out = [v for v in parse_variants(reply, question, n - 1) if not answers_instead(v, question)]
    translated = translated or translate(llm, question)
    if translated and _normalise(translated) not in {_normalise(v) for v in out}:
        out.append(translated)
    return out, (time.perf_counter() - t) * 1000


def confident(hits: Sequence) -> bool:
    """Whether the first retrieval already found its answer, so RAG-Fusion would only cost time.

    The top hit must lead both the dense and the BM25 list (a chunk both retrievers put first); see
    docs/retrieval.md for how often that top hit is right, measured with `kb eval`.
    """
    if not hits:
        return False
    top = hits[0]
    return top.ranks.get("dense") == 1 and top.ranks.get("bm25") == 1
