"""The grounding check: whether an answer is drawn from its sources (`unsupported`), whether the sources speak
of what the question names at all (`unmentioned_names`), whether it declines (`is_decline`), and the guards
against a small model repeating itself (`LoopGuard`, `drop_repeated_lines`)."""

from __future__ import annotations

import re
from typing import Sequence

from kb.answer.types import ABSTAIN, Source
from kb.text import han_names, han_rare_words, han_subwords, has_han, question_language, split_sentences, tokenize

# How an answer that declines begins, in the words small models actually use.
DECLINE = re.compile(
    r"^\W*(?:the (?:documents?|sources?|provided (?:sources?|documents?|text)) (?:do(?:es)? not|don'?t|doesn'?t)"
    r" (?:say|mention|contain|provide|specify|state|include)|(?:there is )?no (?:information|mention)"
    r"|i (?:do not|don'?t|cannot|can'?t) (?:know|find)|文档中?(?:没有|未|并未)|(?:资料|来源|材料)中?(?:没有|未)"
    r"|没有(?:提到|相关|找到))",
    re.IGNORECASE,
)

GROUNDED_MIN_OVERLAP = 0.34  # share of an answer's words the best source must hold (see docs/answering.md)
BARE_SPAN_WORDS = 2  # a bare answer this short, copied from a source, is an answer even if the question has it
UNMENTIONED_MAX = 2  # question words an answer may repeat that no source has (paraphrase); more: another subject
_ANSWER_WORDS = frozenset(tokenize("yes no not none only also answer source document")) | frozenset(
    "ye no not 是 否 不 没有 只有 答案 文档".split())
_ASKS_WHAT = re.compile(r"\b(?:what|which|who|whom|when|where|why|how)\b|什么|哪|多少|几|谁|如何|怎么|怎样|为何|为什么",
                        re.IGNORECASE)  # a question a restatement cannot answer (unlike "Is the QF-300 covered?")
_YES_NO = re.compile(r"\b(?:yes|no|not|never)\b|^\W*(?:是|对|不|没|否|无)", re.IGNORECASE)
_QUESTION_WORDS = frozenset(tokenize(
    "how long much many which what when where who whom why does do did mean means must should can could would will "
    "shall may might need have has had be 多少 什么 哪 哪个 哪一 哪天 哪一天 几 怎么 如何 是否 意思 需要 应该 吗 呢"))
_NUMBER = re.compile(r"(?<![A-Za-z\d.])\d+(?:[.,:]\d+)*(?![A-Za-z\d])")


def _numbers(text: str) -> dict[str, str]:
    """The stand-alone numbers of a text, normalised so that 1,850 = 1850, 03 = 3 and 0.50 = 0.5, each with how
    it was written (a code such as QF3-K7 or CO2 is not a number: it may be translated, 二氧化碳)."""
    out: dict[str, str] = {}
    for written in _NUMBER.findall(text):
        n = re.sub(r",(?=\d{3}\b)", "", written)
        if n.count(".") == 1 and "," not in n and ":" not in n:
            whole, frac = n.split(".")
            n = f"{whole.lstrip('0') or '0'}.{frac.rstrip('0')}".rstrip(".")
        elif n.isdigit():
            n = n.lstrip("0") or "0"
        out.setdefault(n, written)
    return out


def figures(text: str) -> set[str]:
    """The stand-alone numbers of a text, normalised (1,850 = 1850, 0.50 = 0.5)."""
    return set(_numbers(text))


_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
    "seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_SPELLED_EN = re.compile(rf"\b(?:({'|'.join(_TENS)})(?:[- ]({'|'.join(_UNITS[1:10])}))?|({'|'.join(_UNITS)}))\b",
                         re.IGNORECASE)
_HAN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
# a Chinese numeral below 100: with 十 (十四, 四十, 四十二), or one digit before a measure word (三个, 五年), since
# a lone 一 is mostly part of a word (一般, 统一)
_SPELLED_ZH = re.compile(r"([一二两三四五六七八九]?十[一二三四五六七八九]?)|([零一二两三四五六七八九])(?=[个年月日天次种名位人座部条项岁倍场届世周])")


