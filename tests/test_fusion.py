"""RAG-Fusion: defensive parsing of the LLM's query variants, the prompt, and when fusion is skipped."""

from __future__ import annotations

from kb.fusion import confident, generate_variants, parse_variants, variants_prompt
from kb.retrieve import Hit

Q = "How long must the instrument warm up before calibration?"


def test_parse_strips_numbering_bullets_quotes_and_preambles():
    reply = ("Here are 3 search queries:\n"
             "1. instrument warm-up time before sensor calibration\n"
             "2) \"QF-300 warm up duration\"\n"
             "- 校准前预热多长时间\n"
             "* Query 4: extra one beyond n\n")
    assert parse_variants(reply, Q, 3) == ["instrument warm-up time before sensor calibration",
                                           "QF-300 warm up duration", "校准前预热多长时间"]


def test_parse_drops_echo_duplicates_empty_and_overlong_lines():
    reply = "\n".join([
        "",
        Q,  # the question itself
        Q.upper().rstrip("?"),  # still the question
        "warm-up time calibration",
        "Warm-up time, calibration!",  # a duplicate once punctuation and case are ignored
        "x" * 400,  # rambling
        "Queries:",
        "？",
    ])
    assert parse_variants(reply, Q, 5) == ["warm-up time calibration"]


def test_parse_junk_gives_nothing():
    assert parse_variants("", Q, 3) == []
    assert parse_variants("Sure! Here you go:\n\n", Q, 3) == []


def test_prompt_asks_for_the_other_language():
    en = variants_prompt(Q, 3)[1]["content"]
    assert "2 in English and 1 in Chinese" in en and Q in en
    zh = variants_prompt("预热需要多长时间？", 3)[1]["content"]
    assert "2 in Chinese (简体中文) and 1 in English" in zh


class _ScriptedLLM:
    def __init__(self, reply: str):
        self.reply = reply
        self.calls = []

    def chat(self, messages, max_tokens, temperature=0.1, stop=None):
        self.calls.append((messages, max_tokens, temperature))
        return self.reply


def test_generate_variants_is_greedy_and_parses():
    llm = _ScriptedLLM("1. warm up duration\n2. 预热时间\n3. calibration delay after power on")
    variants, ms = generate_variants(llm, Q, 2)
    assert variants == ["warm up duration", "预热时间"] and ms >= 0
    assert llm.calls[0][2] == 0.0
    assert generate_variants(llm, Q, 0) == ([], 0.0)


def test_confident_needs_both_lists_to_agree_on_the_top_hit():
    def hit(**ranks):
        h = Hit(chunk_id=1, score=1.0)
        h.ranks = ranks
        return h

    assert confident([hit(dense=1, bm25=1)])
    assert not confident([hit(dense=1, bm25=2)])
    assert not confident([hit(dense=1)])
    assert not confident([])
