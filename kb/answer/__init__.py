"""Answering questions from the knowledge base (`kb ask`, `kb shell`).

- `asker`: `Asker` (retrieve, maybe RAG-Fusion, abstain or generate, check) and `open_asker`;
- `types`: `Source`, `Citation`, `Answer`, `AskOptions`, `ABSTAIN`, `QUOTED`;
- `sources`: search hits to sources (adjacent chunks merged); `prompt`: fencing, the rules, packing;
- `citations`: the streamed citation filter, wrong marks corrected, inferred citations; `grounding`: the check
  that an answer is drawn from its sources, that they name the question's subject, declines, loop guards;
  `evidence`: the weak-evidence gate; `extractive`: --extractive, and the quote of sources the model judged to
  answer but declined;
- `fusion`: RAG-Fusion variants and the confidence test; `conversation`: the shell's follow-up rewriting.

This module only re-exports; the submodules import each other directly, never through `kb.answer`.
"""

from kb.answer.asker import Asker, open_asker
from kb.answer.citations import (INFER_MIN_OVERLAP, Attribution, CitationFilter, cite, claims, correct_marks,
                                 infer_citations, marks_in)
from kb.answer.evidence import WEAK_BM25, WEAK_EVIDENCE, evidence, weak_evidence
from kb.answer.extractive import extractive_answer, quoted_answer
from kb.answer.grounding import (
    DECLINE,
    GROUNDED_MIN_OVERLAP,
    UNMENTIONED_MAX,
    LoopGuard,
    drop_repeated_lines,
    is_decline,
    unmentioned_names,
    unsupported,
)
from kb.answer.prompt import ECHO_STOPS, format_source, messages_for, pack, system_prompt, user_prompt
from kb.answer.sources import build_sources
from kb.answer.types import ABSTAIN, QUOTED, Answer, AskOptions, Citation, Source

__all__ = [
    "ABSTAIN", "QUOTED", "DECLINE", "ECHO_STOPS", "GROUNDED_MIN_OVERLAP", "INFER_MIN_OVERLAP", "UNMENTIONED_MAX",
    "WEAK_BM25", "WEAK_EVIDENCE", "Answer", "AskOptions", "Asker", "Attribution", "Citation", "CitationFilter",
    "LoopGuard", "Source", "build_sources", "cite", "claims", "correct_marks", "drop_repeated_lines", "evidence",
    "extractive_answer", "format_source", "infer_citations", "is_decline", "marks_in", "messages_for", "open_asker",
    "pack", "quoted_answer", "system_prompt", "unmentioned_names", "unsupported", "user_prompt", "weak_evidence",
]
