"""Changes to a knowledge base that are not ingest: forgetting documents and rebuilding indexes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from kb.store import Changes, EmbeddingInfo, KnowledgeBase, KnowledgeBaseError


def remove_paths(kb: KnowledgeBase, paths: Sequence[str], lock_timeout: float = 0.0
                 ) -> tuple[list[str], list[str]]:
    """Forget the documents at `paths` (files, or every document under a folder). The files are not touched.

    Returns (removed document paths, arguments that matched nothing).
    """
    if not kb.exists():
        raise KnowledgeBaseError(f"no knowledge base at {kb.path}")
    with kb.writer(timeout=lock_timeout, command="kb remove") as writer:
        docs = writer.catalog.documents()
        changes = Changes()
        removed: list[str] = []
        unmatched: list[str] = []
        for arg in paths:
            target = str(Path(arg).expanduser().resolve())
            prefix = target.rstrip(os.sep) + os.sep
            hits = [d for d in docs if d.path == target or d.path.startswith(prefix)]
            if not hits:
                unmatched.append(arg)
            for d in hits:
                if d.id not in changes.remove_doc_ids:
                    changes.remove_doc_ids.append(d.id)
                    removed.append(d.path)
            if target in writer.catalog.roots():
                changes.remove_roots.append(target)
        if changes.remove_doc_ids or changes.remove_roots:
            writer.commit(changes, _recorded_embedding(writer.catalog), writer.catalog.get_meta("chunker_version") or "")
        return removed, unmatched


def repair(kb: KnowledgeBase, lock_timeout: float = 0.0) -> int:
    """Rebuild the dense and lexical indexes from the catalog (chunks and their cached vectors).

    Fixes a deleted or damaged index file without re-reading any document. Returns the new generation.
    """
    if not kb.exists():
        raise KnowledgeBaseError(f"no knowledge base at {kb.path}")
    with kb.writer(timeout=lock_timeout, command="kb repair") as writer:
        embedding = _recorded_embedding(writer.catalog)
        if not embedding.dim:
            return writer.generation
        return writer.commit(Changes(rebuild=True), embedding, writer.catalog.get_meta("chunker_version") or "")


def _recorded_embedding(catalog) -> EmbeddingInfo:
    return EmbeddingInfo(catalog.get_meta("embedding_model") or "", catalog.get_meta("embedding_spec") or "",
                         int(catalog.get_meta("embedding_dim") or 0))
