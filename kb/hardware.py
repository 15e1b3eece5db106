"""What the CPU can do, as Linux reports it: read by the embedders (bf16, int8 paths) and by the LLM runtime
(whether llama.cpp's AMX path must be probed). Reading /proc/cpuinfo costs ~1 ms and imports nothing."""

from __future__ import annotations

import platform


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty elsewhere, or when /proc/cpuinfo is unreadable)."""
    if platform.system() != "Linux":
        return set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()
