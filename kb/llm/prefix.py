"""The KV state of a prompt's fixed beginning (the system prompt), kept so it is evaluated once: in memory for
the process (the shell rewrites follow-ups with another prompt in between, which evicts llama.cpp's own
prefix match), and on disk beside the model for the next one-shot `kb ask`, when loading it is faster than
evaluating it (`bench/ask.py` measures both).

The state is llama.cpp's own (`llama_state_get_data`: the KV cells of the prefix and the last logits); a file
is keyed by the model file (name, size, mtime), the context size, the KV settings and the prefix's tokens, and
one that llama.cpp refuses is ignored and rewritten.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
from pathlib import Path

MIN_PREFIX = 32  # shorter prefixes are not worth a state


class PrefixCache:
    def __init__(self, llama, llama_cpp, model_path: Path, key: str, directory: Path | None):
        self.llama, self.llama_cpp = llama, llama_cpp
        self.model_path, self.key, self.directory = model_path, key, directory
        self.states: dict[tuple[int, ...], bytes] = {}
        self.enabled = True
        self.last = ""  # restored from "memory" or "disk" or "kept", "evaluated" (and kept), "" (nothing done): stats
        self.kept: tuple[tuple[int, ...], bytes] | None = None  # one whole prompt's state (`keep`)

    def _file(self, prefix: tuple[int, ...]) -> Path | None:
        if self.directory is None:
            return None
        st = self.model_path.stat()
        h = hashlib.sha256(f"{self.model_path.name}|{st.st_size}|{st.st_mtime_ns}|{self.key}|{prefix}".encode())
        return self.directory / f".{self.model_path.name}.prefix-{h.hexdigest()[:16]}.kv"

    def prepare(self, prefix: list[int]) -> None:
        """Make the KV cache start with `prefix`: it already does, or restore its state (memory, then disk), or
        evaluate it once and keep its state."""
        self.last = ""
        if not self.enabled:
            return
        key = tuple(prefix)
        llama = self.llama
        n = int(llama.n_tokens)
        if len(prefix) < MIN_PREFIX or (n >= len(prefix) and llama.input_ids[: len(prefix)].tolist() == prefix):
            return
        state = self.states.get(key)
        where = "memory"
        path = self._file(key)
        if state is None and path is not None and path.is_file():
            try:
                state, where = path.read_bytes(), "disk"
            except OSError:
                state = None
        if state is not None and self._restore(prefix, state):
            self.states[key] = state
            self.last = where
            return
        llama.reset()
        llama.eval(prefix)
        state = self._save()
        if state is None:
            return
        self.states[key] = state
        self.last = "evaluated"
        if path is not None:
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
                with os.fdopen(fd, "wb") as f:
                    f.write(state)
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only models dir: the state lives in memory only

    def keep(self, tokens: list[int]) -> None:
        """Keep the KV state of the prompt just evaluated (`tokens`) in memory, one prompt at a time: a later
        prompt that shares more of its beginning with it than with what the cache then holds restores it
        (`restore_kept`), when a call in between (the question's translation) evicted it."""
        state = self._save() if self.enabled else None
        self.kept = (tuple(tokens), state) if state is not None else None

    def restore_kept(self, tokens: list[int]) -> bool:
        """Restore the kept prompt's state when it shares more of `tokens`' beginning than the cache holds."""
        if self.kept is None:
            return False
        key, state = self.kept
        llama = self.llama
        shared = llama.longest_token_prefix(list(key), tokens)
        if shared < MIN_PREFIX:  # (most prompts: what the cache holds need not be compared)
            return False
        n = int(llama.n_tokens)
        if shared <= (llama.longest_token_prefix(llama.input_ids[:n].tolist(), tokens) if n else 0):
            return False
        if not self._restore(list(key), state):
            self.kept = None
            return False
        # one token short of what the state holds: llama-cpp-python samples a prompt it holds entirely from the
        # context's last logits, which a restored state does not map back (kb ask's checks read wrong P(yes) so);
        # the shorter prefix makes it decode the last token again
        self.llama.n_tokens = len(key) - 1
        self.last = "kept"
        return True

    def _save(self) -> bytes | None:
        ctx = self.llama._ctx.ctx
        size = self.llama_cpp.llama_state_get_size(ctx)
        buf = (ctypes.c_uint8 * int(size))()
        written = self.llama_cpp.llama_state_get_data(ctx, buf, size)
        return ctypes.string_at(buf, int(written)) if 0 < written <= size else None  # not buf[:n]: a list of ints

    def _restore(self, prefix: list[int], state: bytes) -> bool:
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if self.llama_cpp.llama_state_set_data(self.llama._ctx.ctx, buf, len(state)) != len(state):
            self.llama.reset()
            return False
        self.llama.input_ids[: len(prefix)] = prefix
        self.llama.n_tokens = len(prefix)
        return True
