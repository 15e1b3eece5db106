"""Does llama.cpp's fast path crash on this machine? Tried once per model file and machine, in a child process.

llama.cpp puts a model's weights in "extra" buffer types when the CPU has a kernel for them: weights repacked
for AVX2/AVX-512, or for Intel AMX tiles. On a Sapphire Rapids VM whose CPU reports `amx_tile` and `amx_int8`,
llama-cpp-python 0.3.36 built for the native CPU died with a general protection fault at `ldtilecfg` in its
AMX matrix kernel on the first batch it evaluated, for every model (`kb ask` ended in "Segmentation fault"):
the tile configuration it loaded was invalid (upstream llama.cpp#20824, closed without a fix; a bare C program
uses AMX tiles on that machine). Loaded without extra buffer types, the same model runs
(prompt evaluation ~140 tokens/s on that machine). A crash cannot be caught in-process, so a child process
loads the model and evaluates a few tokens; kb loads models without extra buffers where the child died.

The probe runs only where the CPU reports AMX (the one fault seen); elsewhere extra buffers are used as
llama.cpp chooses. Results are kept in `llama-probe.json` in the models dir, keyed by the llama-cpp-python
version, the CPU's flags and the model file, so each model is tried once per machine and build.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from kb.hardware import cpu_flags

PROBE_FILE = "llama-probe.json"
PROBE_TIMEOUT_S = 300
PROBE_TEXT = "The quick brown fox jumps over the lazy dog. 敏捷的棕色狐狸跳过了懒狗。" * 4


def needs_probe(flags: set[str] | None = None) -> bool:
    """Whether llama.cpp may take a fast path here that has been seen to crash: Intel AMX."""
    return "amx_tile" in (cpu_flags() if flags is None else flags)


def probe_key_prefix(flags: set[str]) -> list[str]:
    """The build and the CPU, the first two fields of a probe key."""
    try:
        build = version("llama_cpp_python")
    except PackageNotFoundError:
        build = "unknown"
    return [f"llama-cpp-python {build}", f"cpu {hashlib.sha256(' '.join(sorted(flags)).encode()).hexdigest()[:12]}"]


def probe_key(model: Path, flags: set[str]) -> str:
    return "|".join([*probe_key_prefix(flags), model.name, str(model.stat().st_size)])


def run_probe(model: Path, threads: int) -> bool | None:
    """True: a child process loaded `model` with extra buffers and evaluated text; False: the child was killed
    by a signal (the crash); None: it failed otherwise (a bad file: the real load will say why)."""
    try:
        done = subprocess.run([sys.executable, "-m", "kb.llm.probe", str(model), str(threads)],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode == 0:
        return True
    return False if done.returncode < 0 else None


def extra_buffers_safe(model: Path, threads: int, cache_dir: Path | None) -> bool:
    """Whether `model` may be loaded with llama.cpp's extra buffer types on this machine (see the module)."""
    flags = cpu_flags()
    if not needs_probe(flags):
        return True
    key = probe_key(model, flags)
    cache = Path(cache_dir) / PROBE_FILE if cache_dir else None
    known = _read(cache)
    if key in known:
        return bool(known[key])
    safe = run_probe(model, threads)
    if safe is None:
        return True
    if cache is not None:
        _write(cache, key, safe)
    return safe


def crashed_models(cache_dir: Path | None) -> list[str]:
    """The model files whose probe crashed with this build on this CPU (loaded without extra buffers)."""
    flags = cpu_flags()
    if cache_dir is None or not needs_probe(flags):
        return []
    prefix = probe_key_prefix(flags)
    return sorted({key.split("|")[2] for key, safe in _read(Path(cache_dir) / PROBE_FILE).items()
                   if not safe and key.split("|")[:2] == prefix})


def _read(cache: Path | None) -> dict:
    if cache is None:
        return {}
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(cache: Path, key: str, safe: bool) -> None:
    """Add one result, atomically (two processes probing at once: the last writer keeps both or one; a lost
    result is only probed again)."""
    data = _read(cache) | {key: safe}
    try:
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=f".{cache.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, cache)
    except OSError:
        pass


def _child(model: str, threads: int) -> None:
    """Load `model` as llama.cpp chooses and evaluate a short text: dies by a signal where the fast path crashes."""
    import llama_cpp

    llama = llama_cpp.Llama(model_path=model, n_ctx=256, n_threads=threads, n_threads_batch=threads, verbose=False)
    llama.eval(llama.tokenize(PROBE_TEXT.encode("utf-8"), add_bos=False))


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]))
