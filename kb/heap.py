"""Giving freed heap memory back to the system.

glibc's malloc keeps what a program frees for its own reuse: the pages stay resident. After work whose
temporaries change size from one step to the next (an embedding model's activations, batch after batch, each
longer than the last because batches are sorted by length), the freed blocks rarely fit the next request, so the
heap grows step after step although the live data does not: e5 embedding 512 long texts went from 0.8 GB to
1.3 GB resident with ~0.25 GB live at any moment, and a whole ingest's main process to 2.1 GB
(docs/benchmarks.md, "Memory of a whole ingest"). `malloc_trim(0)` hands every free page of every arena back
(madvise), which costs ~25-50 ms against the seconds a batch takes.
"""

from __future__ import annotations

import functools

__all__ = ["give_back_freed_memory"]


@functools.lru_cache(maxsize=1)
def _trim():
    """glibc's malloc_trim, or None where the C library is not glibc."""
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def give_back_freed_memory() -> None:
    """Return the heap's free pages to the system (glibc); elsewhere nothing to do."""
    trim = _trim()
    if trim is not None:
        trim(0)
