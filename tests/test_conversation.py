"""kb.answer.conversation: the condense prompt, parsing the rewrite, and the fallback, with a scripted LLM."""

from __future__ import annotations

import re

import pytest

from kb.answer.conversation import (
    ANSWER_TOKENS,
    MAX_TURNS,
    REWRITE_TOKENS,
    Conversation,
    clip,
    condense_prompt,
    parse_rewrite,
)


class RewritingLLM:
    """Replies to every chat with the next scripted text and records what it was asked."""

    def __init__(self, *replies: str, n_ctx: int = 4096):
        self.replies = list(replies)
        self.n_ctx = n_ctx
        self.calls: list[dict] = []

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"\w+|[^\w\s]", text))

    def chat(self, messages, max_tokens, temperature=0.1, stop=None):
        self.calls.append({"messages": messages, "max_tokens": max_tokens, "temperature": temperature})
        return self.replies.pop(0)


def talk(*turns: tuple[str, str]) -> Conversation:
    c = Conversation()
    for question, answer in turns:
        c.add(question, question, answer)
    return c


ERRORS = ("Which error codes does the service manual list?",
          "E-214 means the stir motor stalled [1]. E-305 means the CO2 sensor drifted [2].")


def test_the_first_question_is_not_rewritten_and_the_llm_is_not_touched():
    rewrite = Conversation().standalone("What is the warranty?", llm=None)
    assert rewrite.question == "What is the warranty?" and not rewrite.fallback


def test_a_follow_up_is_rewritten_by_a_short_greedy_chat_over_the_recent_turns():
    llm = RewritingLLM("What does error code E-305 mean?")
    rewrite = talk(ERRORS).standalone("and what about the second one?", llm)
    assert rewrite.question == "What does error code E-305 mean?" and not rewrite.fallback
    call = llm.calls[0]
    assert call["temperature"] == 0.0 and call["max_tokens"] == REWRITE_TOKENS
    system, user = (m["content"] for m in call["messages"])
    assert "standalone question" in system and "Do not answer" in system
    assert f"User: {ERRORS[0]}" in user
    assert "Assistant: E-214 means the stir motor stalled. E-305" in user  # citation markers dropped
    assert "Follow-up question: and what about the second one?" in user and "in English" in user


def test_a_chinese_follow_up_asks_for_a_chinese_rewrite():
    llm = RewritingLLM("错误代码 E-305 表示什么？")
    rewrite = talk(("维修手册列出了哪些错误代码？", "E-214 表示搅拌电机堵转，E-305 表示二氧化碳传感器漂移。")) \
        .standalone("那第二个呢？", llm)
    assert rewrite.question == "错误代码 E-305 表示什么？"
    assert "Chinese" in llm.calls[0]["messages"][1]["content"]


def test_only_the_last_turns_are_kept_and_each_is_clipped():
    c = Conversation()
    for i in range(MAX_TURNS + 2):
        c.add(f"question {i}?", f"standalone question {i}?", f"answer {i} " + "word " * 1000)
    assert [t.question for t in c.turns] == [f"question {i}?" for i in range(2, MAX_TURNS + 2)]
    llm = RewritingLLM("What is it?")
    c.standalone("and it?", llm)
    user = llm.calls[0]["messages"][1]["content"]
    assert "standalone question 1?" not in user and "standalone question 2?" in user
    answers = [ln for ln in user.splitlines() if ln.startswith("Assistant: ")]
    assert len(answers) == MAX_TURNS
    assert all(ln.endswith("…") and llm.count_tokens(ln) <= ANSWER_TOKENS + 4 for ln in answers)


def test_turns_shrink_to_fit_a_small_context():
    c = talk(*[(f"question {i} " + "long " * 200, "answer " * 500) for i in range(3)])
    llm = RewritingLLM()
    big = condense_prompt(c.turns, "and then?", llm.count_tokens, n_ctx=4096)
    small = condense_prompt(c.turns, "and then?", llm.count_tokens, n_ctx=600)
    tokens = [sum(llm.count_tokens(m["content"]) for m in p) for p in (big, small)]
    assert tokens[1] < tokens[0] and tokens[1] + REWRITE_TOKENS < 600


def test_clip():
    assert clip("  short\n text ", 10) == "short text"
    clipped = clip("word " * 100, 10, lambda s: len(s.split()))
    assert clipped.endswith("…") and len(clipped[:-1].split()) <= 9


@pytest.mark.parametrize("reply", [
    "",
    "   \n  ",
    "I'm sorry, I cannot help with that.",
    "抱歉，我无法回答。",
    "The documents don't say.",
    "E-305 means the CO2 sensor drifted.",  # an answer, not a question
    "Assistant: E-305 is sensor drift.",
    "Here is the rewrite\nWhat does E-305 mean?\nIt asks about the second code.",  # multi-line junk
    "What " + "very " * 200 + "long question?",  # overlong
    "Which error codes does the service manual list?",  # the previous question echoed
])
def test_an_unusable_rewrite_falls_back_to_the_previous_question_plus_this_one(reply):
    rewrite = talk(ERRORS).standalone("and what about the second one?", RewritingLLM(reply))
    assert rewrite.fallback
    assert rewrite.question == f"{ERRORS[0]} and what about the second one?"


@pytest.mark.parametrize("reply, expected", [
    ("Standalone question: What does E-305 mean?", "What does E-305 mean?"),
    ("Standalone question:\n\"What does E-305 mean?\"", "What does E-305 mean?"),
    ("What does E-305 mean?\n\nThis asks about the second code.", "What does E-305 mean?"),
    ("独立问题：E-305 是什么意思？", "E-305 是什么意思？"),
    ("Explain error code E-305", "Explain error code E-305"),
])
def test_a_usable_rewrite_is_cleaned(reply, expected):
    assert parse_rewrite(reply, "and the second one?", talk(ERRORS).turns) == expected


def test_a_prompt_that_does_not_fit_falls_back():
    class TooLong(RewritingLLM):
        def chat(self, *a, **k):
            raise ValueError("the prompt has 9000 tokens; the context window holds 4096")

    rewrite = talk(ERRORS).standalone("and the second one?", TooLong())
    assert rewrite.fallback and rewrite.question.endswith("and the second one?")


def test_clear_forgets_the_turns():
    c = talk(ERRORS)
    c.clear()
    assert c.turns == [] and c.standalone("and the second one?", llm=None).question == "and the second one?"
