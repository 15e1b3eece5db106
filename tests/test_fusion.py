"""RAG-Fusion: defensive parsing of the LLM's query variants, the prompt, and when fusion is skipped."""

from __future__ import annotations

from kb.answer.fusion import (
    answers_instead,
    confident,
    generate_variants,
    parse_translation,
    parse_variants,
    translation_prompt,
    variants_prompt,
)
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


def test_prompts_ask_for_rewordings_in_the_own_language_and_a_translation():
    en = variants_prompt(Q, 2)[1]["content"]
    assert "2 different search queries in English" in en and Q in en
    assert "in Chinese (简体中文)" in variants_prompt("预热需要多长时间？", 2)[1]["content"]
    assert translation_prompt(Q)[1]["content"] == f"Translate this question into Chinese (简体中文):\n{Q}"
    assert translation_prompt("预热需要多长时间？")[1]["content"].startswith("Translate this question into English:")
    assert "never answer" in translation_prompt(Q)[0]["content"]


def test_echoed_instructions_are_not_queries():
    reply = "1. The question reworded in English\n2. The key terms and their synonyms\n3. warm-up duration"
    assert parse_variants(reply, Q, 3) == ["warm-up duration"]


def test_a_translation_must_be_in_the_other_language():
    assert parse_translation("仪器校准前需要预热多长时间？", Q) == "仪器校准前需要预热多长时间？"
    assert parse_translation("How long must it warm up?", Q) is None  # not translated
    assert parse_translation("When was firmware 4.2.0 released?", "固件 4.2.0 是哪天发布的？") == \
        "When was firmware 4.2.0 released?"
    # an answer with a figure the question does not have is not a translation (it would search for the figure)
    assert parse_translation("The firmware 4.2.0 was released in 2024.", "固件 4.2.0 是哪天发布的？") is None
    assert parse_translation("0于2019年8月发布。", "On what date was firmware 4.2.0 released?") is None
    assert parse_translation("QF-300 的保修期是 27 个月吗？", "Is the QF-300 warranty 27 months?") == \
        "QF-300 的保修期是 27 个月吗？"  # the question's own figures are kept, in either script
    assert parse_translation("What should the CO2 regulator be set to?", "二氧化碳减压阀应设定为多大压力？") == \
        "What should the CO2 regulator be set to?"  # a code is not a figure


class _ScriptedLLM:
    """Answers the rewording prompt and the translation prompt differently, as a model would."""

    def __init__(self, rewordings: str, translation: str):
        self.rewordings, self.translation = rewordings, translation
        self.calls = []

    def chat(self, messages, max_tokens, temperature=0.1, stop=None):
        self.calls.append((messages, max_tokens, temperature))
        return self.translation if messages[1]["content"].startswith("Translate") else self.rewordings


def test_generate_variants_rewords_translates_and_is_greedy():
    llm = _ScriptedLLM("1. warm up duration\n2. calibration delay after power on\n3. one too many", "预热时间")
    variants, ms = generate_variants(llm, Q, 3)
    assert variants == ["warm up duration", "calibration delay after power on", "预热时间"] and ms >= 0
    assert all(call[2] == 0.0 for call in llm.calls) and len(llm.calls) == 2
    assert generate_variants(llm, Q, 0) == ([], 0.0)
    only_translation = _ScriptedLLM("junk", "预热时间")
    assert generate_variants(only_translation, Q, 1)[0] == ["预热时间"] and len(only_translation.calls) == 1


def test_rewordings_that_answer_instead_of_asking_are_not_searched():
    # sample_docs q09: both rewordings answered with an invented address, searched for it
    q = "Which email address handles QF-300 support requests?"
    translation = "哪个邮箱处理 QF-300 的支持请求？"
    llm = _ScriptedLLM("Email address for QF-300 support requests is qf300support@company.com.\n"
                       "QF-300 technical support contact\nSee https://example.com/support", translation)
    assert generate_variants(llm, q, 4)[0] == ["QF-300 technical support contact", translation]
    assert answers_instead("The instrument warms up for 15 minutes", Q)  # a figure the question lacks
    assert not answers_instead("warm-up time of the QF-300 before calibration", Q)  # a code is not a figure
    assert not answers_instead("Is the warranty 27 months long?", "Is the QF-300 warranty 27 months?")
    assert not answers_instead("support mailbox qf@orrery.example", "Who reads qf@orrery.example?")


def test_confident_needs_both_lists_to_agree_on_the_top_hit():
    def hit(**ranks):
        h = Hit(chunk_id=1, score=1.0)
        h.ranks = ranks
        return h

    assert confident([hit(dense=1, bm25=1)])
    assert not confident([hit(dense=1, bm25=2)])
    assert not confident([hit(dense=1)])
    assert not confident([])
