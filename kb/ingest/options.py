"""What an ingest is asked to do (IngestOptions), what it tells while it runs (Progress) and what it did
(IngestReport). Data only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class ExtractOptions:
    """How each file is extracted: what `kb.extract.extract_file` is given (`extract_kwargs`, keyword arguments
    only, so a new extraction option is one more field here) and the budgets of the worker that runs it."""

    password: str | None = None
    ocr: str = "auto"  # auto, always, never
    timeout: float = 120.0  # seconds per file (workers only)
    memory_mb: int = 2048  # address space per file (workers only)

    def extract_kwargs(self) -> dict:
        return {"password": self.password, "ocr": self.ocr}


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
    extract_timeout: float = 120.0
    extract_memory_mb: int = 2048
    follow_links: bool = False
    ocr: str = "auto"  # which pages are read by OCR: auto, always, never (kb.extract.extract_file)
    ray_address: str = ""  # "": process here; else on Ray ("local" starts a cluster, "auto" joins one)
    ray_ship_files: str = "auto"  # "auto": workers read the path when they see the same file; "always": ship
    ray_workers: int = 0  # Ray actors (0: one per GPU, else one per CPU of the cluster)

    def extraction(self) -> ExtractOptions:
        return ExtractOptions(password=self.password, ocr=self.ocr, timeout=self.extract_timeout, memory_mb=self.extract_memory_mb)

    @classmethod
    def from_settings(cls, settings, **given) -> "IngestOptions":
        return cls(workers=settings.workers, chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap,
                   batch_size=settings.batch_size, lock_timeout=settings.lock_timeout,
                   extract_timeout=settings.extract_timeout, extract_memory_mb=settings.extract_memory_mb,
                   follow_links=settings.follow_links, ocr=settings.ocr,
                   ray_address=settings.ray_address, ray_ship_files=settings.ray_ship_files,
                   ray_workers=settings.ray_workers, **given)


@dataclass
class Progress:
    phase: str  # "scan", "extract", "embed", "multilingual" (its chunks: the multilingual list's), "commit", "done"
    files_done: int = 0
    files_total: int = 0
    chunks_done: int = 0
    chunks_total: int = 0
    path: str | None = None
    pages_done: int = 0  # pages, slides and image frames read so far (OCR'd pages counted as they are read)
    ocr_pages_done: int = 0  # of which read by OCR


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    skipped_other: int = 0
    skipped_special: int = 0  # FIFOs, sockets, devices (also behind symlinks)
    skipped_links: int = 0  # symlinks leading outside the folders named, or into a loop
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_total: int = 0
    pages_read: int = 0  # pages, slides and image frames of the files ingested (flowing text counts none)
    ocr_pages: int = 0  # of which read by OCR
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
            "skipped_special_files": self.skipped_special, "skipped_links": self.skipped_links,
            "chunks": {"embedded": self.chunks_embedded, "reused": self.chunks_reused, "total": self.chunks_total},
            "pages": {"read": self.pages_read, "ocr": self.ocr_pages},
            "generation": self.generation, "seconds": round(self.seconds, 3),
        }
