"""Hybrid retrieval: dense (hnswlib) and BM25 candidate lists fused with Reciprocal Rank Fusion,
then an optional cross-encoder rerank.

A Searcher loads the committed generation once and answers many queries (the shell, eval, ask). A search is
two steps: `candidates()` (per query, its BM25 list with its weight and its dense list; the queries embedded in
one batch) and `fuse()` (RRF over any set of candidate lists, then rerank, then `Hit` rows); `search()` is both.
Keeping the steps apart lets the answering flow fuse RAG-Fusion variants with the question's lists without
searching the question again.
"""

from __future__ import annotations

import fnmatch
import functools
import time
from dataclasses import dataclass, field, fields
from typing import Callable, Collection, Sequence

import numpy as np

from kb.config import OPTION_BY_KEY, models_dir
from kb.store import KnowledgeBase

MODES = ("hybrid", "dense", "bm25")
# Defaults live with the settings (kb/config.py), chosen with kb eval on SciFact train (docs/retrieval.md).
RRF_K = OPTION_BY_KEY["rrf_k"].default
CANDIDATES = OPTION_BY_KEY["candidates"].default  # per list, before fusion
BM25_WEIGHT = OPTION_BY_KEY["bm25_weight"].default
# A language holding at least this share of the chunks is searched in whatever the question's language: the
# question's vector also gets a dense list over that language's chunks alone (docs/retrieval.md, "Across
# languages"), so a same-language hit cannot push the best passage of the other language out of the top.
CROSS_SHARE = 0.1
CROSS_WEIGHT = 1.0  # that list's RRF weight (bench/crosslingual.py)
# ... scaled by how far its best stands above its 20th (CROSS_STANDOUT_DEPTH): the full weight from a cosine of
# CROSS_STANDOUT up, less below. A flat list (nothing in the other language is about the question) then cannot
# hand its arbitrary first the rank-1 share of RRF (bench/cross_weight.py, docs/retrieval.md).
CROSS_STANDOUT = 0.02
CROSS_STANDOUT_DEPTH = 20
# A passage the question's own BM25 and dense lists both rank in their top AGREE is not displaced by a reserved
# query's passage (`fuse`'s `reserve`): two signals agreeing on it outweigh a machine translation's one
# (bench/ask_retrieval.py: q03's answer, 3rd in both, was pushed out when the translation got two places).
AGREE = 3
# A long question's need (kb.focus) gets a dense list of its own, of this RRF weight (0: none; bench/longdocs.py)
FOCUS_WEIGHT = 1.0
# An English question over a corpus (nearly) without English, below CROSS_SHARE of its chunks, gets one more dense
# list: the multilingual model's (kb.embedders.multilingual), over the whole corpus, of this RRF weight (0: none).
# English questions over CMRC's Chinese paragraphs, hybrid nDCG@10: 0.64 -> 0.78 with it, 0.79 -> 0.86 beside the
# LLM's translation (`kb ask`, `kb search --translate`); 1 is plain RRF's weight, and 94 held-out questions put 0.5
# and 1 level. Not Chinese questions: over SciFact's English abstracts the list costs 0.03 (USE reads English
# science poorly: 0.41 dense nDCG@10 on SciFact, e5 0.65). Not a corpus in both languages: e5's list over the
# other language does that there, and sample_docs was not measured with it (docs/retrieval.md, bench/multilingual.py).
MULTILINGUAL_WEIGHT = 1.0
MULTILINGUAL_LANGUAGES = ("en",)  # the question languages that get it


from kb.errors import QueryError  # noqa: E402,F401


@dataclass(kw_only=True)
class Passage:
    """Where a piece of a document comes from: what a search hit and an answer's source share."""

    path: str = ""
    title: str | None = None
    page: int | None = None
    page_end: int | None = None
    slide: int | None = None
    heading: str = ""
    doc_id: int = 0
    ocr: bool = False  # some of the text was read by OCR

    @property
    def location(self) -> str:
        mark = " (OCR)" if self.ocr else ""
        if self.slide:
            return f"slide {self.slide}{mark}"
        if self.page:
            return (f"p.{self.page}" if not self.page_end or self.page_end == self.page else
                    f"pp.{self.page}-{self.page_end}") + mark
        return "(OCR)" if self.ocr else ""

    def passage_fields(self) -> dict:
        """The Passage fields of this object, to build another kind of Passage from it."""
        return {f.name: getattr(self, f.name) for f in fields(Passage)}