def _spelled_numbers(text: str) -> set[str]:
    """The numbers a text spells out below 100 ("fourteen", "forty-two", 十四, 三个), as digits: a source that
    says "fourteen trials" supports an answer that says 14."""
    out = set()
    for tens, unit, alone in _SPELLED_EN.findall(text):
        if alone:
            out.add(str(_UNITS.index(alone.lower())))
        else:
            out.add(str(10 * (_TENS.index(tens.lower()) + 2) + (_UNITS.index(unit.lower()) if unit else 0)))
    for with_ten, digit in _SPELLED_ZH.findall(text):
        if digit:
            out.add(str(_HAN_DIGITS[digit]))
        else:
            before, _, after = with_ten.partition("十")
            out.add(str(10 * (_HAN_DIGITS[before] if before else 1) + (_HAN_DIGITS[after] if after else 0)))
    return out


def _as_written(text: str, tokens: set[str]) -> list[str]:
    """The words of `text` behind some BM25 tokens, as the text writes them (for messages)."""
    out: dict[str, str] = {}
    for w in re.findall(r"[A-Za-z][A-Za-z0-9-]*", text) + tokenize(text, stem=False):
        if set(tokenize(w)) & tokens:
            out.setdefault(w.lower(), w)
    return list(out.values())


def _in_other_script(word: str, lang: str) -> bool:
    """A Latin-letter word in a Chinese answer, or a Han word in an English one."""
    han = any("\u4e00" <= ch <= "\u9fff" for ch in word)
    return han if lang == "en" else (not han and any("a" <= ch <= "z" for ch in word))


# The words of a sentence that only points at the sources ("This can be found in sources [2] and .", "This is
# stated in the first source [1].", "这在资料中有提到。"): small models add one, and it says nothing to check.
_POINTER_WORDS = frozenset(tokenize(
    "this that it is can be found stated mentioned given provided shown described listed explained in from the "
    "first second third last above sources source documents document information see according as and refer "
    "referenced text passage 这 这一点 可以 在 中 有 中有 提到 找到 来源 资料 文档 材料 第一 第二 第一个 第二个 见 如 所述 根据"))


def _without_pointers(text: str) -> str:
    """The text without its sentences that only point at the sources (all of it, if that is all it is)."""
    kept = [s for s in split_sentences(text) if set(tokenize(s)) - _POINTER_WORDS]
    return " ".join(kept) if kept else text


_SPLIT_DECIMAL = re.compile(r"(?<![\d.])(\d+)\. (\d+)(?![\d.,])")


def _rejoin_decimals(text: str, known: set[str]) -> str:
    """"2. 2 angstrom" read as 2.2 when a source has 2.2: the model's tokens sometimes part a decimal it copies
    (calibration en04, withdrawn for a "2" no source has)."""
    def join(m: re.Match) -> str:
        joined = f"{m[1]}.{m[2]}"
        return joined if set(_numbers(joined)) <= known else m[0]

    return _SPLIT_DECIMAL.sub(join, text)


