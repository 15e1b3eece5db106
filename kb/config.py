"""One Settings object for the whole program.

Precedence, lowest first: built-in defaults < user `config.toml` < the knowledge base's `kb.toml`
< `KB_*` environment variables < command-line flags. Every value remembers where it came from,
so `kb config` can show it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

APP_NAME = "kb"
DEFAULT_KB_NAME = "default"


from kb.errors import ConfigError  # noqa: E402,F401  (raised here; part of this module's API)


def data_dir() -> Path:
    """Where knowledge bases, models and history live (XDG on Linux; `KB_DATA_DIR` overrides)."""
    if env := os.environ.get("KB_DATA_DIR"):
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    if env := os.environ.get("KB_CONFIG_DIR"):
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME, appauthor=False))


def user_config_file() -> Path:
    return config_dir() / "config.toml"


def models_dir(settings: "Settings | None" = None) -> Path:
    """Where kb keeps models it assembled or downloaded (`models_dir` setting, else <data dir>/models)."""
    configured = settings.values.get("models_dir") if settings is not None else os.environ.get("KB_MODELS_DIR")
    return Path(configured).expanduser() if configured else data_dir() / "models"


def resolve_kb_path(spec: str | None) -> Path:
    """`--kb` / `KB_HOME`: a path (contains a separator or starts with . or ~) is taken as is;
    a bare name is a knowledge base under the user data dir."""
    spec = spec or os.environ.get("KB_HOME") or DEFAULT_KB_NAME
    if os.sep in spec or "/" in spec or spec.startswith((".", "~")):
        return Path(spec).expanduser().resolve()
    return data_dir() / "kbs" / spec


@dataclass(frozen=True)
class Option:
    key: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None


OPTIONS: tuple[Option, ...] = (
    Option("embedding_model", str, "e5",
           "embedding model: a packaged alias (e5, minilm, use), a local sentence-transformers directory, or a hub id"),
    Option("reranker", str, "",
           "cross-encoder reranker: a local directory or a hub id (empty: no reranking; none ships in a package)"),
    Option("device", str, "auto", "where models run", choices=("auto", "cpu", "cuda", "mps")),
    Option("allow_network", bool, False, "let kb download models from the Hugging Face hub"),
    Option("chunk_tokens", int, 0,
           "target chunk size in model tokens (0: fill the embedding model's window)", minimum=0),
    Option("chunk_overlap", int, 32, "tokens repeated between consecutive chunks of a section", minimum=0),
    Option("batch_size", int, 32, "texts per embedding batch", minimum=1),
    Option("embed_precision", str, "auto",
           "embedding arithmetic: auto (e5 in int8 on OpenVINO on a CPU with VNNI, built once per machine; "
           "else bf16 weights on a CPU with avx512_bf16/amx; else fp32), fp32, bf16, int8",
           choices=("auto", "fp32", "bf16", "int8")),
    Option("lock_timeout", float, 0.0,
           "seconds a writer waits for another kb process holding the knowledge base", minimum=0),
    Option("workers", int, 1,
           "extraction worker processes to start with; more start, up to the core count, while the ingest waits on "
           "extraction (0: extract in the main process, without the time and memory budgets)",
           minimum=0),
    Option("extract_timeout", float, 120.0,
           "seconds one file's extraction may take (counted from its last page read by OCR) before its worker is "
           "killed and the file reported", minimum=1),
    Option("extract_memory_mb", int, 2048,
           "memory (MB of address space) one file's extraction may use before it is stopped and reported",
           minimum=256),
    Option("follow_links", bool, False,
           "follow symlinks that lead outside the folders named (inside them, symlinked folders are followed once)"),
    Option("ocr", str, "auto",
           "OCR of scanned pages, image files and pictures on slides: auto (pages without usable text), always, never",
           choices=("auto", "always", "never")),
    Option("ray_address", str, "",
           "ingest on a Ray cluster: local (start one here), auto (join the running one) or host:port (empty: no Ray)"),
    Option("ray_ship_files", str, "auto",
           "Ray workers read a file where they see the same one (auto) or get its bytes from this machine (always)",
           choices=("auto", "always")),
    Option("ray_workers", int, 0, "Ray ingest actors (0: one per GPU of the cluster, else one per CPU)", minimum=0),
    # retrieval (chosen with `kb eval`; see docs/retrieval.md)
    Option("rrf_k", int, 5, "Reciprocal Rank Fusion constant k: score = sum of weight / (k + rank)", minimum=1),
    Option("candidates", int, 100, "candidates taken from each list (dense, BM25) before fusion", minimum=1),
    Option("bm25_weight", float, 1.25, "weight of the BM25 lists in the fusion (dense lists weigh 1)", minimum=0),
    # answering (kb ask, kb shell)
    Option("llm_model", str, "qwen2.5-coder-1.5b",
           "answering model: a packaged preset (qwen2.5-coder-1.5b, tiny) or a path to a .gguf file"),
    Option("models_dir", str, "", "where kb keeps assembled and downloaded models (empty: <data dir>/models)"),
    Option("n_ctx", int, 4096, "the LLM's context window in tokens", minimum=512),
    Option("gpu_layers", int, -1,
           "layers offloaded to the GPU (-1: all when this llama.cpp build can offload, else 0)", minimum=-1),
    Option("threads", int, 0, "CPU threads for the LLM (0: the physical cores, one fewer when the machine is busy)", minimum=0),
    Option("flash_attention", bool, False,
           "the LLM's attention through llama.cpp's flash-attention kernels: prompts evaluate ~7% faster on AVX-512 "
           "CPUs, the same on AVX2 (bench/llm_speed.py); off by default: answers branch, and in one bench run an "
           "off-topic question was answered (docs/benchmarks.md)"),
    Option("max_answer_tokens", int, 512, "longest answer the LLM may write, in tokens", minimum=16),
    Option("temperature", float, 0.1, "LLM sampling temperature (0: greedy)", minimum=0),
    Option("fusion", str, "auto",
           "RAG-Fusion query variants: auto (only when the first retrieval is not confident and the question's "
           "translation, if it has one, did not lead to a passage in the other language), on, off",
           choices=("auto", "on", "off")),
    Option("translate", bool, True,
           "kb ask/shell: also search the LLM's translation of a question when part of the knowledge base is in the "
           "other language, in place of the question's dense list over that language (one short LLM call), unless "
           "the question's own best source is in its language and judged to state the answer (off: only "
           "RAG-Fusion's translation, when the first retrieval is not confident)"),
    Option("pivot", bool, True,
           "kb ask/shell: when the best source given to the LLM is in the other language than the question, it answers "
           "the question's translation in their language, and its checked answer is translated back; when it "
           "declines over sources in both languages, it is asked the translation over those in the other language"),
    Option("answer_check", float, -1.0,
           "before answering, the LLM is asked whether any source states the answer; below this P(yes) kb refuses "
           "(-1: the threshold calibrated for the model, 0.5 for qwen2.5-coder-1.5b, none for others; 0: no check)",
           minimum=-1),
    Option("first_source_check", float, -1.0,
           "the same question is first asked of the best source alone; at this P(yes) or more the answer is written "
           "from it alone, and its first word comes sooner (-1: the threshold calibrated for the model, "
           "0.85 for qwen2.5-coder-1.5b, none for others; 0: always all sources)",
           minimum=-1),
    Option("source_check", float, 0.0,
           "for prose (papers, encyclopedias): when the best source alone is below first_source_check, the others "
           "are asked alone too, one by one; unless one of them gets this P(yes), kb refuses without answering (0: "
           "off, the default, as manuals' tables and lists get lower P(yes); -1: the threshold calibrated for the "
           "model on prose, 0.77 for qwen2.5-coder-1.5b, none for others)",
           minimum=-1),
    Option("variants", int, 3, "query variants the LLM writes for RAG-Fusion", minimum=1),
    Option("top_k", int, 4, "passages retrieved for an answer (the context holds what fits)", minimum=1),
    Option("context_tokens", int, 1200,
           "most tokens of passages put before the LLM (0: all that fit n_ctx); fewer answer sooner on a CPU",
           minimum=0),
    Option("source_tokens", int, 0,
           "most tokens of one passage before the LLM: a longer one keeps the sentences closest to the question "
           "(0: whole passages; 200 with context_tokens 500 halves the wait for the first word but lost answers: "
           "docs/answering.md)", minimum=0),
)
OPTION_BY_KEY = {o.key: o for o in OPTIONS}


def coerce(key: str, value: Any) -> Any:
    """Turn a raw value (from TOML, env or a flag) into the option's type, or raise ConfigError."""
    opt = OPTION_BY_KEY.get(key)
    if opt is None:
        raise ConfigError(f"unknown setting {key!r}; known settings: {', '.join(OPTION_BY_KEY)}")
    try:
        if opt.type is bool:
            if isinstance(value, bool):
                out = value
            elif str(value).strip().lower() in ("1", "true", "yes", "on"):
                out = True
            elif str(value).strip().lower() in ("0", "false", "no", "off"):
                out = False
            else:
                raise ValueError
        elif opt.type is int:
            if isinstance(value, bool):
                raise ValueError
            out = int(str(value).strip())
        elif opt.type is float:
            out = float(str(value).strip())
        else:
            out = str(value)
    except ValueError:
        raise ConfigError(f"setting {key}={value!r} is not a valid {opt.type.__name__}") from None
    if opt.choices and out not in opt.choices:
        raise ConfigError(f"setting {key}={value!r} must be one of: {', '.join(opt.choices)}")
    if opt.minimum is not None and out < opt.minimum:
        raise ConfigError(f"setting {key}={value!r} must be >= {opt.minimum:g}")
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None


