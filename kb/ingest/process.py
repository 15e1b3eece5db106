"""Stage 2 of an ingest: process the planned files. Read → extract → chunk → tokenize → embed, here on this
machine (extraction in worker processes running ahead while the main process embeds).

The contract every processor keeps (the commit relies on it): `run(tasks)` yields one `Processed` per task, in
task order; by the time the iterator is exhausted, the vector of every chunk it yielded is in the knowledge
base's embedding cache. Vectors reach the cache in pools of EMBED_POOL texts (the cache is keyed by content and
only ever added to, so writing it before the commit publishes nothing).
"""

from __future__ import annotations

from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from kb.document import Chunk, Document
from kb.errors import ExtractionError
from kb.ingest.options import IngestOptions, Progress
from kb.ingest.plan import FileTask

EMBED_POOL = 512  # texts per embedding call: the embedders sort each call by length
PARALLEL_MIN_FILES = 8  # fewer files than this are extracted in-process (a worker costs ~0.5 s to start)


@dataclass
class Processed:
    """One file's outcome: a document with its chunks (tokens set, vectors in the cache), or why not."""

    task: FileTask
    document: Document | None = None
    chunks: list[Chunk] = field(default_factory=list)
    error: str | None = None


# ---- extraction (runs in a worker process for larger runs) ------------------------------------

def extract_one(path: str, password: str | None) -> tuple[Document | None, str | None]:
    from kb.extract import extract_file

    try:
        return extract_file(Path(path), password=password), None
    except ExtractionError as e:
        return None, str(e) or type(e).__name__
    except Exception as e:  # a library bug on a hostile file must not end the run
        return None, f"unexpected error while reading: {type(e).__name__}: {e}"


def extract_all(paths: Sequence[str], password: str | None, workers: int
                ) -> Iterator[tuple[str, Document | None, str | None]]:
    """Yield extraction results in order; with workers, extraction runs ahead while the caller embeds."""
    if workers <= 0 or len(paths) < PARALLEL_MIN_FILES:
        for p in paths:
            yield (p, *extract_one(p, password))
        return
    import multiprocessing

    ahead = max(16, 8 * workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: list[tuple[str, Future]] = []
        try:
            for p in paths:
                pending.append((p, pool.submit(extract_one, p, password)))
                if len(pending) >= ahead:
                    q, fut = pending.pop(0)
                    yield (q, *fut.result())
            for q, fut in pending:
                yield (q, *fut.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


# ---- the local processor -------------------------------------------------------------------------

class LocalProcessor:
    """Extract, chunk and embed on this machine. `embedder_factory()` is called once, when the first document
    needs chunking; `on_embedder(embedder)` may reject it (e.g. a dimension the knowledge base cannot take)."""

    def __init__(self, options: IngestOptions, embedder_factory: Callable, model_id: str, cache,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_embedder: Callable[[object], None] | None = None):
        self.options = options
        self.model_id = model_id
        self.cache = cache  # cached_vectors(model_id, hashes) -> {hash: bytes}; store_vectors(model_id, pairs)
        self._factory = embedder_factory
        self._on_embedder = on_embedder or (lambda e: None)
        self._emit = on_progress or (lambda p: None)
        self.embedder = None
        self.embedded = self.reused = self.chunks = 0
        self._pending: dict[str, str] = {}  # text hash -> index_text still to embed
        self._files_done = self._files_total = 0

    def _load(self):
        if self.embedder is None:
            embedder = self._factory()
            self._on_embedder(embedder)
            self.embedder = embedder
        return self.embedder

    def _flush(self) -> None:
        if not self._pending:
            return
        hashes = list(self._pending)
        vectors = self.embedder.embed_documents([self._pending[h] for h in hashes],
                                                batch_size=self.options.batch_size)
        self.cache.store_vectors(self.model_id, ((h, v.tobytes()) for h, v in zip(hashes, vectors)))
        self.embedded += len(hashes)
        self._pending.clear()
        self._emit(Progress("embed", self._files_done, self._files_total, self.embedded + self.reused, self.chunks))

    def chunk(self, doc: Document) -> list[Chunk]:
        """A document's chunks, with their BM25 tokens."""
        from kb.chunking import chunk_document
        from kb.text import text_language, tokenize

        embedder = self._load()
        chunks = chunk_document(doc, embedder.count_tokens, max_tokens=embedder.max_tokens,
                                target_tokens=self.options.chunk_tokens or None,
                                overlap_tokens=self.options.chunk_overlap)
        for c in chunks:
            c.tokens, c.lang = tuple(tokenize(c.index_text)), text_language(c.index_text)
        return chunks

    def run(self, tasks: Sequence[FileTask]) -> Iterator[Processed]:
        self._files_total = len(tasks)
        extracted = extract_all([t.path for t in tasks], self.options.password, self.options.workers)
        for task, (path, doc, error) in zip(tasks, extracted):
            self._files_done += 1
            self._emit(Progress("extract", self._files_done, self._files_total, self.embedded + self.reused,
                                self.chunks, path))
            if error is not None:
                yield Processed(task, error=error)
                continue
            try:
                chunks = self.chunk(doc)
            except Exception as e:
                if self.embedder is None:
                    raise  # the model itself could not be loaded or was rejected: not this file's fault
                yield Processed(task, error=f"unexpected error while chunking: {type(e).__name__}: {e}")
                continue
            if not chunks:
                yield Processed(task, error="no text to index")
                continue
            cached = self.cache.cached_vectors(self.model_id, [c.text_hash for c in chunks])
            for c in chunks:
                h = c.text_hash
                if h in cached:
                    self.reused += 1
                elif h not in self._pending:
                    self._pending[h] = c.index_text
            self.chunks += len(chunks)
            yield Processed(task, document=doc, chunks=chunks)
            if len(self._pending) >= EMBED_POOL:
                self._flush()
        if self.embedder is not None:
            self._flush()