def unsupported(answer: str, sources: Sequence[Source], question: str, unread: Sequence[Source] = (),
                translated: bool = False) -> str | None:
    """Why the answer is not drawn from the sources, or None when it is. Small models, told to answer only from
    the sources, still answer from memory ("The capital of Australia is Canberra [1]"), make up a figure, or
    answer a question about something the documents never mention with a nearby fact ("the remote's battery
    lasts 27 months", the warranty's figure). So:
    - every number the answer has must be in a source, in digits or spelled out below 100 (numbers compare
      across languages; codes such as CO2 are not numbers, they may be translated: 二氧化碳);
    - a word in the other script (Latin letters in a Chinese answer, Han in an English one) is copied, not
      translated, so some source or the question must have it ("QF-300 Pro 的 GPU"), if only part of a Chinese
      word (2+ characters: "over-oxy乙酸" from 过氧乙酸);
    - an answer to a what/which/how question must add something to it ("QF-300 使用的是 GPU。");
    - when the sources it cites (all of them, if it cites none) are in its language, or it cites one in the other
      language that does not have its figures (figures compare across languages, words do not), it may not repeat
      more than UNMENTIONED_MAX of the question's words that no source in its language has, read or `unread` (found by
      retrieval but not given to the model: the documents still mention those words, so the answer may be about
      what was asked; a rule about the subject, unlike the figures and words the answer draws from what it read);
      not when the question is `translated` (the model's translation of the user's, whose words are the model's
      choice: "reagent kit" for 试剂盒 where the slide says "cartridge");
    - when every source is in its language, one must hold a fair share of the words it adds to the question (a
      model that cites the wrong number may have drawn the words from a source in the other language)."""
    if not sources:
        return None
    spelled = [_spelled_numbers(s.text) for s in sources]  # "Fourteen trials" holds 14
    figures_of = [_numbers(s.text).keys() | sp for s, sp in zip(sources, spelled)]  # each source's
    known_numbers = set().union(*figures_of)
    # not citations, nor list markers ("1. Check", not the "1." of "1.1 N·m"), nor sentences that only point
    text = _without_pointers(re.sub(r"(?m)^\s*\d{1,2}[.)、](?!\d)\s*", " ",
                                    _rejoin_decimals(re.sub(r"\[\d+\]", " ", answer), known_numbers)))
    numbers = _numbers(text)
    invented = [written for n, written in numbers.items() if n not in known_numbers]
    if invented:
        return f"the answer has figures no source has: {', '.join(invented[:5])}"
    lang = question_language(question)  # asked for; a Chinese answer full of codes can look English
    answer_words, question_words = set(tokenize(text)) - _ANSWER_WORDS, set(tokenize(question))
    added = answer_words - question_words  # what the answer adds to the question
    tokens = [set(tokenize(s.text)) | sp for s, sp in zip(sources, spelled)]
    unknown = {w for w in added if _in_other_script(w, lang)} - set().union(*tokens)  # copied, never translated
    # a piece of a Chinese word, copied: "over-oxy乙酸" from 过氧乙酸, which the sources' tokens hold whole
    unknown = {w for w in unknown if not (has_han(w) and len(w) >= 2 and any(w in s.text for s in sources))}
    if unknown:
        return f"no source has {', '.join(_as_written(text, unknown)[:5])}"
    if not added - _POINTER_WORDS and _ASKS_WHAT.search(question) and not _YES_NO.search(text) \
            and not _bare_span(text, sources):
        return "the answer only restates the question"
    same = [question_language(s.text) == lang for s in sources]
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
    if cited and not all(ok for s, ok in zip(sources, same) if s.n in cited):
        held = set().union(*(f for s, f in zip(sources, figures_of) if s.n in cited))
        if all(n in held for n in numbers):
            return None  # drawn from a source in the other language it cites: words cannot tell
        # its figures are not in what it cites (a wrong mark, or another subject's figure: sample_docs x05 put the
        # firmware notes' bootloader 2.6 on a Linux kernel, citing a Chinese FAQ entry on cartridges): its words
        # are judged by the sources in its language below
    if not cited and not all(same) and numbers and set(numbers) <= set().union(
            *(_numbers(s.text) for s, ok in zip(sources, same) if not ok)):
        return None  # its figures come from a source in the other language (an uncited translation of it)
    source_tokens = [st for st, ok in zip(tokens, same) if ok]
    if not source_tokens:
        return None  # every source is in the other language: words cannot tell
    mentioned = set().union(*source_tokens, *(tokenize(s.text) for s in unread if question_language(s.text) == lang))
    unmentioned = (answer_words & question_words) - _QUESTION_WORDS - mentioned
    if len(unmentioned) > UNMENTIONED_MAX and not translated:
        return f"no source mentions {', '.join(_as_written(text, unmentioned)[:5])}"
    # An answer that cites nothing is judged by the sources in its language even when others are in the other
    # language (a translated query brings those in; an uncited answer drawn from them cannot be told from memory).
    if (all(same) or not cited) and added and \
            max(len(added & st) / len(added) for st in source_tokens) < GROUNDED_MIN_OVERLAP:
        return "the answer's words are not in the sources"
    return None


# A code: letters and digits in one run (Dnmt3a, CD33, 12M, QF3), not a figure with a unit (100g, 50s, 1st, 24h)
_CODE = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*(?![A-Za-z0-9])")
_FIGURE_WITH_UNIT = re.compile(r"\d+[a-z]{1,3}")
_TITLE = re.compile(r"《([^》]+)》")  # a work's title, 《瞄》


def codes(text: str) -> list[str]:
    """The codes a text names (Dnmt3a, CD33, 城巴12M线's 12M), in order, each once."""
    return list(dict.fromkeys(c for c in _CODE.findall(text) if not _FIGURE_WITH_UNIT.fullmatch(c)))