@dataclass
class Settings:
    kb_path: Path
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None


def load_settings(kb: str | None = None, flags: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Resolve the knowledge base and every option through all layers. `flags` holds only flags the user gave."""
    env = os.environ if env is None else env
    kb_path = resolve_kb_path(kb)
    kb_source = "flag --kb" if kb else ("env KB_HOME" if env.get("KB_HOME") else "default")
    values = {o.key: o.default for o in OPTIONS}
    sources = {o.key: "default" for o in OPTIONS}
    layers = [
        (str(user_config_file()), _read_toml(user_config_file())),
        (str(kb_path / "kb.toml"), _read_toml(kb_path / "kb.toml")),
        ("env", {o.key: env[f"KB_{o.key.upper()}"] for o in OPTIONS if f"KB_{o.key.upper()}" in env}),
        ("flag", {k: v for k, v in (flags or {}).items() if v is not None}),
    ]
    for source, layer in layers:
        for key, raw in layer.items():
            if key not in OPTION_BY_KEY:
                if source == "flag":
                    continue
                raise ConfigError(f"{source}: unknown setting {key!r}; known settings: {', '.join(OPTION_BY_KEY)}")
            try:
                values[key] = coerce(key, raw)
            except ConfigError as e:
                raise ConfigError(f"{source}: {e}") from None
            sources[key] = f"env KB_{key.upper()}" if source == "env" else source
    settings = Settings(kb_path=kb_path, values=values, sources=sources)
    settings.sources["kb"] = kb_source
    return settings


def set_user_setting(key: str, raw: str) -> Path:
    """`kb config set KEY VALUE`: validate, then update the user config file in place.

    tomlkit edits the document the user wrote: comments, blank lines and key order stay; an existing
    key's value is replaced where it stands, a new key is appended. The file is written to a temporary
    name and renamed, so a crash leaves either the old file or the new one."""
    value = coerce(key, raw)
    path = user_config_file()
    _read_toml(path)  # a file tomllib cannot read is reported as such, not rewritten
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.is_file() else tomlkit.document()
    except (OSError, UnicodeDecodeError, TOMLKitError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    doc[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)
    return path


def effective_settings(settings: Settings) -> list[dict]:
    """`kb config`: every setting with its value and where the value came from, the knowledge base first."""
    rows = [{"key": "kb", "value": str(settings.kb_path), "source": settings.sources["kb"]}]
    return rows + [{"key": o.key, "value": settings.values[o.key], "source": settings.sources[o.key]} for o in OPTIONS]
