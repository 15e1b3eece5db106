"""What an ingest is asked to do (IngestOptions), what it tells while it runs (Progress) and what it did
(IngestReport). Data only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


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
    ray_address: str = ""  # "": process here; else on Ray ("local" starts a cluster, "auto" joins one)
    ray_ship_files: str = "auto"  # "auto": workers read the path when they see the same file; "always": ship
    ray_workers: int = 0  # Ray actors (0: one per GPU, else one per CPU of the cluster)

    @classmethod
    def from_settings(cls, settings, **given) -> "IngestOptions":
        return cls(workers=settings.workers, chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap,
                   batch_size=settings.batch_size, lock_timeout=settings.lock_timeout,
                   ray_address=settings.ray_address, ray_ship_files=settings.ray_ship_files,
                   ray_workers=settings.ray_workers, **given)


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
