"""`kb search`, `kb ask`, `kb shell` and `kb eval`: each parses its flags and calls the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from kb.cli.app import (JSON_FLAG, NO_RERANK_FLAG, RERANKER_FLAG, announce_model, app, fail, handle_errors,
                        print_json, settings_with, state)
from kb.errors import EXIT_NOTHING_FOUND, EXIT_OK, EXIT_USAGE
from kb.render import err


# ---- search ------------------------------------------------------------------------------------

@app.command()
@handle_errors
def search(
    query: str = typer.Argument(..., help="What to look for; - reads it from stdin."),
    top_k: int = typer.Option(10, "-k", "--top-k", min=1, max=1000, help="How many results."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, dense or bm25."),
    path: Optional[str] = typer.Option(None, "--path", help="Only documents whose path matches this glob."),
    reranker: Optional[str] = RERANKER_FLAG,
    no_rerank: bool = NO_RERANK_FLAG,
    translate: bool = typer.Option(False, "--translate", help="When part of the knowledge base is in the other "
                                   "language, also search the LLM's translation of the query (loads the LLM)."),
    as_json: bool = JSON_FLAG,
) -> None:
    """Find the passages that match a query (retrieval only; no LLM unless --translate)."""
    from kb.render import render_hits
    from kb.retrieve import MODES, open_searcher

    if mode not in MODES:
        fail(f"--mode must be one of: {', '.join(MODES)} (got {mode!r})", EXIT_USAGE)
    if query == "-":
        query = sys.stdin.read().strip()
    settings = settings_with(reranker="" if no_rerank else reranker)
    searcher = open_searcher(settings)
    try:
        translation = None
        if translate:  # kb.answer only then: importing it readies jieba and the stemmer (~1.5 s)
            from kb.answer.fusion import translator

            translation = translator(settings)(searcher, query)
        response = searcher.search(query, k=top_k, mode=mode, path_glob=path, translation=translation)
    finally:
        searcher.close()
    if as_json:
        print_json(response.to_dict() | ({"translation": translation} if translate else {}))
    elif response.hits:
        render_hits(response)
    if state.verbose:
        err.print(" · ".join(f"{k} {v:.1f} ms" for k, v in response.timings_ms.items()), markup=False)
    if not response.hits:
        if not as_json:
            err.print("no results", markup=False)
        raise typer.Exit(EXIT_NOTHING_FOUND)


# ---- ask ---------------------------------------------------------------------------------------

def _read_question(question: str) -> str:
    if question == "-":
        question = sys.stdin.read()
    question = " ".join(question.split())
    if not question:
        fail("the question is empty", EXIT_USAGE)
    return question


# Flags that `kb ask` and `kb shell` share.
_TOP_K = typer.Option(None, "-k", "--top-k", min=1, max=50, help="Passages to retrieve.")
_FUSION = typer.Option(None, "--fusion/--no-fusion", show_default=False,
                       help="RAG-Fusion: the LLM writes query variants (default: only when the first retrieval is "
                            "not confident).")
_PATH = typer.Option(None, "--path", help="Only documents whose path matches this glob.")
_MODEL = typer.Option(None, "--model", help="LLM: a preset (qwen2.5-coder-1.5b, tiny) or a .gguf.")
_GPU_LAYERS = typer.Option(None, "--gpu-layers", min=-1, help="Layers on the GPU (-1: all).")
_CPU = typer.Option(False, "--cpu", help="Run the LLM on the CPU only.")


def _fusion_mode(fusion: Optional[bool]) -> Optional[str]:
    return None if fusion is None else ("on" if fusion else "off")


@app.command()
@handle_errors
def ask(
    question: str = typer.Argument(..., help="The question; - reads it from stdin."),
    top_k: Optional[int] = _TOP_K,
    fusion: Optional[bool] = _FUSION,
    variants: Optional[int] = typer.Option(None, "--variants", min=1, max=8, help="Query variants for RAG-Fusion."),
    path: Optional[str] = _PATH,
    model: Optional[str] = _MODEL,
    gpu_layers: Optional[int] = _GPU_LAYERS,
    cpu: bool = _CPU,
    extractive: bool = typer.Option(False, "--extractive", help="No LLM: answer with the best matching sentences."),
    reranker: Optional[str] = RERANKER_FLAG,
    no_rerank: bool = NO_RERANK_FLAG,
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=16, help="Longest answer, in tokens."),
    show_sources: bool = typer.Option(False, "--show-sources", help="List every source given to the model."),
    no_sources: bool = typer.Option(False, "--no-sources", help="Print the answer alone."),
    as_json: bool = JSON_FLAG,
) -> None:
    """Answer a question from the documents, with numbered citations (exit code 3: the documents don't say)."""
    from kb.answer import AskOptions, open_asker
    from kb.render import AnswerPrinter, print_answer_timings, print_sources

    question = _read_question(question)
    settings = settings_with(llm_model=model, gpu_layers=gpu_layers, reranker="" if no_rerank else reranker)
    options = AskOptions.from_settings(settings, top_k=top_k, variants=variants, path_glob=path,
                                       extractive=extractive, max_tokens=max_tokens, fusion=_fusion_mode(fusion))
    with AnswerPrinter(enabled=not as_json, quiet=state.quiet) as printer:
        asker = open_asker(settings, cpu=cpu, on_status=printer.status)
        try:
            answer = asker.ask(question, options, on_text=printer.text, on_status=printer.status,
                               on_sources=printer.sources)
            printer.finish(answer)
        finally:
            asker.close()
    if as_json:
        print_json(answer.to_dict())
    elif not no_sources:
        print_sources(answer, show_all=show_sources, shown_before=printer.shown_sources and not show_sources)
    if state.verbose:
        print_answer_timings(answer)
    raise typer.Exit(EXIT_NOTHING_FOUND if answer.abstained else EXIT_OK)


@app.command()
@handle_errors
def shell(top_k: Optional[int] = _TOP_K, fusion: Optional[bool] = _FUSION, path: Optional[str] = _PATH,
          model: Optional[str] = _MODEL, gpu_layers: Optional[int] = _GPU_LAYERS, cpu: bool = _CPU) -> None:
    """Ask questions and follow-ups in one session; /help lists the commands (piped: one question per line)."""
    from kb.answer import AskOptions
    from kb.shell import run_shell

    settings = settings_with(llm_model=model, gpu_layers=gpu_layers)
    options = AskOptions.from_settings(settings, top_k=top_k, path_glob=path, fusion=_fusion_mode(fusion))
    raise typer.Exit(run_shell(settings, options, cpu=cpu, quiet=state.quiet))


# ---- eval --------------------------------------------------------------------------------------

@app.command("eval")
@handle_errors
def eval_command(
    dataset_dir: Path = typer.Argument(..., help="A BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."),
    split: str = typer.Option("test", "--split", help="Which qrels split to evaluate."),
    modes: List[str] = typer.Option([], "--mode", help="Modes to evaluate (repeatable; default: bm25, dense, "
                                    "hybrid, and hybrid+rerank when a reranker is configured; hybrid+fusion "
                                    "adds the LLM's RAG-Fusion variants)."),
    limit: int = typer.Option(0, "--limit", min=0, help="Only the first N queries (0: all)."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="A queries.jsonl with other wordings of judged "
                                           "queries (e.g. translations); only those are evaluated."),
    embedding_model: Optional[str] = typer.Option(None, "--embedding-model", help="Embedding model spec."),
    as_json: bool = JSON_FLAG,
) -> None:
    """Measure retrieval quality (nDCG@10, Recall@10/100, MRR@10) and latency on a BEIR dataset.

    The corpus is ingested into a throwaway knowledge base, or into --kb (kept, and re-used next time).
    """
    from kb.evaluate import run_eval
    from kb.reports import IngestProgress, print_eval

    settings = settings_with(embedding_model=embedding_model)
    with IngestProgress(enabled=not state.quiet) as on_progress:
        report = run_eval(settings, dataset_dir, split, modes, limit, queries, keep_kb=state.kb is not None,
                          on_progress=on_progress, on_model_load=announce_model)
    if as_json:
        print_json(report)
    else:
        print_eval(report)
