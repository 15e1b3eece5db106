"""Retrieval across languages on sample_docs: every planted fact asked in its document's language and in the
other one (QUESTIONS.md + QUESTIONS_TRANSLATED.md, 39 + 39 cases). For each, the rank of the first hit at the
expected place in `kb search`'s hybrid list, three ways in one run:

- `plain`: the question's own BM25 and dense lists (kb before cross-lingual search);
- `cross`: plus the question's dense list over the other language's chunks (what `kb search` does by default);
- `translated`: plus the LLM's translation of the question (`kb search --translate`, and `kb ask`).

Prints found@1, found@3, found@5 and MRR@10 per way, for the same-language and the cross-lingual cases, and the
translation's cost per question (the floor: retrieval alone).

    python bench/crosslingual.py [--llm qwen2.5-coder-1.5b] [--no-llm] [--show]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, figure  # noqa: E402

SAMPLE = REPO / "sample_docs"


def load_cases() -> list[dict]:
    spec = importlib.util.spec_from_file_location("check_questions", SAMPLE / "check_questions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.all_cases()


def rank_of(response, q: dict, matches) -> int | None:
    for h in response.hits:
        if matches(h.to_dict(), q):
            return h.rank
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm", default="qwen2.5-coder-1.5b")
    ap.add_argument("--no-llm", action="store_true")
    ap.add_argument("--kb", default=None, help="an existing knowledge base of sample_docs (else a throwaway one)")
    ap.add_argument("--show", action="store_true")
    args = ap.parse_args()

    from kb.answer.fusion import translate
    from kb.config import load_settings
    from kb.ingest import IngestOptions, ingest_with_settings
    from kb.llm import load_llm
    from kb.retrieve import open_searcher

    spec = importlib.util.spec_from_file_location("answers", REPO / "bench" / "answers.py")
    answers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(answers)
    cases = load_cases()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(args.kb or str(Path(tmp) / "kb"), {})
        if not args.kb:
            ingest_with_settings(settings, IngestOptions.from_settings(settings, paths=[SAMPLE]))
        searcher = open_searcher(settings)
        llm = None if args.no_llm else load_llm(_with_llm(settings, args.llm))
        ranks: dict[str, list[tuple[bool, int | None]]] = {"plain": [], "cross": [], "translated": []}
        search_ms, translate_ms = [], []
        for q in cases:
            t = time.perf_counter()
            own = searcher.candidates([q["question"]], cross=False)
            plain = searcher.fuse(own, k=10, rerank=False)
            search_ms.append((time.perf_counter() - t) * 1000)
            crossed = searcher.fuse(searcher.candidates([q["question"]]), k=10, rerank=False)
            ranks["plain"].append((q["cross"], rank_of(plain, q, answers.location_matches)))
            ranks["cross"].append((q["cross"], rank_of(crossed, q, answers.location_matches)))
            line = f"# {q['id']} {q['lang']:6s} plain={ranks['plain'][-1][1]} cross={ranks['cross'][-1][1]}"
            if llm is not None:
                t = time.perf_counter()
                translation = translate(llm, q["question"]) if searcher.cross_language(q["question"]) else None
                translate_ms.append((time.perf_counter() - t) * 1000)
                found = searcher.candidates([q["question"]])
                if translation:
                    found = found + searcher.candidates([translation], cross=False)
                r = rank_of(searcher.fuse(found, k=10, rerank=False), q, answers.location_matches)
                ranks["translated"].append((q["cross"], r))
                line += f" translated={r} ({translation!r})"
            if args.show:
                print(line, q["question"], flush=True)
        for way, rows in ranks.items():
            for name, cross in (("same_language", False), ("cross_lingual", True)):
                rs = [r for c, r in rows if c == cross]
                if not rs:
                    continue
                for k in (1, 3, 5):
                    figure(f"{way}_{name}_found_at_{k}", sum(1 for r in rs if r and r <= k) / len(rs))
                figure(f"{way}_{name}_mrr10", sum(1 / r for r in rs if r) / len(rs))
        figure("search_p50_ms", statistics.median(search_ms), "ms")
        if translate_ms:
            figure("translate_p50_ms", statistics.median(translate_ms), "ms")
        searcher.close()


def _with_llm(settings, model: str):
    settings.values["llm_model"] = model
    return settings


if __name__ == "__main__":
    main()
