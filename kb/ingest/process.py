"""Stage 2 of an ingest: process the planned files. Read → extract → chunk → tokenize → embed, here on this
machine (extraction in worker processes running ahead while the main process embeds).

The contract every processor keeps (the commit relies on it): `run(tasks)` yields one `Processed` per task, in
task order; by the time the iterator is exhausted, the vector of every chunk it yielded is in the knowledge
base's embedding cache. Vectors reach the cache in pools of EMBED_POOL texts, a huge document's chunks in several
(the cache is keyed by content and only ever added to, so writing it before the commit publishes nothing).

While a pool is embedded (on this thread: the inference engines stay on the main thread, where an interrupted
process can exit cleanly), a helper thread reads and chunks the next files, up to the next pool's worth, so the
tokenizers and jieba run beside the model instead of between its pools; the first pool is small (FIRST_POOL) so
that the model starts at once.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from kb.document import Chunk, Document
from kb.errors import ExtractionError
from kb.heap import give_back_freed_memory
from kb.ingest.options import ExtractOptions, IngestOptions, Progress
from kb.ingest.plan import FileTask
from kb.ingest.workers import run_budgeted, size_text

EMBED_POOL = 512  # texts per embedding call at most (the embedders sort each call by length); a pool's tokens and
#                   temporaries are held at once, so a huge document is split over several pools
FIRST_POOL = 64  # the first pool's size: embedding starts after this many chunks, not EMBED_POOL


@dataclass
class Processed:
    """One file's outcome: a document with its chunks (tokens set, vectors in the cache), or why not."""

    task: FileTask
    document: Document | None = None
    chunks: list[Chunk] = field(default_factory=list)
    error: str | None = None


# ---- extraction (each file in a worker process with a time and memory budget) ------------------

def extract_one(path: str, options: ExtractOptions) -> tuple[Document | None, str | None]:
    """One file's Document, or why not: whatever a hostile file does to the readers becomes a reason."""
    from kb.extract import extract_file
    from kb.extract.ocr import set_page_listener
    from kb.ingest.workers import tick

    set_page_listener(tick)  # in a worker, each OCR'd page moves the progress bar; elsewhere a no-op
    try:
        return _readable(extract_file(Path(path), **options.extract_kwargs())), None
    except ExtractionError as e:
        return None, str(e) or type(e).__name__
    except MemoryError:
        return None, f"needed more than {size_text(options.memory_mb)} of memory (extract_memory_mb); skipped"
    except RecursionError:
        return None, "objects nested too deeply to read; skipped"
    except Exception as e:  # a library bug on a hostile file must not end the run
        return None, f"unexpected error while reading: {type(e).__name__}: {e}"


def _readable(doc: Document) -> Document:
    """Titles and headings taken from a file name that is not UTF-8 hold lone surrogates, which no tokenizer or
    database takes: show those bytes as U+FFFD (the path itself keeps them, reversibly)."""
    import re

    def fix(s: str) -> str:
        return re.sub("[\ud800-\udfff]", "\ufffd", s)

    doc.title = fix(doc.title) if doc.title else doc.title
    for sec in doc.sections:
        sec.heading_path = tuple(fix(h) for h in sec.heading_path)
        sec.text = fix(sec.text)
    return doc


