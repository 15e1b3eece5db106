"""Ingest orchestration: discover files, diff against the catalog, extract, chunk, embed, commit.

No printing: progress goes to a callback, the outcome is an IngestReport. Nothing reaches the knowledge
base until the final atomic commit (the embedding cache aside, which is only ever added to), so an
interrupted run leaves the previous state whole and the next run reuses the vectors it already computed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from kb.document import Document, ExtractionError
from kb.store import (
    Changes,
    ChunkRecord,
    DocumentUpdate,
    EmbeddingInfo,
    KnowledgeBase,
    KnowledgeBaseError,
)

SKIP_DIRS = {"node_modules", "__pycache__", "venv", ".venv"}
EMBED_POOL = 512  # texts per embedding call: sentence-transformers sorts each call by length
PARALLEL_MIN_FILES = 8  # fewer files than this are extracted in-process (a worker costs ~0.5 s to start)


from kb.errors import UsageError  # noqa: E402,F401


@dataclass
class IngestOptions:
    paths: Sequence[Path] = ()
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    force: bool = False
    password: str | None = None
    workers: int = 1
    chunk_tokens: int = 0
    chunk_overlap: int = 32
    batch_size: int = 32
    lock_timeout: float = 0.0

    @classmethod
    def from_settings(cls, settings, **given) -> "IngestOptions":
        return cls(workers=settings.workers, chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap,
                   batch_size=settings.batch_size, lock_timeout=settings.lock_timeout, **given)


@dataclass
class Progress:
    phase: str  # "scan", "extract", "embed", "commit", "done"
    files_done: int = 0
    files_total: int = 0
    chunks_done: int = 0
    chunks_total: int = 0
    path: str | None = None


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    skipped_other: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_total: int = 0
    generation: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "added": len(self.added), "updated": len(self.updated), "unchanged": self.unchanged,
            "removed": len(self.removed),
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "warnings": [{"path": p, "message": m} for p, m in self.warnings],
            "added_paths": self.added, "updated_paths": self.updated, "removed_paths": self.removed,
            "skipped_other_types": self.skipped_other,
            "chunks": {"embedded": self.chunks_embedded, "reused": self.chunks_reused, "total": self.chunks_total},
            "generation": self.generation, "seconds": round(self.seconds, 3),
        }


# ---- discovery ---------------------------------------------------------------------------------

def discover(roots: Sequence[Path], include: Sequence[str] = (), exclude: Sequence[str] = ()
             ) -> tuple[list[Path], int]:
    """Files to ingest under `roots`, and how many other files were passed over (not a document type).

    Hidden and VCS directories are skipped, and so is whatever a `.kbignore` file (fnmatch patterns, one
    per line, relative to its folder) names; a file named explicitly is always taken. Legacy office
    formats are kept so they can be reported with a hint instead of silently ignored.
    """
    from kb.extract import is_candidate

    files: list[Path] = []
    skipped = 0
    for root in roots:
        if root.is_file():
            files.append(root)
            continue
        ignores: list[tuple[Path, list[str]]] = []
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            if ".kbignore" in filenames:
                ignores.append((here, _read_ignore(here / ".kbignore")))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS
                                 and not _ignored(here / d, ignores))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = here / name
                rel = path.relative_to(root).as_posix()
                if include and not any(_match(rel, name, g) for g in include):
                    continue
                if any(_match(rel, name, g) for g in exclude) or _ignored(path, ignores):
                    continue
                if is_candidate(path):
                    files.append(path)
                else:
                    skipped += 1
    return list(dict.fromkeys(files)), skipped


def _match(rel: str, name: str, pattern: str) -> bool:
    return fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, pattern)


def _read_ignore(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _ignored(path: Path, ignores: list[tuple[Path, list[str]]]) -> bool:
    for base, patterns in ignores:
        try:
            rel = path.relative_to(base).as_posix()
        except ValueError:
            continue
        if any(_match(rel, path.name, p) for p in patterns):
            return True
    return False


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- extraction (runs in a worker process for larger runs) ------------------------------------

def _extract(path: str, password: str | None) -> tuple[Document | None, str | None]:
    from kb.extract import extract_file

    try:
        return extract_file(Path(path), password=password), None
    except ExtractionError as e:
        return None, str(e) or type(e).__name__
    except Exception as e:  # a library bug on a hostile file must not end the run
        return None, f"unexpected error while reading: {type(e).__name__}: {e}"


def _extract_all(paths: Sequence[str], password: str | None, workers: int
                 ) -> Iterator[tuple[str, Document | None, str | None]]:
    """Yield extraction results in order; with workers, extraction runs ahead while the caller embeds."""
    if workers <= 0 or len(paths) < PARALLEL_MIN_FILES:
        for p in paths:
            yield (p, *_extract(p, password))
        return
    import multiprocessing

    ahead = max(16, 8 * workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: list[tuple[str, Future]] = []
        it = iter(paths)
        try:
            for p in it:
                pending.append((p, pool.submit(_extract, p, password)))
                if len(pending) >= ahead:
                    q, fut = pending.pop(0)
                    yield (q, *fut.result())
            for q, fut in pending:
                yield (q, *fut.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


# ---- the run -----------------------------------------------------------------------------------

@dataclass
class _Planned:
    path: str
    stat: os.stat_result
    sha256: str
    existing_status: str | None


def ingest(kb: KnowledgeBase, options: IngestOptions, embedding_spec: str, embedder_factory: Callable,
           model_id: str, on_progress: Callable[[Progress], None] | None = None) -> IngestReport:
    """Bring the knowledge base up to date with `options.paths` (or every root ingested before).

    `embedder_factory()` loads the embedding model; it is called only if some file needs chunking.
    """
    from kb.chunking import CHUNKER_VERSION, chunk_document
    from kb.document import text_hash
    from kb.text import tokenize

    started = time.perf_counter()
    emit = on_progress or (lambda p: None)
    report = IngestReport()
    with kb.writer(timeout=options.lock_timeout, command="kb ingest") as writer:
        cat = writer.catalog
        roots = [Path(p).expanduser().resolve() for p in options.paths]
        for r in roots:
            if not r.exists():
                raise UsageError(f"no such file or directory: {r}")
        changes = Changes()
        if not roots:
            recorded = [Path(p) for p in cat.roots()]
            if not recorded:
                raise UsageError("nothing to ingest: name a folder or file, e.g. `kb ingest ~/Documents/papers`")
            for r in recorded:
                if not r.exists():
                    changes.remove_roots.append(str(r))
            roots = [r for r in recorded if r.exists()]
        changes.add_roots = [str(r) for r in roots]

        recorded_model = cat.get_meta("embedding_model")
        rebuild = options.force or (recorded_model is not None and recorded_model != model_id)
        if recorded_model and recorded_model != model_id and cat.count_chunks() and not options.force:
            writer.check_model(EmbeddingInfo(model_id, embedding_spec, 0))  # raises with the fix

        emit(Progress("scan"))
        files, report.skipped_other = discover(roots, options.include, options.exclude)
        existing = {d.path: d for d in cat.documents()}
        seen = set()
        plan: list[_Planned] = []
        for path in files:
            key = str(path)
            seen.add(key)
            try:
                st = path.stat()
            except OSError as e:
                report.failed.append((key, f"cannot read: {e.strerror or e}"))
                continue
            old = existing.get(key)
            if old and not options.force and old.size == st.st_size and old.mtime == st.st_mtime:
                if old.status == "ok" or options.password is None:
                    _count_unchanged(report, old)
                    continue
            try:
                digest = file_sha256(path)
            except OSError as e:
                report.failed.append((key, f"cannot read: {e.strerror or e}"))
                continue
            if old and not options.force and old.sha256 == digest and (old.status == "ok" or options.password is None):
                _count_unchanged(report, old)
                changes.updates.append(_touch(old, st))
                continue
            plan.append(_Planned(key, st, digest, old.status if old else None))

        for root in [*roots, *map(Path, changes.remove_roots)]:
            prefix = str(root).rstrip(os.sep) + os.sep
            for path, doc in existing.items():
                if (path == str(root) or path.startswith(prefix)) and path not in seen and not os.path.exists(path):
                    changes.remove_doc_ids.append(doc.id)
                    report.removed.append(path)

        embedder = None
        pending: dict[str, str] = {}  # text_hash -> index_text still to embed
        total_files = len(plan)

        def flush() -> None:
            if not pending:
                return
            hashes = list(pending)
            vectors = embedder.embed_documents([pending[h] for h in hashes], batch_size=options.batch_size)
            with cat.transaction():
                cat.store_vectors(embedder.model_id, ((h, v.tobytes()) for h, v in zip(hashes, vectors)))
            report.chunks_embedded += len(hashes)
            pending.clear()
            emit(Progress("embed", files_done, total_files, report.chunks_embedded + report.chunks_reused,
                          chunks_seen))

        files_done = 0
        chunks_seen = 0
        extracted = _extract_all([p.path for p in plan], options.password, options.workers)
        for item, (path, doc, error) in zip(plan, extracted):
            files_done += 1
            emit(Progress("extract", files_done, total_files, report.chunks_embedded + report.chunks_reused,
                          chunks_seen, path))
            if error is not None:
                _record_failure(changes, report, item, error)
                continue
            try:
                if embedder is None:
                    embedder = embedder_factory()
                    recorded_dim = cat.get_meta("embedding_dim")
                    if recorded_dim and not rebuild and int(recorded_dim) != embedder.dim and cat.count_chunks():
                        raise KnowledgeBaseError(
                            f"embedding dimension changed ({recorded_dim} recorded, model gives {embedder.dim}); "
                            f"re-embed with `kb ingest --force`")
                chunks = chunk_document(doc, embedder.count_tokens, max_tokens=embedder.max_tokens,
                                        target_tokens=options.chunk_tokens or None,
                                        overlap_tokens=options.chunk_overlap)
            except KnowledgeBaseError:
                raise
            except Exception as e:
                _record_failure(changes, report, item, f"unexpected error while chunking: {type(e).__name__}: {e}")
                continue
            if not chunks:
                _record_failure(changes, report, item, "no text to index")
                continue
            records = []
            hashes = [text_hash(c.index_text) for c in chunks]
            cached = cat.cached_vectors(model_id, hashes)
            for c, h in zip(chunks, hashes):
                records.append(ChunkRecord(c.ordinal, c.text, c.index_text, tokenize(c.index_text), c.page_start,
                                           c.page_end, c.slide, c.heading_path, c.n_tokens, h))
                if h in cached:
                    report.chunks_reused += 1
                elif h not in pending:
                    pending[h] = c.index_text
            chunks_seen += len(chunks)
            report.chunks_total += len(chunks)
            for w in doc.warnings:
                report.warnings.append((path, w))
            changes.updates.append(DocumentUpdate(
                path=path, sha256=item.sha256, size=item.stat.st_size, mtime=item.stat.st_mtime,
                format=doc.format, title=doc.title, pages=doc.pages, status="ok", warnings=doc.warnings,
                chunks=records))
            (report.updated if item.existing_status == "ok" else report.added).append(path)
            if len(pending) >= EMBED_POOL:
                flush()
        if embedder is not None:
            flush()

        changes.rebuild = rebuild
        emit(Progress("commit", files_done, total_files, report.chunks_embedded + report.chunks_reused, chunks_seen))
        dim = embedder.dim if embedder is not None else int(cat.get_meta("embedding_dim") or 0)
        if dim == 0:  # nothing was ever embedded here, so there is no index to (re)build either
            changes.rebuild = False
        report.generation = writer.commit(changes, EmbeddingInfo(model_id, embedding_spec, dim),
                                          str(CHUNKER_VERSION))
    report.seconds = time.perf_counter() - started
    emit(Progress("done", files_done, total_files, report.chunks_total, report.chunks_total))
    return report


def _count_unchanged(report: IngestReport, old) -> None:
    if old.status == "ok":
        report.unchanged += 1
    else:
        report.failed.append((old.path, old.error or "failed"))


def _touch(old, st: os.stat_result) -> DocumentUpdate:
    """Same content, new mtime: remember the mtime so the next run skips hashing it."""
    return DocumentUpdate(path=old.path, sha256=old.sha256, size=st.st_size, mtime=st.st_mtime, format=old.format,
                          title=old.title, pages=old.pages, status=old.status, error=old.error,
                          warnings=old.warnings.split("\n") if old.warnings else ())


def _record_failure(changes: Changes, report: IngestReport, item: _Planned, reason: str) -> None:
    if item.existing_status == "ok":
        # a file that used to work and now fails: keep what the knowledge base already knows about it
        report.failed.append((item.path, f"{reason} (previous version kept)"))
        return
    report.failed.append((item.path, reason))
    changes.updates.append(DocumentUpdate(
        path=item.path, sha256=item.sha256, size=item.stat.st_size, mtime=item.stat.st_mtime, format=None,
        title=None, pages=None, status="failed", error=reason))


def ingest_with_settings(settings, options: IngestOptions, on_progress: Callable[[Progress], None] | None = None,
                         on_model_load: Callable[[str], None] | None = None) -> IngestReport:
    """`ingest` with the embedding model chosen from settings: the knowledge base's recorded model unless
    the user configured another one explicitly."""
    from kb.models import embedding_spec_for, load_embedder, resolve_embedder

    kb = KnowledgeBase(settings.kb_path)
    spec = embedding_spec_for(settings.embedding_model, settings.sources["embedding_model"],
                              kb.recorded("embedding_spec"))
    resolved = resolve_embedder(spec, allow_network=settings.allow_network)

    def factory():
        if on_model_load:
            on_model_load(resolved.model_id)
        return load_embedder(spec, device=settings.device, allow_network=settings.allow_network)

    return ingest(kb, options, spec, factory, resolved.model_id, on_progress=on_progress)
