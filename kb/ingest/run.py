"""An ingest from start to end: under the writer lock, plan (what changed) → process (extract, chunk, embed) →
commit (one atomic generation).

No printing: progress goes to a callback, the outcome is an IngestReport. Nothing reaches the knowledge base
until the final atomic commit (the embedding cache aside, which is only ever added to), so an interrupted run
leaves the previous state whole and the next run reuses the vectors it already computed.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Callable

from kb.errors import KnowledgeBaseError
from kb.ingest.options import IngestOptions, IngestReport, Progress
from kb.ingest.plan import FileTask, make_plan
from kb.ingest.process import LocalProcessor, Processed
from kb.store import Changes, DocumentUpdate, EmbeddingInfo, KnowledgeBase


def ingest(kb: KnowledgeBase, options: IngestOptions, embedding_spec: str, embedder_factory: Callable,
           model_id: str, on_progress: Callable[[Progress], None] | None = None) -> IngestReport:
    """Bring the knowledge base up to date with `options.paths` (or every root ingested before).

    `embedder_factory()` loads the embedding model; it is called only if some file needs chunking.
    """
    from kb.chunking import CHUNKER_VERSION

    started = time.perf_counter()
    emit = on_progress or (lambda p: None)
    report = IngestReport()
    with kb.writer(timeout=options.lock_timeout, command="kb ingest") as writer:
        cat = writer.catalog
        emit(Progress("scan"))
        plan = make_plan(cat, options)
        recorded_model = cat.get_meta("embedding_model")
        rebuild = options.force or (recorded_model is not None and recorded_model != model_id)
        if recorded_model and recorded_model != model_id and cat.count_chunks() and not options.force:
            writer.check_model(EmbeddingInfo(model_id, embedding_spec, 0))  # raises with the fix
        report.unchanged, report.removed, report.skipped_other = plan.unchanged, plan.removed, plan.skipped_other
        report.skipped_special, report.skipped_links = plan.skipped_special, plan.skipped_links
        report.failed.extend(plan.failed)
        changes = plan.changes

        def check_dimension(embedder) -> None:
            recorded_dim = cat.get_meta("embedding_dim")
            if recorded_dim and not rebuild and int(recorded_dim) != embedder.dim and cat.count_chunks():
                raise KnowledgeBaseError(f"embedding dimension changed ({recorded_dim} recorded, model gives "
                                         f"{embedder.dim}); re-embed with `kb ingest --force`")

        processor = _processor_class(options)(options, embedder_factory, model_id, cat, on_progress=emit,
                                              on_embedder=check_dimension)
        with contextlib.closing(processor.run(plan.tasks)) as items:  # closed at once on Ctrl-C, not at exit
            for item in items:
                _apply(item, changes, report)
        report.chunks_embedded, report.chunks_reused = processor.embedded, processor.reused

        changes.rebuild = rebuild
        files = len(plan.tasks)
        pages = {"pages_done": report.pages_read, "ocr_pages_done": report.ocr_pages}
        emit(Progress("commit", files, files, report.chunks_embedded + report.chunks_reused, report.chunks_total,
                      **pages))
        dim = processor.embedder.dim if processor.embedder is not None else int(cat.get_meta("embedding_dim") or 0)
        if dim == 0:  # nothing was ever embedded here, so there is no index to (re)build either
            changes.rebuild = False
        report.generation = writer.commit(
            changes, EmbeddingInfo(model_id, embedding_spec, dim), str(CHUNKER_VERSION),
            on_multilingual=lambda done, total: emit(Progress("multilingual", files, files, done, total, **pages)))
    report.seconds = time.perf_counter() - started
    emit(Progress("done", files, files, report.chunks_total, report.chunks_total, **pages))
    return report


def _processor_class(options: IngestOptions):
    """Where the process stage runs: here, or on a Ray cluster (imported only then)."""
    if options.ray_address:
        from kb.ingest.cluster import RayProcessor

        return RayProcessor
    return LocalProcessor


def _apply(item: Processed, changes: Changes, report: IngestReport) -> None:
    """One processed file into the commit's changes and the report."""
    task, doc = item.task, item.document
    if item.error is not None:
        _record_failure(changes, report, task, item.error)
        return
    report.chunks_total += len(item.chunks)
    report.pages_read += doc.pages or 0
    report.ocr_pages += doc.ocr_pages
    report.warnings.extend((task.path, w) for w in doc.warnings)
    changes.updates.append(DocumentUpdate(
        path=task.path, sha256=task.sha256, size=task.size, mtime=task.mtime, format=doc.format, title=doc.title,
        pages=doc.pages, status="ok", warnings=doc.warnings, chunks=item.chunks, ocr_pages=doc.ocr_pages))
    (report.updated if task.previous_status == "ok" else report.added).append(task.path)


def _record_failure(changes: Changes, report: IngestReport, task: FileTask, reason: str) -> None:
    if task.previous_status == "ok":
        # a file that used to work and now fails: keep what the knowledge base already knows about it
        report.failed.append((task.path, f"{reason} (previous version kept)"))
        return
    report.failed.append((task.path, reason))
    changes.updates.append(DocumentUpdate(
        path=task.path, sha256=task.sha256, size=task.size, mtime=task.mtime, format=None, title=None, pages=None,
        status="failed", error=reason))


def ingest_with_settings(settings, options: IngestOptions, on_progress: Callable[[Progress], None] | None = None,
                         on_model_load: Callable[[str], None] | None = None) -> IngestReport:
    """`ingest` with the embedding model chosen from settings: the knowledge base's recorded model unless
    the user configured another one explicitly."""
    from kb.config import models_dir
    from kb.embedders import embedding_spec, load_embedder, resolve_embedder

    kb = KnowledgeBase(settings.kb_path)
    spec = embedding_spec(settings, kb)
    resolved = resolve_embedder(spec, allow_network=settings.allow_network)

    load = functools.partial(load_embedder, spec, device=settings.device, allow_network=settings.allow_network,
                             precision=settings.embed_precision, cache_dir=str(models_dir(settings)))
    if options.ray_address:  # the factory runs on the Ray workers: say it here, once, and ship the plain one
        if on_model_load:
            on_model_load(resolved.model_id)
        return ingest(kb, options, spec, load, resolved.model_id, on_progress=on_progress)

    def factory():
        if on_model_load:
            on_model_load(resolved.model_id)
        return load()

    return ingest(kb, options, spec, factory, resolved.model_id, on_progress=on_progress)
