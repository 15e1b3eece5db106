"""Language-aware text processing: sentence splitting and BM25 tokenisation for Chinese and English.

Kept light: only `re` and `unicodedata` at import time. jieba (Chinese segmentation) and PyStemmer are
imported on first use and cached for the life of the process.

Tokenisation rules (`tokenize`, used identically for documents and queries):

* The text is NFKC-normalised and lower-cased, so full-width letters, digits and punctuation fold to
  ASCII ("Ｅ－１７" == "E-17").
* Runs of Han characters are segmented with jieba (precise mode, HMM on). Whitespace and punctuation
  tokens are dropped, and so are the single-character function words in `CHINESE_STOP_WORDS`.
* Everything else is split into word tokens of letters/digits (any script). Apostrophes inside a word
  stay ("patient's" -> the stemmer strips the possessive); underscores and other punctuation split.
* Words on the Lucene/Elasticsearch English stop list (`ENGLISH_STOP_WORDS`) are dropped; the rest are
  Snowball-stemmed ("running", "runs" -> "run") when `stem=True`. Single letters and numbers are kept.
* Before stemming, British spellings are folded into American ones by their regular endings (`american`:
  recognised -> recognized, tumour -> tumor, centre -> center, haemoglobin -> hemoglobin, oedema -> edema), so a
  question in one spelling finds a document in the other (the stemmer alone leaves "recognis" and "recogn").
* Decimal and version numbers stay whole ("3.5", "2.0.1"); thousands separators are removed
  ("1,000" -> "1000").
* Hyphenated codes containing a digit ("E-17", "COVID-19", "IL-6") yield their parts *and* the joined
  form: "e-17" -> "e", "17", "e17". So a query for "E-17" matches documents writing "E-17", "E17" or
  "E 17", and vice versa. Hyphenated words without digits ("well-known") yield only their parts.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import unicodedata
from typing import Iterable, Sequence

__all__ = [
    "split_sentences",
    "sentence_spans",
    "has_han",
    "han_ratio",
    "tokenize",
    "tokenize_many",
    "ENGLISH_STOP_WORDS",
    "CHINESE_STOP_WORDS",
    "TOKENIZER_VERSION",
]

# Bump when `tokenize` output changes: a knowledge base whose chunks were tokenized by another version has them
# tokenized again at its next write (`kb ingest`, `kb repair`), and `kb doctor` says so until then.
# 2: British spellings folded into American ones (`american`).
TOKENIZER_VERSION = 2

# CJK Unified Ideographs (+ Ext. A, compatibility ideographs, 〇, the supplementary-plane extensions).
HAN_CHARS = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"  # for a regex [...] class
_HAN = HAN_CHARS
_HAN_RE = re.compile(f"[{_HAN}]")
_SPACE_RE = re.compile(r"\s")

# The Lucene / Elasticsearch `_english_` stop list (also what BEIR's BM25 baseline uses).
ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)
# Single-character Chinese function words dropped after segmentation (multi-character words are kept).
CHINESE_STOP_WORDS = frozenset(
    "的 地 得 了 着 过 是 在 和 与 及 或 也 都 就 而 被 把 吗 呢 吧 啊 之 其 于 这 那 个".split()
)


# --------------------------------------------------------------------------------------------------
# Han helpers


def has_han(text: str) -> bool:
    """True if the text contains at least one Han (Chinese) character."""
    return _HAN_RE.search(text) is not None


def han_ratio(text: str) -> float:
    """Fraction of the non-whitespace characters that are Han characters (0.0 for blank text)."""
    n = len(text) - len(_SPACE_RE.findall(text))
    if n <= 0:
        return 0.0
    return len(_HAN_RE.findall(text)) / n


LANGUAGE_NAME = {"en": "English", "zh": "Chinese (简体中文)"}  # as prompts name them


def question_language(text: str) -> str:
    """"zh" when a text is mostly Chinese, else "en": the language an answer should be written in.

    Weighs Han characters (about two to a word) against Latin words, so "QF-300 的运行噪音低于多少？" is
    Chinese and "What does 过氧乙酸 mean?" is English.
    """
    han = len(_HAN_RE.findall(text))
    words = len(re.findall(r"[A-Za-z]{2,}", text))
    return "zh" if han >= 2 and han / 2 >= words else "en"


def text_language(text: str) -> str:
    """A chunk's language, by the same rule as a question's ("zh" when Han characters outweigh Latin words)."""
    return question_language(text)


def other_language(lang: str) -> str:
    """The other of kb's two languages."""
    return "en" if lang == "zh" else "zh"


