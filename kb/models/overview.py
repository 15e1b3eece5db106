"""`kb models`: the embedding model, reranker and LLM in use, and the packaged alternatives.

The top layer of kb's model code: it reads kb.embedders' and kb.llm's tables, resolves (never loads) what is
configured, and imports no engine (torch, llama_cpp, onnxruntime).
"""

from __future__ import annotations

from pathlib import Path

from kb.embedders import PACKAGED_EMBEDDERS, embedding_spec, resolve_embedder
from kb.errors import ModelNotFound
from kb.llm import describe_llm, packaged_llms
from kb.models.locate import dir_size, in_hf_cache, package_dir


def models_overview(settings) -> dict:
    """`kb models`: the embedding model, reranker and LLM in use, and the packaged alternatives."""
    from kb.config import models_dir
    from kb.store import KnowledgeBase

    kb = KnowledgeBase(settings.kb_path)
    recorded = kb.recorded("embedding_spec")
    spec = embedding_spec(settings, recorded=recorded)
    dim = kb.recorded("embedding_dim") if spec == recorded else None
    embedding: dict = {"spec": spec, "model_id": None, "source": None, "location": None, "size": None,
                       "dim": int(dim) if dim else None, "error": None}
    try:
        r = resolve_embedder(spec, allow_network=settings.allow_network)
        embedding.update(model_id=r.model_id, source=r.source, location=r.location,
                         size=dir_size(Path(r.location)) if r.source != "hub" else None)
    except ModelNotFound as e:
        embedding["error"] = str(e)
    reranker = None
    if settings.reranker:
        path = Path(settings.reranker).expanduser()
        found = "local path" if path.exists() else "hub cache" if in_hf_cache(settings.reranker) else None
        reranker = {"spec": settings.reranker, "source": found, "location": str(path.resolve()) if path.exists()
                    else None, "size": dir_size(path) if path.exists() else None,
                    "error": None if found or settings.allow_network else
                    "not on this machine; kb does not download without permission"}
    return {
        "models_dir": str(models_dir(settings)),
        "embedding": {"in_use": embedding, "packaged": [
            {"alias": p.alias, "model_id": p.model_id, "package": p.package, "languages": p.languages,
             "installed": package_dir(p.module) is not None, "in_use": spec == p.alias}
            for p in PACKAGED_EMBEDDERS.values()]},
        "reranker": {"in_use": reranker},
        "llm": {"in_use": describe_llm(settings), "packaged": packaged_llms(settings)},
    }
