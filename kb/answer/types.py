"""What answering produces: the sources given to the LLM, the citations of an answer, the answer itself, and the
options of one question. No logic beyond (de)serialising."""

from __future__ import annotations

from dataclasses import dataclass, field

from kb.retrieve import Passage

ABSTAIN = {"en": "The documents don't say.", "zh": "文档中没有提到。"}
# opens the sources' own sentences, quoted when the model judged that they state the answer but wrote none
QUOTED = {"en": "The sources say:", "zh": "文档原文："}


@dataclass
class Source(Passage):
    """One passage given to the LLM: a retrieved chunk, or adjacent chunks of one document merged. Where it comes
    from (path, title, page, page_end, slide, heading, doc_id) are keyword fields shared with search hits."""

    n: int
    chunk_ids: list[int]
    text: str
    score: float
    rank: int  # retrieval rank of its best chunk
    ordinal_end: int = 0

    @classmethod
    def of_hit(cls, hit) -> "Source":
        """A hit as a source, not yet numbered."""
        return cls(0, [hit.chunk_id], hit.text, hit.score, hit.rank, hit.ordinal, **hit.passage_fields())

    def to_dict(self) -> dict:
        return {"n": self.n, "path": self.path, "page": self.page, "page_end": self.page_end, "slide": self.slide,
                "heading": self.heading, "ocr": self.ocr, "chunk_id": self.chunk_ids[0], "chunk_ids": self.chunk_ids,
                "title": self.title, "score": round(self.score, 6), "text": self.text}


@dataclass
class Citation:
    source: Source
    inferred: bool = False  # attributed after generation to an answer sentence that cited nothing
    sentence: str | None = None
    replaces: tuple[int, ...] = ()  # the model's marks kb replaced by this source's number (citations.correct_marks)

    def to_dict(self) -> dict:
        s = self.source
        return {"n": s.n, "path": s.path, "page": s.page, "page_end": s.page_end, "slide": s.slide,
                "heading": s.heading, "ocr": s.ocr, "chunk_id": s.chunk_ids[0], "text": s.text, "inferred": self.inferred,
                **({"sentence": self.sentence} if self.sentence else {}),
                **({"replaces": list(self.replaces)} if self.replaces else {})}


@dataclass
class Answer:
    question: str
    answer: str = ""
    abstained: bool = False
    abstain_reason: str | None = None  # "weak evidence", "no passages", "the model found no answer"
    citations: list[Citation] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)  # RAG-Fusion variants (the question itself not included)
    model: str | None = None
    language: str = "en"
    timings_ms: dict[str, float] = field(default_factory=dict)
    tokens_per_s: float | None = None
    unsupported_answer: str | None = None  # what the model wrote when the grounding check rejected it
    answerable: float | None = None  # the model's P(yes) that a source states the answer (when checked)
    first_source_only: bool = False  # the model answered from the best source alone (sources = that one)
    quoted: bool = False  # judged to state the answer, the sources were quoted: the model declined to write it
    pivot: dict | None = None  # answered in the sources' language: {"language", "question", "answer"} (kb.answer.pivot)

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": self.answer, "abstained": self.abstained,
                "abstain_reason": self.abstain_reason, "unsupported_answer": self.unsupported_answer,
                "language": self.language,
                "citations": [c.to_dict() for c in self.citations],
                "sources": [s.to_dict() for s in self.sources], "queries": self.queries, "model": self.model,
                "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
                "tokens_per_s": None if self.tokens_per_s is None else round(self.tokens_per_s, 2),
                "answerable": None if self.answerable is None else round(self.answerable, 4),
                "first_source_only": self.first_source_only, "quoted": self.quoted, "pivot": self.pivot}


@dataclass
class AskOptions:
    top_k: int = 6
    fusion: str = "auto"  # auto | on | off
    variants: int = 3
    path_glob: str | None = None
    extractive: bool = False
    max_tokens: int = 512
    temperature: float = 0.1
    rerank: bool = True
    context_tokens: int = 0  # most tokens of sources in the prompt (0: whatever fits the window)
    source_tokens: int = 0  # most tokens of one source: a longer one keeps the sentences around its match (0: whole)
    translate: bool = False  # always also search the LLM's translation when part of the corpus is in the other language
    answer_check: float = 0.0  # refuse without answering when the model's P(yes) to ANSWER_CHECK is below this (0: off)
    first_source_check: float = 0.0  # answer from the best source alone when its P(yes) alone is at least this (0: off)
    source_check: float = 0.0  # refuse unless some source, asked alone, gets at least this P(yes) (0: off)
    pivot: bool = False  # best source in the other language: answer the translated question, translate the answer

    def sure(self, answerable: float | None) -> bool:
        """Whether a check's P(yes) is as high as the first-source check asks (never, without that check)."""
        return answerable is not None and self.first_source_check > 0 and \
            answerable >= max(self.first_source_check, self.answer_check)

    @classmethod
    def from_settings(cls, settings, **given) -> "AskOptions":
        values = dict(top_k=settings.top_k, fusion=settings.fusion, variants=settings.variants,
                      max_tokens=settings.max_answer_tokens, temperature=settings.temperature,
                      context_tokens=settings.context_tokens, source_tokens=settings.source_tokens,
                      translate=settings.translate, answer_check=settings.answer_check,
                      first_source_check=settings.first_source_check, source_check=settings.source_check,
                      pivot=settings.pivot)
        for name in ("answer_check", "first_source_check", "source_check"):
            if values[name] < 0:  # the threshold calibrated for the configured model (none for others)
                from kb.llm.presets import calibrated

                values[name] = calibrated(settings.llm_model, name)
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(**values)