# --------------------------------------------------------------------------------------------------
# Sentence splitting

_CLOSERS = "\"'”’」』）)】]》〉］｝}"
_CL = re.escape(_CLOSERS)  # for use inside a character class
# Candidate boundaries: a newline, or a run of terminators with the closing quotes/brackets after it.
# A run containing a CJK terminator always ends a sentence (no space needed after it); a run of ASCII
# . ! ? only when followed by whitespace, the end, or a Han character (see `sentence_spans`).
_BOUNDARY_RE = re.compile(rf"\n|[。！？；｡….!?]+[{_CL}]*")
_CJK_TERMINATORS = frozenset("。！？；｡…")
_PREV_WORD_RE = re.compile(r"[\w.]+\Z")
_INITIALISM_RE = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]\Z")  # "e.g", "i.e", "u.s" (before the final dot)
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt ft vs fig figs eq eqs no nos vol vols pp p ch chap sec secs ref refs
    tab approx ca cf viz inc ltd co corp dept univ gen col lt sgt capt rev est jan feb mar apr jun jul aug
    sep sept oct nov dec e.g i.e a.k.a""".split()
)


def _is_abbreviation_dot(text: str, start: int, end: int) -> bool:
    """Is the single '.' at text[start] the end of an abbreviation or an initial rather than a sentence?"""
    m = _PREV_WORD_RE.search(text, max(0, start - 24), start)
    if m is None:
        return False
    word = m.group().lower()
    if word in _ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isalpha() and text[start - 1].isupper():  # an initial: "J. Smith"
        return True
    return bool(_INITIALISM_RE.search(word))


def _next_is_lowercase(text: str, pos: int) -> bool:
    n = len(text)
    while pos < n and text[pos] in " \t\r\f\v":
        pos += 1
    return pos < n and text[pos].islower() and text[pos].isascii()


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences in `text`, each stripped of surrounding whitespace.

    Only whitespace lies between consecutive spans, so no character other than whitespace is lost.
    Newlines are hard boundaries (list items, headings, wrapped lines); Chinese/Japanese terminators
    split without a following space; English . ! ? split when followed by whitespace, except after
    abbreviations ("e.g.", "Fig.", "Dr."), initials ("J. Smith"), or before a lower-case word.
    """
    spans: list[tuple[int, int]] = []
    append = spans.append
    start = 0
    n = len(text)
    for m in _BOUNDARY_RE.finditer(text):
        ms, me = m.span()
        c = text[ms]
        if c == "\n":
            end = ms
        else:
            run = m.group()
            if _CJK_TERMINATORS.isdisjoint(run):
                if me < n:
                    nxt = text[me]
                    if not nxt.isspace() and not _HAN_RE.match(nxt):
                        continue  # "3.5", "e.g.x", "v2.0"
                if run.rstrip(_CLOSERS) == "." and _is_abbreviation_dot(text, ms, me):
                    continue
                if _next_is_lowercase(text, me):
                    continue
            end = me
        # emit text[start:end], stripped
        while start < end and text[start].isspace():
            start += 1
        e = end
        while e > start and text[e - 1].isspace():
            e -= 1
        if e > start:
            append((start, e))
        start = me
    while start < n and text[start].isspace():
        start += 1
    e = n
    while e > start and text[e - 1].isspace():
        e -= 1
    if e > start:
        append((start, e))
    return spans


def split_sentences(text: str) -> list[str]:
    """Split text into sentences (see `sentence_spans`); pieces are stripped, and joining them gives the
    input back except for whitespace at the seams."""
    return [text[s:e] for s, e in sentence_spans(text)]


# --------------------------------------------------------------------------------------------------
# Tokenisation

_WORD = rf"[^\W_{_HAN}]"
_TOKEN_RE = re.compile(
    rf"[{_HAN}]+"  # a Han run (segmented by jieba)
    r"|\d+(?:\.\d+)+"  # decimals, versions: 3.5, 2.0.1
    r"|\d{1,3}(?:,\d{3})+(?!\d)"  # thousands: 1,000,000
    rf"|{_WORD}+(?:['’]{_WORD}+)*(?:[-\u2010]{_WORD}+(?:['’]{_WORD}+)*)*"  # words, codes, compounds
)
_HYPHEN_RE = re.compile("[-\u2010]")

