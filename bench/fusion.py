"""When does RAG-Fusion help? Per query: hybrid retrieval of the question alone, and with the LLM's variants
fused in (what `kb ask --fusion` does), split by whether the first retrieval was "confident"
(kb.answer.fusion.confident: the top chunk leads both the dense and the BM25 list), which is when auto mode skips.

    python bench/fusion.py KB_DIR DATASET_DIR [--queries FILE] [--split test] [--limit 100] [--model PRESET]

KB_DIR holds the dataset's corpus (e.g. left by `kb --kb KB_DIR eval DATASET_DIR`). Prints nDCG@10 without and
with fusion, overall and per bucket, the share of confident queries, and the seconds the variants cost.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure  # noqa: E402


@contextlib.contextmanager
def kept_answers(check):
    """generate_variants without its filter of rewordings that answer (kb.answer.fusion.answers_instead)."""
    import kb.answer.fusion as fusion

    fusion.answers_instead = lambda line, question: False
    try:
        yield
    finally:
        fusion.answers_instead = check


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kb_dir", type=Path)
    ap.add_argument("dataset_dir", type=Path)
    ap.add_argument("--queries", type=Path, default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--model", default=None, help="LLM preset or .gguf (default: the configured one)")
    ap.add_argument("--show", action="store_true")
    args = ap.parse_args()

    from kb.config import load_settings
    from kb.evaluate import doc_id_of, load_beir, replace_queries, score_query
    from kb.answer.fusion import answers_instead, confident, generate_variants
    from kb.llm import load_llm
    from kb.retrieve import open_searcher

    dataset = load_beir(args.dataset_dir, args.split)
    if args.queries:
        replace_queries(dataset, args.queries)
    queries = list(dataset.queries.items())[: args.limit or None]
    flags = {"llm_model": args.model} if args.model else {}
    settings = load_settings(str(args.kb_dir.resolve()), flags)
    searcher = open_searcher(settings)
    llm = load_llm(settings)
    rows = []
    for qid, text in queries:
        first = searcher.search(text, k=20, mode="hybrid", rerank=False)
        t = time.perf_counter()
        with kept_answers(answers_instead):  # every rewording, those that answer included: the filter's before
            variants, _ = generate_variants(llm, text, settings.variants)
        cost = time.perf_counter() - t
        kept = [v for v in variants if not answers_instead(v, text)]
        fused = searcher.search(text, k=20, mode="hybrid", rerank=False, extra_queries=kept)
        unfiltered = searcher.search(text, k=20, mode="hybrid", rerank=False, extra_queries=variants) \
            if kept != variants else fused

        def ndcg(hits):
            return score_query([doc_id_of(h.path) for h in hits], dataset.qrels[qid])["ndcg@10"]

        rows.append((confident(first.hits), ndcg(first.hits), ndcg(fused.hits), cost, ndcg(unfiltered.hits),
                     len(variants) - len(kept)))
        if args.show:
            print(f"# {qid} confident={rows[-1][0]} {rows[-1][1]:.3f} -> {rows[-1][2]:.3f} "
                  f"(unfiltered {rows[-1][4]:.3f}) {variants}", flush=True)

    def mean(values):
        return statistics.fmean(values) if values else float("nan")

    figure("queries", len(rows))
    figure("share_confident", mean([float(r[0]) for r in rows]))
    figure("ndcg@10_no_fusion", mean([r[1] for r in rows]))
    figure("ndcg@10_fusion", mean([r[2] for r in rows]))
    figure("ndcg@10_auto", mean([r[1] if r[0] else r[2] for r in rows]))
    figure("ndcg@10_fusion_answers_kept", mean([r[4] for r in rows]))
    figure("ndcg@10_auto_answers_kept", mean([r[1] if r[0] else r[4] for r in rows]))
    figure("queries_with_a_rewording_dropped", sum(1 for r in rows if r[5]))
    for name, bucket in (("confident", [r for r in rows if r[0]]), ("not_confident", [r for r in rows if not r[0]])):
        figure(f"{name}_ndcg@10_no_fusion", mean([r[1] for r in bucket]))
        figure(f"{name}_ndcg@10_fusion", mean([r[2] for r in bucket]))
    figure("variants_seconds_p50", statistics.median(r[3] for r in rows), "s")
    searcher.close()


if __name__ == "__main__":
    main()
