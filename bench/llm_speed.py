"""Where the first word's time goes: prompt evaluation and generation speed of the packaged LLM under llama.cpp
settings (threads, n_batch/n_ubatch, flash attention, KV cache type) and weight formats (Q4_K_M as shipped; Q4_0,
IQ4_NL and Q8_0 copies made once with llama.cpp's own quantizer), each beside the shipped default, in one run.

    python bench/llm_speed.py [--rounds 3] [--prompt-tokens 600] [--gen 24] [--variants default q4_0 ...]

The machine is shared, so the variants are interleaved: each round runs every variant once, and the figures are
medians over rounds, given also as ratios to the default measured in the same rounds. Each run starts from an
empty KV cache. The prompt is real text: a `kb ask` prompt built from sample_docs' handbook.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, figure  # noqa: E402

# name: (weight format, Llama keyword arguments beyond the default's)
VARIANTS = {
    "default": ("q4_k_m", {}),
    "threads1": ("q4_k_m", {"n_threads": 1, "n_threads_batch": 1}),
    "ubatch128": ("q4_k_m", {"n_batch": 128, "n_ubatch": 128}),
    "ubatch2048": ("q4_k_m", {"n_batch": 2048, "n_ubatch": 2048}),  # a whole prompt in one pass
    "flash_on": ("q4_k_m", {"flash_attn": True}),
    "flash_ubatch2048": ("q4_k_m", {"flash_attn": True, "n_batch": 2048, "n_ubatch": 2048}),
    "kv_q8": ("q4_k_m", {"flash_attn": True, "type_k": 8, "type_v": 8}),  # GGML_TYPE_Q8_0
    "q4_0": ("q4_0", {}),
    "q4_0_flash": ("q4_0", {"flash_attn": True}),
    "q8_0": ("q8_0", {}),
    "iq4_nl": ("iq4_nl", {}),
}


def prompt_text(n_tokens: int, count) -> str:
    """Real prose from the sample handbook, cut to about n_tokens."""
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "sample_docs").rglob("*.md"))
                    if p.name != "QUESTIONS.md")
    words = text.split()
    lo, hi = 1, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count(" ".join(words[:mid])) <= n_tokens else (lo, mid - 1)
    return " ".join(words[:lo])


def run(llama, tokens: list[int], gen: int) -> tuple[float, float]:
    """(prompt tokens/s, generation tokens/s) of one completion from an empty cache."""
    llama.reset()
    start = time.perf_counter()
    first = None
    n = 0
    for chunk in llama.create_completion(prompt=tokens, max_tokens=gen, temperature=0.0, stream=True):
        n += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return len(tokens) / (first - start), (n - 1) / (end - first) if n > 1 and end > first else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompt-tokens", type=int, default=600)
    ap.add_argument("--gen", type=int, default=24)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = ap.parse_args()

    from kb.config import load_settings, models_dir
    from kb.llm import load_llm, physical_cores
    from kb.llm.quantize import quantize
    from kb.llm.runtime import open_llama

    settings = load_settings()
    shipped = load_llm(settings).path
    threads = settings.threads or physical_cores()
    names = ["default"] + [v for v in args.variants if v != "default"]
    models = {}
    for name in names:
        fmt, extra = VARIANTS[name]
        path = shipped if fmt == "q4_k_m" else quantize(shipped, fmt)
        kwargs = dict(n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False) | extra
        models[name] = open_llama(path, models_dir(settings), **kwargs)
        print(f"# {name}: {path.name} {path.stat().st_size / 1e6:.0f} MB {extra}", flush=True)
    count = lambda t: len(models["default"].tokenize(t.encode(), add_bos=False))  # noqa: E731
    text = prompt_text(args.prompt_tokens, count)
    messages = f"<|im_start|>user\nSummarise:\n{text}<|im_end|>\n<|im_start|>assistant\n"
    results: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            llama = models[name]
            tokens = llama.tokenize(messages.encode(), add_bos=False, special=True)
            results[name].append(run(llama, tokens, args.gen))
            print(f"# round {r} {name}: prompt {results[name][-1][0]:.1f} tok/s, "
                  f"generation {results[name][-1][1]:.1f} tok/s", flush=True)
    figure("prompt_tokens", len(tokens))
    for name in names:
        prompt = statistics.median(p for p, _ in results[name])
        gen = statistics.median(g for _, g in results[name])
        figure(f"{name}_prompt_tokens_per_s", prompt)
        figure(f"{name}_generation_tokens_per_s", gen)
        if name != "default":
            figure(f"{name}_prompt_speed_vs_default", statistics.median(
                p / d for (p, _), (d, _) in zip(results[name], results["default"])))
            figure(f"{name}_generation_speed_vs_default", statistics.median(
                g / d for (_, g), (_, d) in zip(results[name], results["default"])))


if __name__ == "__main__":
    main()
