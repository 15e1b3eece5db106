"""The local LLM at run time: llama.cpp (imported on first use, its log captured), the loaded model and its
streaming chat, loading once per process, the build's features and the machine's physical cores.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterator

from kb.errors import ModelNotFound, ModelUnusable, PromptTooLong
from kb.llm.gguf import gguf_summary
from kb.llm.prefix import PrefixCache
from kb.llm.probe import extra_buffers_safe
from kb.llm.presets import ensure_model_file, resolve_llm


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


def auto_threads() -> int:
    """Threads for llama.cpp when none are configured: the physical cores, one fewer when the machine is already
    busy (1-minute load average at least the core count). llama.cpp's threads wait for each other after every
    operation, so one thread descheduled by another process stalls them all: on a 2-core machine under load,
    bench/llm_speed.py measured 1 thread at 1.3-2x the prompt speed and 7-20x the generation speed of 2."""
    cores = physical_cores()
    try:
        busy = os.getloadavg()[0] >= cores
    except (AttributeError, OSError):
        busy = False
    return max(1, cores - 1) if busy and cores > 1 else cores


# ---- llama.cpp -----------------------------------------------------------------------------------

_LOG_TAIL: deque[str] = deque(maxlen=40)  # llama.cpp's recent log lines, shown only when loading fails
_LOG_CALLBACK = None


def import_llama_cpp():
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


@contextlib.contextmanager
def _model_params(llama_cpp, **overrides):
    """llama-cpp-python's Llama() has no argument for some fields of llama_model_params (use_extra_bufts): while
    a model loads, its default-params function (public in the ctypes bindings, which Llama() reads) gives them."""
    bindings = llama_cpp.llama_cpp
    original = bindings.llama_model_default_params

    def with_overrides():
        params = original()
        for name, value in overrides.items():
            setattr(params, name, value)
        return params

    bindings.llama_model_default_params = with_overrides
    try:
        yield
    finally:
        bindings.llama_model_default_params = original


def open_llama(path: Path, cache_dir: Path | None = None, **kwargs):
    """llama_cpp.Llama(model_path=path, **kwargs), without llama.cpp's extra buffer types (repacked or AMX
    weights) where they crash on this machine (kb.llm.probe, results kept in `cache_dir`)."""
    llama_cpp = import_llama_cpp()
    threads = kwargs.get("n_threads_batch") or kwargs.get("n_threads") or physical_cores()
    safe = kwargs.get("n_gpu_layers", 0) != 0 or extra_buffers_safe(Path(path), threads, cache_dir)
    with _model_params(llama_cpp, **({} if safe else {"use_extra_bufts": False})):
        return llama_cpp.Llama(model_path=str(path), **kwargs)


def gpu_offload_supported() -> bool:
    return bool(import_llama_cpp().llama_supports_gpu_offload())


def llama_build_info() -> dict:
    """The installed llama-cpp-python build: version, GPU offload, backends, CPU features. Loads no model."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        llama_cpp = import_llama_cpp()
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

    def __init__(self, path: Path, n_ctx: int, threads: int, gpu_layers: int, state_dir: Path | None = None,
                 flash_attention: bool = False):
        llama_cpp = import_llama_cpp()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.path = Path(path)
        self.model_id = self.path.name
        self.threads = threads
        self.gpu_layers = gpu_layers
        self.flash_attention = flash_attention
        self.last_stats: dict = {}
        _LOG_TAIL.clear()
        try:
            with _quiet_stderr() as captured:
                self._llama = open_llama(self.path, state_dir, n_ctx=n_ctx, n_threads=threads,
                                         n_threads_batch=threads, n_gpu_layers=gpu_layers,
                                         flash_attn=flash_attention, verbose=False)
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
        self._answer_tokens: dict[str, set[int]] | None = None  # yes/no first tokens, for yes_probability
        # the system prompt's KV state, evaluated once (kept in memory, and in state_dir for the next process)
        # a state saved with flash attention lays out the V cache differently: it is kept apart
        self.prefix_cache = PrefixCache(self._llama, llama_cpp, self.path,
                                        f"n_ctx={self.n_ctx}|gpu={gpu_layers}" + ("|fa" if flash_attention else ""),
                                        state_dir)

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def cached_prefix(self, tokens: list[int]) -> int:
        """How many leading `tokens` the KV cache already holds (llama-cpp-python re-evaluates at least the last
        prompt token, so a prompt it holds entirely reuses all but one)."""
        n = int(self._llama.n_tokens)
        if n == 0:
            return 0
        held = self._llama.input_ids[:n].tolist()
        shared = self._llama.longest_token_prefix(held, tokens)
        return shared - 1 if shared == len(tokens) else shared

    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        """The chat template applied to `messages` (ending with the assistant's turn), as tokens."""
        prompt = self._formatter(messages=messages).prompt
        return self._llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def _prepare_prefix(self, messages: list[dict], tokens: list[int]) -> int:
        """Restore (or evaluate once and keep) the KV state of the system prompt `tokens` start with; its length."""
        if not messages or messages[0].get("role") != "system":
            return 0
        fixed = self._llama.longest_token_prefix(self.prompt_tokens(messages[:1]), tokens)
        if not self.prefix_cache.restore_kept(tokens):
            self.prefix_cache.prepare(tokens[:fixed])
        return fixed

    def stream_chat(self, messages: list[dict], max_tokens: int, temperature: float = 0.1,
                    stop: list[str] | None = None, repeat_penalty: float = REPEAT_PENALTY) -> Iterator[str]:
        """Yield the answer's text pieces as they are generated.

        Closing the generator (break, .close(), Ctrl-C) stops generation after the current token; the model
        stays usable. Starting another call closes a stream that was left open. `last_stats` is set when the
        stream ends or is closed.
        """
        self._close_active()
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

        fixed = self._prepare_prefix(messages, tokens)
        # llama-cpp-python keeps the KV cache of the previous prompt and evaluates only what follows the longest
        # shared prefix (the system prompt, in the shell): count what it will reuse, for the stats
        reused = self.cached_prefix(tokens) - (fixed if self.prefix_cache.last == "evaluated" else 0)
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
                "prompt_tokens_reused": reused,
                "prompt_tokens_evaluated": len(tokens) - reused,
                "prefix_state": self.prefix_cache.last,
                "completion_tokens": n,
                "first_token_ms": round((first - started) * 1000, 1),
                "total_ms": round((end - started) * 1000, 1),
                "tokens_per_s": round((n - 1) / gen_s, 2) if n > 1 and gen_s > 0 else None,
                "finish_reason": finish,
            }

    def chat(self, messages: list[dict], max_tokens: int, temperature: float = 0.1,
             stop: list[str] | None = None, repeat_penalty: float = REPEAT_PENALTY) -> str:
        return "".join(self.stream_chat(messages, max_tokens, temperature, stop, repeat_penalty))

    def yes_probability(self, messages: list[dict], keep: bool = False) -> float:
        """P(yes) / (P(yes) + P(no)) for the first word of the model's reply to `messages` (a yes/no question last),
        read from the logits rather than sampled. A prompt that shares its beginning with the last one (the
        answer's prompt up to the question) reuses its KV cache: only what differs is evaluated. `keep`: its KV
        state is kept in memory for a later prompt that starts like it, after other calls (`PrefixCache.keep`)."""
        self._close_active()
        import numpy as np
        from llama_cpp import LogitsProcessorList

        tokens = self.prompt_tokens(messages)
        if len(tokens) >= self.n_ctx:
            raise PromptTooLong(f"the prompt has {len(tokens)} tokens; the context window holds {self.n_ctx}")
        self._prepare_prefix(messages, tokens)
        seen: list = []

        def capture(_ids, logits):
            if not seen:
                seen.append(np.array(logits, dtype=np.float64))
            return logits

        self._llama.create_completion(prompt=tokens, max_tokens=1, temperature=0.0,
                                      logits_processor=LogitsProcessorList([capture]))
        if keep:
            self.prefix_cache.keep(tokens)
        logits = seen[0]
        top = logits.max()
        if self._answer_tokens is None:
            self._answer_tokens = {w: self._first_tokens(w) for w in ("yes", "no")}
        p = {w: sum(float(np.exp(logits[t] - top)) for t in ids) for w, ids in self._answer_tokens.items()}
        return p["yes"] / (p["yes"] + p["no"]) if p["yes"] + p["no"] > 0 else 0.5

    def _close_active(self) -> None:
        """Close a stream left open (generation stops after its current token)."""
        if self._active is not None:
            self._active.close()
            self._active = None

    def _first_tokens(self, word: str) -> set[int]:
        """The first token of each spelling of `word` a reply could start with ("yes", "Yes", "YES", " yes"…)."""
        found = set()
        for spelling in {word, word.capitalize(), word.upper()}:
            for text in (spelling, " " + spelling):
                ids = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
                if ids:
                    found.add(ids[0])
        return found


def effective_gpu_layers(requested: int, cpu: bool = False) -> int:
    """-1 means every layer when this llama.cpp build can offload, else 0; `cpu` forces 0."""
    if cpu:
        return 0
    if requested == -1:
        return -1 if gpu_offload_supported() else 0
    return requested


def state_dir(settings) -> Path | None:
    """Where prompt-prefix KV states are kept between processes: the models dir, when kb can write there."""
    from kb.config import models_dir

    path = models_dir(settings)
    return path if path.is_dir() and os.access(path, os.W_OK) else None


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
    threads = settings.threads or auto_threads()
    layers = effective_gpu_layers(settings.gpu_layers, cpu)
    key = (str(path), n_ctx, layers, threads, settings.flash_attention)
    if key not in _CACHE:
        if on_status is not None:
            on_status(f"loading model {path.name} …")
        _CACHE[key] = LLM(path, n_ctx=n_ctx, threads=threads, gpu_layers=layers, state_dir=state_dir(settings),
                          flash_attention=settings.flash_attention)
    return _CACHE[key]
