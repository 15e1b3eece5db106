"""Questions about long documents: the file name and the title are searchable with every chunk of a document,
and a long question's instructions do not drown its need (docs/retrieval.md, "Questions about long documents")."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kb.focus import focus, is_instruction

from conftest import run_kb


def test_instructions_are_told_from_the_need():
    assert is_instruction("Please base your answer on the statement of cash flows.")
    assert is_instruction("Answer concisely and cite the page you used.")
    assert is_instruction("请基于官方文档回答，不要猜测。")
    assert not is_instruction("Which key activates automatic breaking of long lines?")
    assert not is_instruction("如何为 TeX Live 指定宏包的更新源地址？")
    assert not is_instruction("Please tell me the revenue of ACME in 2017.")  # a request for content is the need


def test_focus_of_a_long_question_is_its_need():
    long = ("We are preparing the appendix of a technical report that contains many pages of source code. "
            "Please base your answer on the documentation only and answer concisely. "
            "Which key activates automatic breaking of long lines?")
    assert focus(long) == "Which key activates automatic breaking of long lines?"
    zh = ("我们正在为研究生院编写一套学位论文模板，需要符合学校的排版规范。请基于官方文档回答，并尽量给出代码示例。"
          "怎样把章标题的编号设置成蓝色？")
    assert focus(zh) == "怎样把章标题的编号设置成蓝色？"
    assert focus("We want to calculate a financial metric for our quarterly review of several companies. Please "
                 "base your answer on the statement of cash flows. Please tell me ACME's capital expenditure in "
                 "2017.") == "Please tell me ACME's capital expenditure in 2017."


def test_short_questions_have_no_focus():
    assert focus("What is the maximum stirring speed of the QF-300?") is None
    assert focus("0-dimensional biomaterials show inductive properties.") is None
    assert focus("《红楼梦》的作者是谁？") is None
    # one long sentence is searched as it is
    assert focus("How do I give the rows of a long table that spans several pages alternating background colours "
                 "without loading any other package than the colour package itself?") is None


def test_file_name_and_title_words_find_every_chunk(tmp_path):
    """Through the real stack: `kb ingest` then `kb search` in fresh processes. Two reports with the same body
    text and title, told apart only by their file names; a section far from the title is found by the title's words."""
    docs = tmp_path / "docs"
    docs.mkdir()
    body = ("# Annual report\n\n## Results\n\n"
            "Revenue grew by twelve percent and the margin held steady through the year.\n")
    (docs / "ACME_2017_10K.md").write_text(body)
    (docs / "GlobexAnnualReport2018.md").write_text(body)
    sections = "\n".join(f"## Part {i}\n\nThe committee discussed agenda item number {i} at length.\n"
                         for i in range(1, 40))
    (docs / "minutes.md").write_text("# Quillfin Harbour Board\n\n" + sections
                                     + "## Closing\n\nThe lighthouse budget was approved unanimously.\n")
    kb_dir = tmp_path / "kb"
    env = dict(os.environ, KB_EMBEDDING_MODEL="minilm")
    r = run_kb("--kb", str(kb_dir), "ingest", str(docs), env=env)
    assert r.returncode == 0, r.stderr

    def top(query: str, mode: str = "hybrid") -> dict:
        r = run_kb("--kb", str(kb_dir), "search", query, "--mode", mode, "--json", "-k", "1", env=env)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["results"][0]

    # the two reports embed alike, so in hybrid the BM25 list (weight 1.25) decides between them
    for mode in ("bm25", "hybrid"):
        assert Path(top("ACME 2017 10-K annual report revenue", mode)["path"]).name == "ACME_2017_10K.md"
        assert Path(top("Globex annual report 2018 revenue", mode)["path"]).name == "GlobexAnnualReport2018.md"
    assert Path(top("What did the Globex annual report 2018 say about revenue?", "bm25")["path"]).name == \
        "GlobexAnnualReport2018.md"
    hit = top("Quillfin Harbour Board budget approved", "bm25")
    assert Path(hit["path"]).name == "minutes.md" and "lighthouse" in hit["text"]