@dataclass
class Hit(Passage):
    chunk_id: int
    score: float
    rank: int = 0
    text: str = ""
    ordinal: int = 0
    scores: dict[str, float] = field(default_factory=dict)  # per list: dense, bm25, rrf, rerank
    ranks: dict[str, int] = field(default_factory=dict)  # rank in the original query's dense / bm25 list

    def to_dict(self) -> dict:
        return {"rank": self.rank, "score": round(self.score, 6), "path": self.path, "page": self.page,
                "page_end": self.page_end, "slide": self.slide, "heading": self.heading, "ocr": self.ocr,
                "chunk_id": self.chunk_id, "title": self.title, "text": self.text,
                "scores": {k: round(v, 6) for k, v in self.scores.items()}, "ranks": self.ranks}


@dataclass
class SearchResponse:
    query: str
    mode: str
    hits: list[Hit]
    timings_ms: dict[str, float]
    # the original query's candidate scores per list, best first (how strong the evidence is)
    list_scores: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"query": self.query, "mode": self.mode, "results": [h.to_dict() for h in self.hits],
                "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()}}


@dataclass
class QueryLists:
    """One query's candidate lists, (chunk id, score) best first; None for a list the mode does not search."""

    query: str
    bm25: list[tuple[int, float]] | None = None
    bm25_weight: float = 1.0
    dense: list[tuple[int, float]] | None = None
    cross: bool = False  # the query's dense list over the chunks of the other language only
    multilingual: bool = False  # the query's multilingual model's list (kept beside a translation's lists)
    weight: float = 1.0  # scales both lists' RRF weights (a machine translation of the question counts less)


@dataclass
class Candidates:
    """The candidate lists of some queries, the first one the original query (its lists give `ranks` and
    `list_scores`). `a + b` is a's queries followed by b's, for fusing them all."""

    mode: str
    queries: list[QueryLists] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    nothing_allowed: bool = False  # the path filter matched no document

    def __add__(self, other: "Candidates") -> "Candidates":
        timings = dict(self.timings_ms)
        for key, ms in other.timings_ms.items():
            timings[key] = timings.get(key, 0.0) + ms
        return Candidates(self.mode, [*self.queries, *other.queries], timings,
                          self.nothing_allowed or other.nothing_allowed)

    def without_cross(self) -> "Candidates":
        """The same lists but the cross-language one: once the question's translation is searched, the
        translation's own lists reach the other language's passages, and better (bench/translation_fusion.py)."""
        return Candidates(self.mode, [q for q in self.queries if not q.cross], dict(self.timings_ms),
                          self.nothing_allowed)


def standout(scores: Sequence[float], depth: int = CROSS_STANDOUT_DEPTH, full: float = CROSS_STANDOUT) -> float:
    """How clearly a list's best stands out, 0..1: the gap between its first and its `depth`-th score (its last,
    if shorter) over `full`, capped at 1."""
    if len(scores) < 2:
        return 1.0
    return min(1.0, max(0.0, (scores[0] - scores[min(depth, len(scores)) - 1]) / full))


