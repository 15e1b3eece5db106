"""kb.text: sentence splitting and BM25 tokenisation (Chinese + English)."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest

from kb.text import (
    CHINESE_STOP_WORDS, ENGLISH_STOP_WORDS, american, filename_words, han_ratio, has_han, sentence_spans,
    split_sentences, tokenize, tokenize_many,
)

from conftest import REPO

_WS = re.compile(r"\s+")


def _assert_lossless(text: str) -> None:
    spans = sentence_spans(text)
    pieces = split_sentences(text)
    assert pieces == [text[a:b] for a, b in spans]
    pos = 0
    for a, b in spans:
        assert a >= pos and b > a
        assert text[pos:a].strip() == "", f"non-whitespace dropped: {text[pos:a]!r}"
        assert text[a:b] == text[a:b].strip()
        pos = b
    assert text[pos:].strip() == ""
    assert _WS.sub("", "".join(pieces)) == _WS.sub("", text)


# ---- sentences -----------------------------------------------------------------------------------


def test_chinese_sentences():
    text = "我们今天去公园。你呢？好！他说：“我不去。”然后走了……真的吗？！结束；再见"
    assert split_sentences(text) == [
        "我们今天去公园。", "你呢？", "好！", "他说：“我不去。”", "然后走了……", "真的吗？！", "结束；", "再见",
    ]
    assert split_sentences("「你好。」她说。（完）") == ["「你好。」", "她说。", "（完）"]
    # full-width ！？ and ASCII ! ? directly before Han
    assert split_sentences("是吗?好的!走吧") == ["是吗?", "好的!", "走吧"]


def test_english_abbreviations_decimals_versions():
    text = ("This is e.g. a test. See Fig. 3 for details. The value was 3.5 mg. Version 2.0.1 is out! "
            "Is it? Yes. Dr. Smith and J. R. Tolkien met in the U.S. yesterday. Then they left.")
    assert split_sentences(text) == [
        "This is e.g. a test.", "See Fig. 3 for details.", "The value was 3.5 mg.", "Version 2.0.1 is out!",
        "Is it?", "Yes.", "Dr. Smith and J. R. Tolkien met in the U.S. yesterday.", "Then they left.",
    ]
    # closing quotes and brackets stay with their sentence; no split before a lower-case word
    assert split_sentences('He said "Stop." Then (he left.) approx. five left.') == [
        'He said "Stop."', "Then (he left.) approx. five left.",
    ]
    assert split_sentences("Model X200.然后重置。") == ["Model X200.", "然后重置。"]


def test_newlines_are_hard_boundaries():
    text = "Steps:\n- open the lid\n- press reset\n\n1. wait\n2. done"
    assert split_sentences(text) == ["Steps:", "- open the lid", "- press reset", "1. wait", "2. done"]


def test_no_loss_examples():
    for text in [
        "", "   ", "One.", " \n  Lead. \n\n Trail.  \n", "a.b.c. D", "Hello world.他说?好的!end",
        "……！！？？", "。。。", "e.g.", "3.5.", "「」。", "x\r\ny\n\n\nz", "Wait... what? ok. fine",
    ]:
        _assert_lossless(text)


def test_no_loss_fuzz():
    rng = random.Random(7)
    alphabet = list("ab XY.!?。！？；…”」)\n\t3中文") + ["e.g.", "Fig.", "3.5", "U.S.", " ", "  "]
    for _ in range(500):
        _assert_lossless("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))))


def test_han_helpers():
    assert has_han("abc 中 def") and not has_han("abc def") and not has_han("")
    assert han_ratio("") == 0.0 and han_ratio("   ") == 0.0
    assert han_ratio("中文") == 1.0
    assert han_ratio("中文ab") == pytest.approx(0.5)
    assert han_ratio("中 a") == pytest.approx(0.5)  # whitespace not counted


# ---- tokens --------------------------------------------------------------------------------------


def test_rare_han_words():
    from kb.text import han_rare_words, han_subwords

    assert han_rare_words("异齿前肛鳗的体长是多少？")[0] == ("异齿", 0)
    assert ("举牌", 2) in han_rare_words("谁是举牌小人的创作者？")
    assert han_rare_words("这个国家的城市在哪里？") == []  # common words, question words
    assert han_rare_words("消毒时容器歧管要在溶液中浸泡多长时间？") == [("歧管", 5)]  # sample_docs q13: not 多长时间
    assert han_subwords("西藏地区") == ["西藏", "地区"] and han_subwords("异齿") == []


def test_mixed_query_matches_document():
    query = tokenize("如何重置 E-17 错误 on the Model X200?")
    assert {"重置", "错误", "model", "x200"} <= set(query)
    assert "the" not in query and "on" not in query
    for doc in ["在 Model X200 上出现 E-17 错误时，请重置设备。", "Model X200 出现E17错误：重置即可",
                "ＭＯＤＥＬ Ｘ２００：Ｅ－１７ 错误，如何重置"]:
        d = set(tokenize(doc))
        assert {"重置", "错误", "model", "x200", "e17"} <= d, doc


def test_hyphenated_codes_cross_match():
    assert tokenize("E-17") == ["e", "17", "e17"]
    assert tokenize("E17") == ["e17"]
    assert tokenize("e 17") == ["e", "17"]
    assert tokenize("COVID-19 and IL-6") == ["covid", "19", "covid19", "il", "6", "il6"]
    assert tokenize("well-known") == ["well", "known"]  # no digit: parts only


def test_stemming_and_stop_words():
    assert tokenize("running") == tokenize("runs") == tokenize("run") == ["run"]
    assert tokenize("The studies of the patient's treatments") == ["studi", "patient", "treatment"]
    assert tokenize("Running", stem=False) == ["running"]
    assert tokenize("the a an of") == []
    assert "the" in ENGLISH_STOP_WORDS and "的" in CHINESE_STOP_WORDS


def test_numbers_and_normalisation():
    assert tokenize("3.5 mg, version 2.0.1, 1,000 cells, pages 1,2") == [
        "3.5", "mg", "version", "2.0.1", "1000", "cell", "page", "1", "2"]
    assert tokenize("ＡＢＣ１２３") == tokenize("abc123") == ["abc123"]
    assert tokenize("snake_case") == ["snake", "case"]
    assert tokenize("") == [] and tokenize("  ,.!? ") == []


def test_chinese_segmentation_and_stop_words():
    toks = tokenize("我们的数据库是在北京开发的。")
    assert "数据库" in toks and "北京" in toks and "开发" in toks
    assert "的" not in toks and "是" not in toks and "在" not in toks
    assert all(t.strip() and not re.fullmatch(r"\W+", t) for t in toks)
    assert tokenize_many(["北京", "running"]) == [["北京"], ["run"]]


def test_import_is_light_and_jieba_is_quiet():
    code = (
        "import sys; import kb.text as T\n"
        "assert 'jieba' not in sys.modules and 'Stemmer' not in sys.modules\n"
        "print(T.tokenize('中文分词测试 running'))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # jieba's "Building prefix dict ..." must not leak to stderr
    assert "run" in r.stdout


def test_filename_words():
    assert filename_words("ACME_2017_10K.pdf") == "acme 2017 10k"
    assert filename_words("annualReport2017.docx") == "annual report 2017"
    assert filename_words("HTMLParser-v2.md") == "html parser v2"
    assert filename_words("lshort-zh-cn.pdf") == "lshort zh cn"
    assert filename_words("Q3 results.final.xlsx") == "q3 results final"
    assert filename_words("2023年维修手册.pdf") == "2023年维修手册"  # Han text is cut by the tokenizer
    assert "维修" in tokenize(filename_words("2023年维修手册.pdf"))
    assert filename_words("README") == "readme"
    assert filename_words("latin1-\udce9t\udce9.txt") == "latin 1 t"  # undecodable bytes are not words


@pytest.mark.parametrize("british, us", [
    ("recognised", "recognized"), ("organisation", "organization"), ("analyse", "analyze"), ("tumour", "tumor"),
    ("colours", "colors"), ("centre", "center"), ("fibre", "fiber"), ("litres", "liters"),
    ("haemoglobin", "hemoglobin"), ("anaemia", "anemia"), ("paediatric", "pediatric"), ("oedema", "edema"),
    ("oestrogen", "estrogen"), ("foetal", "fetal")])
def test_british_spellings_are_tokenized_as_the_american_ones(british, us):
    assert american(british) == us
    assert tokenize(f"The {british} was measured") == tokenize(f"the {us} was measured")


@pytest.mark.parametrize("word", ["four", "your", "hour", "rise", "wise", "acre", "genre", "aerobic", "shoe", "does",
                                  "michael", "recognize", "analysis"])
def test_words_without_a_british_ending_are_left_as_they_are(word):
    assert american(word) == word