_lock = threading.Lock()
_jieba = None
_stemmer = None
_CACHE_LIMIT = 500_000
_word_cache: dict[str, tuple[str, ...]] = {}  # token -> output tokens, stemmed
_word_cache_nostem: dict[str, tuple[str, ...]] = {}


def _jieba_cache_dir() -> str:
    """A private directory for jieba's prefix-dict cache (not the shared /tmp/jieba.cache, which another
    user could plant: jieba loads it with `marshal`)."""
    try:
        from platformdirs import user_cache_dir

        path = os.path.join(user_cache_dir("kb", appauthor=False), "jieba")
        os.makedirs(path, mode=0o700, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except Exception:  # read-only home, no platformdirs: fall through
        pass
    import tempfile

    return tempfile.mkdtemp(prefix="kb-jieba-")


def _get_jieba():
    global _jieba
    if _jieba is None:
        with _lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.dt.tmp_dir = _jieba_cache_dir()
                jieba.initialize()
                _jieba = jieba
    return _jieba


# jieba's part-of-speech tags for names: person (nr, nrfg, nrt), place (ns), organisation (nt), other proper noun (nz)
NAME_TAGS = frozenset({"nr", "nrfg", "nrt", "ns", "nt", "nz"})
# ...but not a word jieba's dictionary counts this often: a common word the tagger calls a name (城市 25,084), or a
# name so common it is context rather than a subject (美国 36,089)
COMMON_NAME_FREQ = 10_000


def han_names(text: str) -> list[str]:
    """The names in a Chinese text (2+ Han characters that jieba tags as a person, place, organisation or other
    proper noun: 太浩湖, 王处直, 温哥华太阳报's 太阳报) and not common words (COMMON_NAME_FREQ), in order, each once.
    A tagger's guess: a rarer common word is sometimes tagged as a name (籍贯, 敬仰)."""
    import jieba.posseg

    freq = _get_jieba().dt.FREQ  # initialised here, with kb's private cache directory
    names = [w for w, tag in jieba.posseg.cut(text)
             if tag in NAME_TAGS and len(w) >= 2 and has_han(w) and freq.get(w, 0) < COMMON_NAME_FREQ]
    return list(dict.fromkeys(names))


# jieba's tags for content words: nouns, names, distinguishing words (短齿), verbal nouns, verbs (举牌), idioms
CONTENT_TAGS = NAME_TAGS | frozenset({"n", "b", "vn", "v", "j", "l", "i"})
# a content word jieba's dictionary counts fewer times than this (0 for a word it only guessed: 异齿, 白鸟 6), so
# specific that a text about the question's subject would use it (calibrated in bench/calibrate.py --names-test)
RARE_WORD_FREQ = 50
_ASKING = re.compile("哪|什么|几|谁|何|怎|是否|能否|可否|多[少长久大高远重宽深厚快早晚]")


def han_rare_words(text: str) -> list[tuple[str, int]]:
    """The rare content words of a Chinese text (2+ Han characters, a CONTENT_TAGS tag, dictionary count below
    RARE_WORD_FREQ, no question word in them), each with where it starts, in order."""
    import jieba.posseg

    freq = _get_jieba().dt.FREQ
    out, at = [], 0
    for w, tag in jieba.posseg.cut(text):
        start, at = at, at + len(w)
        if len(w) >= 2 and tag in CONTENT_TAGS and has_han(w) and freq.get(w, 0) < RARE_WORD_FREQ \
                and not _ASKING.search(w):
            out.append((w, start))
    return out


def han_subwords(word: str) -> list[str]:
    """The dictionary words of 2+ characters inside a longer word (扮演者: 扮演; 西藏地区: 西藏, 地区)."""
    return [p for p in _get_jieba().cut_for_search(word, HMM=False) if 2 <= len(p) < len(word)]


def _get_stemmer():
    global _stemmer
    if _stemmer is None:
        import Stemmer

        _stemmer = Stemmer.Stemmer("english")
    return _stemmer


# British endings and their American forms, by rule rather than a word list: a rule also folds words that have only
# one spelling (promise -> promize), which is harmless since documents and queries are folded alike, and merges a
# rare pair (timbre, timber). SciFact (English biomedical abstracts), BM25 nDCG@10: 0.6908 -> 0.6923 (docs/retrieval.md).
_BRITISH = (
    # -ise/-yse verbs and their forms after a consonant: recognised, organisation, analyse (not rise: 2+ letters first)
    (re.compile(r"^([a-z]{2,}[^aeiou\W])([iy])s(e|ed|es|ing|ation|ations|er|ers|able)$"), r"\1\2z\3"),
    (re.compile(r"^([a-z]{3,})our(s|ed|ing|able|ite|ites|less)?$"), r"\1or\2"),  # colour, tumour (not four, your)
    (re.compile(r"^([a-z]{2,}[tb])re(s|d)?$"), r"\1er\2"),  # centre, metre, fibre, titre
    (re.compile(r"^([a-z]*[^aeiou\W])ae([md][a-z]*)$"), r"\1e\2"),  # haemoglobin, anaemia, paediatric, ischaemic
    (re.compile(r"^(f?)oe([a-z]{3,})$"), r"\1e\2"),  # oedema, oestrogen, foetal
)


def american(word: str) -> str:
    """A lower-case English word with a British ending in its American spelling (recognised -> recognized);
    other words as they are."""
    for rule, replacement in _BRITISH:
        if m := rule.match(word):
            return m.expand(replacement)
    return word


def _analyze_word(tok: str, stem: bool) -> tuple[str, ...]:
    """Output tokens for one non-Han regex token (already NFKC-normalised and lower-cased)."""
    if tok[0].isdigit() and ("." in tok or "," in tok):
        return (tok.replace(",", ""),)
    tok = tok.replace("’", "'")
    parts = _HYPHEN_RE.split(tok) if ("-" in tok or "\u2010" in tok) else [tok]
    out = [p for p in parts if p not in ENGLISH_STOP_WORDS]
    if stem and out:
        out = _get_stemmer().stemWords([american(p) for p in out])
    if len(parts) > 1 and any(ch.isdigit() for ch in tok):
        out.append("".join(parts).replace("'", ""))
    return tuple(out)


def _cut_han(run: str, out: list[str]) -> None:
    for w in _get_jieba().cut(run):
        if w not in CHINESE_STOP_WORDS and not w.isspace():
            out.append(w)


def tokenize(text: str, stem: bool = True) -> list[str]:
    """BM25 tokens of `text` (documents and queries alike), in text order; see the module docstring."""
    if not text:
        return []
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.lower()
    cache = _word_cache if stem else _word_cache_nostem
    out: list[str] = []
    for tok in _TOKEN_RE.findall(text):
        r = cache.get(tok)
        if r is None:
            if _HAN_RE.match(tok):
                _cut_han(tok, out)
                continue
            r = _analyze_word(tok, stem)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[tok] = r
        out.extend(r)
    return out


def tokenize_many(texts: Iterable[str], stem: bool = True) -> list[list[str]]:
    """`tokenize` over many texts."""
    return [tokenize(t, stem) for t in texts]


_EXTENSION_RE = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}$")
_NAME_SEP_RE = re.compile(r"[\W_]+")  # _ - . spaces and any other punctuation (Han characters are \w)
# camelCase ("annualReport"), an acronym before a word ("HTMLParser"), a word before a number ("report2017",
# not "Q3" or "v2": one letter before digits stays with them, and digits before letters stay too: "10K", "2nd")
_NAME_CASE_RE = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[^\W\d_]{2})(?=\d)")


def chunk_tokens(index_text: str, name_tokens: Sequence[str]) -> list[str]:
    """A chunk's BM25 tokens: its index text's, then the words of its file's name (`name_tokens`, tokenized
    `filename_words`) that the text lacks, so that a question naming the file finds every chunk of it."""
    tokens = tokenize(index_text)
    have = set(tokens)
    return tokens + [t for t in name_tokens if t not in have]


def file_name_tokens(name: str) -> list[str]:
    """The BM25 tokens of a file name's words, each once."""
    return list(dict.fromkeys(tokenize(filename_words(name))))


def filename_words(name: str) -> str:
    """A file name as the words people would type for it, lower-cased: `ACME_2017_10K.pdf` → "acme 2017 10k",
    `annualReport2017.docx` → "annual report 2017". The extension is dropped; splits on _ - . and other
    punctuation, camelCase, and between a word and a number. Han text stays whole (the tokenizer cuts it)."""
    stem = _EXTENSION_RE.sub("", name.rsplit("/", 1)[-1]) or name
    words = []
    for part in _NAME_SEP_RE.split(stem):
        words.extend(_NAME_CASE_RE.sub(" ", part).lower().split())
    return " ".join(words)