def rrf(ranked_lists: Sequence[Sequence[int]], k: int = RRF_K, weights: Sequence[float] | None = None
        ) -> list[tuple[int, float]]:
    """Reciprocal Rank Fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1. Ties keep first-seen order."""
    scores: dict[int, float] = {}
    for i, ranked in enumerate(ranked_lists):
        w = 1.0 if weights is None else weights[i]
        for rank, item in enumerate(ranked, start=1):
            scores[item] = scores.get(item, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class Searcher:
    def __init__(self, kb: KnowledgeBase, embedder_factory: Callable[[], object] | None = None,
                 reranker=None, rrf_k: int = RRF_K, candidates: int = CANDIDATES,
                 bm25_weight: float = BM25_WEIGHT):
        self.kb = kb
        self.rrf_k, self.candidates_per_list, self.bm25_weight = rrf_k, candidates, bm25_weight
        self._embedder_factory = embedder_factory
        self._embedder = None
        self.reranker = reranker
        self.generation, self.dense, self.lexical, self.meta = kb.load_indexes()
        self._catalog = kb.catalog(readonly=True)
        self._allowed: tuple[str, set[int]] | None = None  # the last path glob and its chunk ids
        self._languages: dict[str, set[int]] | None = None
        self.cross_weight = CROSS_WEIGHT
        self.focus_weight = FOCUS_WEIGHT
        self.multilingual_weight = MULTILINGUAL_WEIGHT
        self.multilingual_languages = MULTILINGUAL_LANGUAGES

    @property
    def languages(self) -> dict[str, set[int]]:
        """The chunk ids of each language of the corpus ("en", "zh"), read once."""
        if self._languages is None:
            self._languages = {lang: set(ids) for lang, ids in self._catalog.chunk_languages().items()}
        return self._languages

    def language_mix(self) -> dict[str, float]:
        """Each language's share of the chunks."""
        total = sum(len(ids) for ids in self.languages.values()) or 1
        return {lang: len(ids) / total for lang, ids in sorted(self.languages.items())}

    def cross_language(self, query: str) -> str | None:
        """The other language, when a meaningful share of the corpus (CROSS_SHARE) is in it: the query is then
        searched in that language too. None for a question in the language of (nearly) the whole corpus."""
        from kb.text import other_language, question_language

        other = other_language(question_language(query))
        return other if self.language_mix().get(other, 0.0) >= CROSS_SHARE else None

    def multilingual(self, query: str) -> bool:
        """Whether the query gets the multilingual list: its language is one of `multilingual_languages` and holds
        less than CROSS_SHARE of the corpus, the knowledge base has the list's index, and its dense model is
        another one (with `embedding_model = use` the list would repeat the dense list)."""
        from kb.embedders.multilingual import MODEL_ID
        from kb.text import question_language

        language = question_language(query)
        if (not self.multilingual_weight or language not in self.multilingual_languages
                or self.language_mix().get(language, 0.0) >= CROSS_SHARE
                or self.meta.get("embedding_model") == MODEL_ID):
            return False
        return self.multilingual_index is not None

    @functools.cached_property
    def multilingual_index(self):
        """The multilingual list's DenseIndex of this generation (None if it has none), loaded on first use."""
        return self.kb.load_multilingual(self.generation, len(self.dense or ()))

    def close(self) -> None:
        self._catalog.close()

    @property
    def embedder_loaded(self) -> bool:
        return self._embedder is not None

    @property
    def embedder(self):
        if self._embedder is None:
            if self._embedder_factory is None:
                raise QueryError("dense search needs an embedding model")
            self._embedder = self._embedder_factory()
        return self._embedder

    def _allowed_ids(self, path_glob: str | None) -> set[int] | None:
        if not path_glob:
            return None
        if self._allowed is not None and self._allowed[0] == path_glob:
            return self._allowed[1]
        docs = [doc_id for doc_id, path in self._catalog.ok_documents()
                if fnmatch.fnmatch(path, path_glob) or fnmatch.fnmatch(path, "*/" + path_glob.lstrip("/"))
                or fnmatch.fnmatch(path.rsplit("/", 1)[-1], path_glob)]
        ids = self._catalog.chunk_ids_of_documents(docs) if docs else set()
        self._allowed = (path_glob, ids)
        return ids

    def search(self, query: str, k: int = 10, mode: str = "hybrid", candidates: int | None = None,
               path_glob: str | None = None, rerank: bool = True, extra_queries: Sequence[str] = (),
               translation: str | None = None) -> SearchResponse:
        """The query's (and `extra_queries`') candidate lists fused: `candidates()` then `fuse()`. A
        `translation` of the query into the other language is searched as one more query, in place of the
        cross-language list, and the best passage of each of its lists is kept among the `k` (`fuse`'s
        `reserve`)."""
        queries = [query, *extra_queries, *([translation] if translation else [])]
        found = self.candidates(queries, mode=mode, candidates=candidates, path_glob=path_glob)
        if translation:
            found = found.without_cross()
        return self.fuse(found, k=k, rerank=rerank, reserve=[translation] if translation else ())

    def candidates(self, queries: Sequence[str], mode: str = "hybrid", candidates: int | None = None,
                   path_glob: str | None = None, cross: bool = True, multilingual: bool | None = None
                   ) -> Candidates:
        """Each query's BM25 list (weighted by how many of its words the corpus has) and dense list (the
        queries embedded in one batch), `candidates` deep, within the documents `path_glob` matches. With
        `cross`, when part of the corpus is in the other language than the first query (`cross_language`), one
        more list: the first query's dense list over that language's chunks alone, weighted by how clearly its
        best stands out (`standout`). With `multilingual` (default: `cross`), when the first query is in English
        and the corpus (nearly) lacks English, the multilingual model's list over the whole corpus
        (`multilingual()`). In hybrid mode a long first query with a focus (`kb.focus.focus`: its asking sentences
        without the instructions) gets one more dense list, of that focus."""
        from kb.focus import focus
        from kb.text import tokenize

        if mode not in MODES:
            raise QueryError(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
        if self.generation == 0 or self.lexical is None or len(self.lexical) == 0:
            raise QueryError(f"the knowledge base at {self.kb.path} is empty; add documents with `kb ingest PATH`")
        found = Candidates(mode, [QueryLists(q) for q in queries])
        timings = found.timings_ms
        depth = candidates or self.candidates_per_list
        allowed = self._allowed_ids(path_glob)
        if allowed is not None and not allowed:
            found.nothing_allowed = True
            return found
        if mode in ("hybrid", "bm25"):
            t = time.perf_counter()
            mask = None if allowed is None else np.isin(self.lexical.ids, np.fromiter(allowed, dtype=np.int64))
            any_terms = False
            for lists in found.queries:
                tokens = tokenize(lists.query)
                any_terms = any_terms or bool(tokens)
                # each term once: a long question's boilerplate repeats its common words ("answer", "package"),
                # and BM25 would count every repetition (bench/longdocs.py)
                lists.bm25 = self.lexical.search(list(dict.fromkeys(tokens)), depth, allowed=mask)
                # a query whose words mostly do not occur in the corpus (a question in another language than
                # the documents) gets a BM25 list of incidental matches: trust it less. The square root keeps
                # weight on a list led by the one word that did match (a code, a version number).
                lists.bm25_weight = self.bm25_weight * self.lexical.coverage(tokens) ** 0.5
            timings["bm25"] = (time.perf_counter() - t) * 1000
            if mode == "bm25" and not any_terms:
                raise QueryError("the query has no searchable terms (only stop words or punctuation)")
        if mode in ("hybrid", "dense") and queries:
            if not queries[0].strip():
                raise QueryError("the query is empty")
            t = time.perf_counter()
            # hybrid: a long question's need without its preamble and instructions (kb.focus), embedded with the
            # queries and searched as one more dense list (the whole question's vector is mostly boilerplate)
            need = focus(queries[0]) if self.focus_weight and mode == "hybrid" else None
            vectors = self.embedder.embed_queries([*queries, *([need] if need else [])])
            timings["embed"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            flt = None if allowed is None else (lambda label: label in allowed)
            for lists, v in zip(found.queries, vectors):
                lists.dense = self.dense.search(v, depth, filter_fn=flt)
            if need:
                found.queries.append(QueryLists(need, dense=self.dense.search(vectors[-1], depth, filter_fn=flt),
                                                weight=self.focus_weight))
            # hybrid only: `--mode dense` stays the one dense list it names
            other = self.cross_language(queries[0]) if cross and mode == "hybrid" else None
            if other and self.language_mix()[other] < 1.0:  # (a corpus all in that language: the same list)
                ids = self.languages[other] if allowed is None else self.languages[other] & allowed
                if ids:
                    hits = self.dense.search(vectors[0], depth, filter_fn=lambda label: label in ids)
                    found.queries.append(QueryLists(queries[0], dense=hits, cross=True,
                                                    weight=standout([s for _, s in hits])))
            timings["dense"] = (time.perf_counter() - t) * 1000
            wanted = cross if multilingual is None else multilingual
            if wanted and mode == "hybrid" and self.multilingual(queries[0]):
                from kb.embedders.multilingual import multilingual_embedder

                t = time.perf_counter()
                vector = multilingual_embedder().embed_queries([queries[0]])[0]
                hits = self.multilingual_index.search(vector, depth, filter_fn=flt)
                found.queries.append(QueryLists(queries[0], dense=hits, multilingual=True,
                                                weight=self.multilingual_weight))
                timings["multilingual"] = (time.perf_counter() - t) * 1000
        return found

    def fuse(self, found: Candidates, k: int = 10, rerank: bool = True, reserve: Sequence[str] = ()
             ) -> SearchResponse:
        """RRF over every candidate list (BM25 lists first, then dense, each in query order), then the rerank
        (of the first query) when asked for and configured, the best `k` as Hits. Scores, `ranks` and
        `list_scores` of the first query's own lists tell how strong the evidence is. For each query in
        `reserve`, the first passage of each of its own lists (BM25, dense) is kept among the `k` (in the last
        places, instead of the weakest hits) when the fusion of all lists leaves it out: a machine translation
        adds the other language's best passages, which the question's own lists outvote otherwise. The first hit
        keeps its place, and so does a hit the first query's BM25 and dense lists both rank in their top
        `AGREE`."""
        query = found.queries[0].query if found.queries else ""
        timings = dict(found.timings_ms)
        if found.nothing_allowed:
            return SearchResponse(query, found.mode, [], timings)
        lists: list[list[int]] = []
        weights: list[float] = []
        owners: list[str] = []  # the query of each list
        per_list_scores: dict[str, dict[int, float]] = {"dense": {}, "bm25": {}}
        first_ranks: dict[str, dict[int, int]] = {}  # the original query's lists (the first)
        list_scores: dict[str, list[float]] = {}
        for name, floor in (("bm25", 0.0), ("dense", -1.0)):
            best = per_list_scores[name]
            for lists_of_query in found.queries:
                hits = getattr(lists_of_query, name)
                if hits is None:
                    continue
                lists.append([i for i, _ in hits])
                owners.append(lists_of_query.query)
                weights.append(lists_of_query.weight * (lists_of_query.bm25_weight if name == "bm25" else
                                                        self.cross_weight if lists_of_query.cross else 1.0))
                if name not in first_ranks:
                    first_ranks[name] = {i: r for r, (i, _) in enumerate(hits, 1)}
                    list_scores[name] = [sc for _, sc in hits]
                if lists_of_query.multilingual:  # another model's cosines: not comparable with e5's
                    list_scores.setdefault("multilingual", [sc for _, sc in hits])
                    continue
                for i, s in hits:
                    best[i] = max(best.get(i, floor), s)
        t = time.perf_counter()
        fused = rrf(lists, self.rrf_k, weights)
        timings["fuse"] = (time.perf_counter() - t) * 1000
        top = fused[: max(k, self.reranker.max_candidates) if (rerank and self.reranker) else k]
        kept = self._reserved(lists, weights, owners, reserve)
        if kept:  # (a translation's best beyond the cut: fetched too, so it can take a place below)
            scored, among = dict(fused), {j for j, _ in top}
            top += [(i, scored[i]) for i in kept if i not in among]
        rows = self._catalog.chunks_by_ids([i for i, _ in top])
        hits = []
        for chunk_id, score in top:
            row = rows.get(chunk_id)
            if row is None:  # removed by a commit after this searcher loaded its generation
                continue
            hit = Hit(chunk_id=chunk_id, score=score, path=row.path, title=row.title, text=row.text,
                      page=row.page_start, page_end=row.page_end, slide=row.slide, heading=row.heading_path,
                      doc_id=row.doc_id, ordinal=row.ordinal, ocr=row.ocr)
            if len(lists) > 1:
                hit.scores["rrf"] = score
            for name, s in per_list_scores.items():
                if chunk_id in s:
                    hit.scores[name] = s[chunk_id]
            if len(lists) == 1:  # one list: its own score says more than a rank-derived one
                hit.score = hit.scores[found.mode]
            hit.ranks = {name: r[chunk_id] for name, r in first_ranks.items() if chunk_id in r}
            hits.append(hit)
        if rerank and self.reranker is not None and hits:
            t = time.perf_counter()
            hits = self.reranker.rerank(query, hits)
            timings["rerank"] = (time.perf_counter() - t) * 1000
        if kept and hits:  # the fusion's best stays, and what the first query's two lists agree on
            first = found.queries[0]
            agreed = ({i for i, _ in first.bm25[:AGREE]} & {i for i, _ in first.dense[:AGREE]}
                      if first.bm25 and first.dense else set())
            hits = keep_reserved(hits, kept, k, keep=agreed | {hits[0].chunk_id})
        hits = hits[:k]
        for r, h in enumerate(hits, 1):
            h.rank = r
        timings["total"] = sum(timings.values())
        return SearchResponse(query, found.mode, hits, timings, list_scores)

    def _reserved(self, lists: list[list[int]], weights: list[float], owners: list[str], reserve: Sequence[str]
                  ) -> list[int]:
        """The first chunk of each of the reserved queries' own lists, each query's in the order of its lists
        fused alone (RRF, the same constants). Each list's first, not only the fused best: a translation's BM25
        and dense lists often lead with different passages, and the fused best was then a third one both rank
        lower (bench/ask_retrieval.py, cross-lingual among the sources 33 -> 37 of 39)."""
        kept: list[int] = []
        for query in reserve:
            own = [(ranked, w) for ranked, w, owner in zip(lists, weights, owners) if owner == query]
            firsts = {ranked[0] for ranked, _ in own if ranked}
            for i, _ in rrf([ranked for ranked, _ in own], self.rrf_k, [w for _, w in own]):
                if i in firsts and i not in kept:
                    kept.append(i)
        return kept


def keep_reserved(hits: list[Hit], kept: Sequence[int], k: int, keep: Collection[int] = ()) -> list[Hit]:
    """The first `k` hits, with every chunk of `kept` among them: a kept chunk beyond the `k` takes the place of
    the weakest hit that is neither kept nor in `keep` (order otherwise unchanged); with no such hit, it is left
    out."""
    top, rest = hits[:k], hits[k:]
    for chunk_id in kept:
        if any(h.chunk_id == chunk_id for h in top):
            continue
        extra = next((h for h in rest if h.chunk_id == chunk_id), None)
        weakest = next((j for j in range(len(top) - 1, -1, -1)
                        if top[j].chunk_id not in kept and top[j].chunk_id not in keep), None)
        if extra is None or weakest is None:
            continue
        top = top[:weakest] + top[weakest + 1:] + [extra]
    return top


def open_searcher(settings) -> Searcher:
    """A Searcher over the committed generation that embeds queries with the knowledge base's own model
    and reranks with the configured cross-encoder, if any."""
    from kb.embedders import embedding_spec, load_embedder, pick_device
    from kb.store import EmbeddingInfo, KnowledgeBaseMissing, check_model

    kb = KnowledgeBase(settings.kb_path)
    if not kb.exists():
        raise KnowledgeBaseMissing(f"no knowledge base at {kb.path}; create one with `kb ingest PATH`")
    spec = embedding_spec(settings, kb)
    reranker = None
    if settings.reranker:
        from kb.rerank import CrossEncoderReranker

        reranker = CrossEncoderReranker(settings.reranker, device=pick_device(settings.device),
                                        allow_network=settings.allow_network)

    def embedder():
        """The query embedder, once a dense list is wanted (`--mode bm25` never loads it): the knowledge base's own
        model, or an error with the fix when the configuration names another (same dimension or not, its query
        vectors would be searched against vectors they cannot be compared with)."""
        loaded = load_embedder(spec, device=settings.device, allow_network=settings.allow_network,
                               precision=settings.embed_precision, cache_dir=str(models_dir(settings)))
        check_model({key: kb.recorded(key) or "" for key in ("embedding_model", "embedding_dim")},
                    EmbeddingInfo(loaded.model_id, spec, loaded.dim))
        return loaded

    return Searcher(kb, embedder, reranker=reranker, rrf_k=settings.rrf_k, candidates=settings.candidates,
                    bm25_weight=settings.bm25_weight)
