"""What `kb status` and `kb list` report: read from the catalog only (no models, no indexes loaded)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from kb.store import KnowledgeBase, tokenizer_version


def _iso(ts: str | float | None) -> str | None:
    if ts in (None, ""):
        return None
    return _dt.datetime.fromtimestamp(float(ts)).astimezone().isoformat(timespec="seconds")


def kb_status(kb: KnowledgeBase) -> dict:
    if not kb.exists():
        return {"path": str(kb.path), "exists": False, "documents": 0, "documents_failed": 0, "chunks": 0,
                "languages": {}, "embedding_model": None, "embedding_dim": None, "generation": 0, "disk_bytes": 0,
                "last_ingest": None, "roots": []}
    cat = kb.catalog(readonly=True)
    try:
        meta = cat.meta()
        return {
            "path": str(kb.path),
            "exists": True,
            "documents": cat.count_documents("ok"),
            "documents_failed": cat.count_documents("failed"),
            "chunks": cat.count_chunks(),
            "languages": {lang: len(ids) for lang, ids in sorted(cat.chunk_languages().items())},
            "embedding_model": meta.get("embedding_model"),
            "embedding_dim": int(meta["embedding_dim"]) if meta.get("embedding_dim") else None,
            "generation": int(meta.get("generation", 0)),
            "disk_bytes": kb.disk_size(),
            "last_ingest": _iso(meta.get("last_ingest")),
            "created": _iso(meta.get("created_at")),
            "chunker_version": meta.get("chunker_version"),
            "tokenizer_version": tokenizer_version(meta),
            "schema_version": int(meta.get("schema_version", 0)),
            "roots": cat.roots(),
        }
    finally:
        cat.close()


def kb_documents(kb: KnowledgeBase) -> list[dict]:
    if not kb.exists():
        return []
    cat = kb.catalog(readonly=True)
    try:
        docs = cat.documents()
    finally:
        cat.close()
    out = []
    for d in docs:
        unit = "slides" if d.format in ("pptx", "odp") else ("pages" if d.format in ("pdf", "image") else None)
        out.append({
            "path": d.path, "format": d.format, "title": d.title, "status": d.status,
            "pages": d.pages if unit == "pages" else None, "slides": d.pages if unit == "slides" else None,
            "chunks": d.chunks, "error": d.error, "ocr_pages": d.ocr_pages,
            "warnings": d.warnings.split("\n") if d.warnings else [],
            "ingested_at": _iso(d.ingested_at), "sha256": d.sha256, "size": d.size,
        })
    return out


def list_kbs(current: Path) -> list[dict]:
    """`kb kbs`: every knowledge base under `<data dir>/kbs/`, plus the current one wherever it lives,
    from their catalogs alone. `current` is the one --kb / KB_HOME / the default selects."""
    from kb.config import data_dir

    root = data_dir() / "kbs"
    paths = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    current = Path(current)
    if current not in paths:
        paths.append(current)
    out = []
    for path in paths:
        info = kb_status(KnowledgeBase(path))
        out.append({
            "name": path.name if path.parent == root else str(path), "path": str(path), "current": path == current,
            "exists": info["exists"], "documents": info["documents"], "documents_failed": info["documents_failed"],
            "chunks": info["chunks"], "disk_bytes": info["disk_bytes"], "last_ingest": info["last_ingest"],
            "embedding_model": info["embedding_model"],
        })
    return out


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def display_path(path: str) -> str:
    """Relative to the working directory when the file lies below it, on one printable line (kb.names.shown)."""
    from kb.names import shown

    try:
        return shown(str(Path(path).relative_to(Path.cwd())))
    except ValueError:
        return shown(path)
