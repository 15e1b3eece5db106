"""Stage 1 of an ingest: the plan. Which files are new or changed (to process), which are unchanged (size and
mtime as recorded, or the same sha256), which recorded documents disappeared (to remove), from the catalog
alone. Reads files only to hash those whose size or mtime changed; extracts nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kb.errors import UsageError
from kb.ingest.discover import discover, file_sha256
from kb.ingest.options import IngestOptions
from kb.store import Changes, DocumentUpdate


@dataclass
class FileTask:
    """A file to read: new, changed, or retried."""

    path: str
    size: int
    mtime: float
    sha256: str
    previous_status: str | None  # "ok" or "failed" when the catalog knows it, else None


@dataclass
class Plan:
    tasks: list[FileTask] = field(default_factory=list)
    changes: Changes = field(default_factory=Changes)  # removals, roots and mtime refreshes, for the commit
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # unreadable now, or still failing as recorded
    skipped_other: int = 0
    skipped_special: int = 0
    skipped_links: int = 0


def make_plan(catalog, options: IngestOptions) -> Plan:
    """Diff the folders and files of `options.paths` (or every root ingested before) against `catalog`."""
    plan = Plan()
    changes = plan.changes
    roots = [Path(p).expanduser().resolve() for p in options.paths]
    for r in roots:
        if not r.exists():
            raise UsageError(f"no such file or directory: {r}")
    if not roots:
        recorded = [Path(p) for p in catalog.roots()]
        if not recorded:
            raise UsageError("nothing to ingest: name a folder or file, e.g. `kb ingest ~/Documents/papers`")
        changes.remove_roots = [str(r) for r in recorded if not r.exists()]
        roots = [r for r in recorded if r.exists()]
    changes.add_roots = [str(r) for r in roots]

    found = discover(roots, options.include, options.exclude, follow_links=options.follow_links)
    files = found.files
    plan.skipped_other, plan.skipped_special, plan.skipped_links = (found.skipped_other, found.skipped_special,
                                                                    found.skipped_links)
    existing = {d.path: d for d in catalog.documents()}
    seen: set[str] = set()
    for path in files:
        key = str(path)
        seen.add(key)
        try:
            st = path.stat()
        except OSError as e:
            plan.failed.append((key, f"cannot read: {e.strerror or e}"))
            continue
        old = existing.get(key)
        retry = old is not None and old.status != "ok" and options.password is not None
        if old and not options.force and not retry and old.size == st.st_size and old.mtime == st.st_mtime:
            _unchanged(plan, old)
            continue
        try:
            digest = file_sha256(path)
        except OSError as e:
            plan.failed.append((key, f"cannot read: {e.strerror or e}"))
            continue
        if old and not options.force and not retry and old.sha256 == digest:
            _unchanged(plan, old)
            changes.updates.append(_touch(old, st))
            continue
        plan.tasks.append(FileTask(key, st.st_size, st.st_mtime, digest, old.status if old else None))

    for root in [*roots, *map(Path, changes.remove_roots)]:
        prefix = str(root).rstrip(os.sep) + os.sep
        for path, doc in existing.items():
            if (path == str(root) or path.startswith(prefix)) and path not in seen and not os.path.exists(path):
                changes.remove_doc_ids.append(doc.id)
                plan.removed.append(path)
    return plan


def _unchanged(plan: Plan, old) -> None:
    if old.status == "ok":
        plan.unchanged += 1
    else:
        plan.failed.append((old.path, old.error or "failed"))


def _touch(old, st: os.stat_result) -> DocumentUpdate:
    """Same content, new mtime: remember the mtime so the next run skips hashing it."""
    return DocumentUpdate(path=old.path, sha256=old.sha256, size=st.st_size, mtime=st.st_mtime, format=old.format,
                          title=old.title, pages=old.pages, status=old.status, error=old.error,
                          warnings=old.warnings.split("\n") if old.warnings else ())