def unmentioned_names(question: str, sources: Sequence[Source]) -> list[str]:
    """What a Chinese question names that no source mentions, in its text, title, heading or file name: the
    documents do not speak of that subject, and an answer could only put the question's subject on another's fact
    ("太浩湖位于江苏省苏州市" from a paragraph about another lake; "黑尾前肛鳗的体长" asked as 异齿前肛鳗's; the
    route of 城巴12M线 told from a paragraph on 8P). What it names: its codes (`codes`: 12M, compared without case,
    spaces or hyphens), its titles in 《》, its names (`kb.text.han_names`) and its rare words
    (`kb.text.han_rare_words`: 异齿, 举牌). A rare word is not missing when a dictionary word inside it is there
    (扮演者: 扮演), nor when it was cut across a name the sources have (潘淑是 cut 潘 / 淑是: 潘淑). Empty when a
    source is in English (it may name the subject in English, or translate a code: CO2, 二氧化碳), and for an
    English question: there the codes test stopped 7% of SciFact claims beside their own abstract against 17% beside
    two others (docs/benchmarks.md), so it is not used."""
    if not sources or question_language(question) != "zh" or any(question_language(s.text) != "zh"
                                                                  for s in sources):
        return []
    seen = "\n".join(f"{s.text}\n{s.title or ''}\n{s.heading or ''}\n{s.path or ''}" for s in sources)
    squashed = _squash(seen)
    missing = [c for c in codes(question) if _squash(c) not in squashed]
    missing += [t for t in _TITLE.findall(question) if _squash(t) and _squash(t) not in squashed]
    missing += [name for name in han_names(question) if name not in seen and not any(name in m for m in missing)]
    for word, start in han_rare_words(question):
        end = start + len(word)
        across = (question[start - 1:start + 1] if start else "", question[end - 1:end + 1])  # 潘淑, ...
        if word in seen or any(word in m for m in missing) or any(len(b) == 2 and has_han(b) and b in seen
                                                                  for b in across) \
                or any(part in seen for part in han_subwords(word)):
            continue
        missing.append(word)
    return missing


def _squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).casefold()


def _bare_span(text: str, sources: Sequence[Source]) -> bool:
    """A bare answer of one or two words copied from a source names what was asked even when the question holds
    those words ("《温哥华太阳报》发行于哪个城市？" → "温哥华"): not a restatement."""
    key = _squash(text)
    return 0 < len(tokenize(text)) <= BARE_SPAN_WORDS and any(key in _squash(s.text) for s in sources)


def is_decline(text: str) -> bool:
    return bool(DECLINE.match(text.strip())) or text.strip() in ABSTAIN.values()


# The first words DECLINE can match, lower-cased: an answer that begins with (a prefix of) one may still be a decline.
DECLINE_OPENINGS = ("the document", "the source", "the provided", "there is no", "no information", "no mention",
                    "i do not", "i don't", "i dont", "i cannot", "i can't", "i cant", "文档", "资料", "来源", "材料", "没有")
DECLINE_HOLD_CHARS = 64  # an opening this long that is not yet a decline is an answer


def may_decline(opening: str) -> bool:
    """Whether an answer that begins with `opening` could still turn out to be a decline: it is one, or its first
    words are (the start of) a decline's. "The chamber…" is not; "The doc" and "The documents state" may be."""
    head = re.sub(r"^\W+", "", opening).casefold()
    if not head or DECLINE.match(head):
        return True
    return len(head) < DECLINE_HOLD_CHARS and any(o.startswith(head) or head.startswith(o) for o in DECLINE_OPENINGS)


class LoopGuard:
    """Notices a small model repeating itself ("The answer is: 10 °C." over and over) so generation can stop."""

    MAX_REPEATS = 2

    def __init__(self):
        self.pending = ""
        self.counts: dict[str, int] = {}

    def looping(self, piece: str) -> bool:
        self.pending += piece
        *done, self.pending = re.split(r"(?<=[.!?。！？\n])", self.pending)
        for sentence in done:
            key = re.sub(r"\W+", "", sentence.casefold())
            if len(key) < 4:
                continue
            self.counts[key] = self.counts.get(key, 0) + 1
            if self.counts[key] > self.MAX_REPEATS:
                return True
        return False


def drop_repeated_lines(text: str) -> str:
    """The text with every line that repeats an earlier one removed (what LoopGuard let through)."""
    seen: set[str] = set()
    kept = []
    for line in text.split("\n"):
        key = re.sub(r"\W+", "", line.casefold())
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept))