def extract_all(paths: Sequence[str], options: ExtractOptions, workers: int,
                on_page: Callable[[int], None] | None = None) -> Iterator[tuple[str, Document | None, str | None]]:
    """Yield extraction results in order. With workers (>= 1) every file is read in a worker process under
    the budgets of `options` and extraction runs ahead while the caller embeds, `on_page(index)` called as
    each page of paths[index] is read by OCR; workers=0 reads in this process with no budget (tests,
    debugging)."""
    if workers <= 0:
        for p in paths:
            yield (p, *extract_one(p, options))
        return
    results = run_budgeted(paths, options, workers, extract_one, ahead=max(16, 8 * workers), on_tick=on_page)
    for p, result in zip(paths, results):
        yield (p, *result)


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
        self._pages = self._ocr_pages = 0  # of the files done
        self._reading: dict[int, int] = {}  # task index -> pages OCR'd so far, of files still being read
        self._pool_size = min(FIRST_POOL, EMBED_POOL)
        self._files = None  # (task index, Processed read and chunked), one per task, in order
        self._ahead: deque = deque()  # files the helper read and chunked while a pool was embedded

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
        reader = _ReadAhead(self._files, self._ahead, EMBED_POOL)  # reads on while the model runs
        try:
            vectors = self.embedder.embed_documents([self._pending[h] for h in hashes],
                                                    batch_size=self.options.batch_size)
        finally:
            reader.finish()
        self.cache.store_vectors(self.model_id, ((h, v.tobytes()) for h, v in zip(hashes, vectors)))
        self.embedded += len(hashes)
        self._pending.clear()
        self._pool_size = EMBED_POOL
        give_back_freed_memory()  # kb.heap: the pool's temporaries, which glibc would keep
        self._emit(self._progress("embed"))

    def _progress(self, phase: str, path: str | None = None) -> Progress:
        reading = sum(self._reading.values())
        return Progress(phase, self._files_done, self._files_total, self.embedded + self.reused, self.chunks, path,
                        pages_done=self._pages + reading, ocr_pages_done=self._ocr_pages + reading)

    def _page_read(self, index: int) -> None:
        self._reading[index] = self._reading.get(index, 0) + 1
        self._emit(self._progress("extract"))

    def chunk(self, doc: Document) -> list[Chunk]:
        """A document's chunks, with their BM25 tokens: those of the index text (title, heading path, text) and
        the file name's words that it lacks, so that a question naming the file ("in ACME_2017_10K…", "the
        lshort manual") finds every chunk of it. The file name is in BM25 only: the embedded text (and so the
        embedding cache) stays as it was (docs/retrieval.md, "Questions about long documents")."""
        from kb.chunking import chunk_document
        from kb.text import chunk_tokens, file_name_tokens, text_language

        embedder = self._load()
        chunks = chunk_document(doc, embedder.count_tokens, max_tokens=embedder.max_tokens,
                                target_tokens=self.options.chunk_tokens or None,
                                overlap_tokens=self.options.chunk_overlap)
        name_tokens = file_name_tokens(doc.path.name)
        for c in chunks:
            c.tokens = tuple(chunk_tokens(c.index_text, name_tokens))
            c.lang = text_language(c.index_text)
        return chunks

    def _read(self, tasks: Sequence[FileTask]) -> Iterator[tuple[int, Processed]]:
        """(task index, the file read and chunked: vectors not yet looked up), on whichever thread pulls: this one,
        or the helper during a pool."""
        extracted = extract_all([t.path for t in tasks], self.options.extraction(), self.options.workers,
                                on_page=self._page_read)
        for index, (task, (_, doc, error)) in enumerate(zip(tasks, extracted)):
            item = Processed(task, document=doc, error=error)
            if doc is not None and error is None:
                try:
                    item.chunks = self.chunk(doc)
                except Exception as e:
                    if self.embedder is None:
                        raise  # the model itself could not be loaded or was rejected: not this file's fault
                    item.error = f"unexpected error while chunking: {type(e).__name__}: {e}"
            yield index, item

    def _next(self) -> tuple[int, Processed] | None:
        if self._ahead:
            return self._ahead.popleft()
        return next(self._files, None)

    def run(self, tasks: Sequence[FileTask]) -> Iterator[Processed]:
        self._files_total = len(tasks)
        self._files = self._read(tasks)
        try:
            while (read := self._next()) is not None:
                yield self._take(*read)
            if self.embedder is not None:
                self._flush()
        finally:
            self._ahead.clear()
            self._files.close()

    def _take(self, index: int, item: Processed) -> Processed:
        """A read file counted, its chunks' vectors looked up in the cache and the rest queued for embedding."""
        doc = item.document
        self._files_done += 1
        self._reading.pop(index, None)
        if doc is not None:
            self._pages += doc.pages or 0
            self._ocr_pages += doc.ocr_pages
        self._emit(self._progress("extract", item.task.path))
        if item.error is not None:
            return Processed(item.task, error=item.error)
        if not item.chunks:
            return Processed(item.task, error="no text to index")
        cached = self.cache.cached_vectors(self.model_id, [c.text_hash for c in item.chunks])
        self.chunks += len(item.chunks)
        for c in item.chunks:
            h = c.text_hash
            if h in cached:
                self.reused += 1
            elif h not in self._pending:
                self._pending[h] = c.index_text
                if len(self._pending) >= self._pool_size:
                    self._flush()  # mid-document too: a 1,000-page PDF's 2,400 chunks are five pools, not one
        return item


class _ReadAhead:
    """A helper thread that pulls read-and-chunked files into `ahead` while the main thread embeds a pool, until
    they hold `chunks` chunks or the files run out. Pure Python, jieba and the tokenizers run on it, never an
    inference engine. `finish()` stops it after the file under way and re-raises what it raised."""

    def __init__(self, files: Iterator[tuple[int, Processed]], ahead: deque, chunks: int):
        self._files, self._ahead, self._chunks = files, ahead, chunks
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="kb-read-ahead")
        self._thread.start()

    def _run(self) -> None:
        try:
            have = sum(len(item.chunks) for _, item in self._ahead)
            while have < self._chunks and not self._stop.is_set():
                read = next(self._files, None)
                if read is None:
                    return
                self._ahead.append(read)
                have += len(read[1].chunks)
        except BaseException as e:  # raised on the main thread, by finish()
            self._error = e

    def finish(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
