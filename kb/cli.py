"""The `kb` command: parse flags, call the library, render (rich on a TTY, plain when piped, --json).

Only light modules are imported at the top; torch and friends load inside the commands that need them.
"""

from __future__ import annotations

import json
import sys
import time
from functools import wraps
from pathlib import Path
from typing import Any, List, Optional

import typer

from kb import __version__
from kb.config import load_settings
from kb.errors import (EXIT_ERROR, EXIT_INTERRUPTED, EXIT_NOTHING_FOUND, EXIT_OK, EXIT_USAGE, KbError)
from kb.render import err, out

# Exit codes, identical across commands (documented in README.md), live with the errors that carry them.
EXIT_NO_ANSWER = EXIT_NOTHING_FOUND

app = typer.Typer(
    name="kb",
    help="A local-first knowledge base: ingest PDFs, slides and notes; search and ask them offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Show or change settings.", invoke_without_command=True, no_args_is_help=False)
app.add_typer(config_app, name="config")
models_app = typer.Typer(help="The models in use and the packaged alternatives; pull one from the hub.",
                         invoke_without_command=True, no_args_is_help=False)
app.add_typer(models_app, name="models")


class State:
    kb: Optional[str] = None
    quiet: bool = False
    verbose: bool = False


state = State()


def _version(value: bool) -> None:
    if value:
        print(f"kb {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    kb: Optional[str] = typer.Option(None, "--kb", help="Knowledge base: a name under the user data dir, or a path. "
                                     "Env: KB_HOME.", show_default=False),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only results and errors."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="More detail on stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    state.kb, state.quiet, state.verbose = kb, quiet, verbose


def handle_errors(fn):
    """Turn the library's exceptions into one clear line on stderr and a documented exit code."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            _fail("interrupted; the knowledge base is as it was before this command", EXIT_INTERRUPTED)
        except KbError as e:
            _fail(str(e), e.exit_code)

    return wrapper


def _fail(message: str, code: int) -> None:
    err.print(f"kb: error: {message}", markup=False)
    raise typer.Exit(code)


_JSON = typer.Option(False, "--json", help="Print as JSON (shapes in README.md).")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _settings(**flags):
    return load_settings(state.kb, flags)


def _kb(settings):
    from kb.store import KnowledgeBase

    return KnowledgeBase(settings.kb_path)


# ---- ingest ------------------------------------------------------------------------------------

@app.command()
@handle_errors
def ingest(
    paths: List[Path] = typer.Argument(None, help="Files or folders. None: every folder ingested before."),
    glob: List[str] = typer.Option([], "--glob", "-g", help="Only files matching this pattern (repeatable)."),
    exclude: List[str] = typer.Option([], "--exclude", "-x", help="Skip files matching this pattern (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Re-read every file and rebuild the indexes."),
    password: Optional[str] = typer.Option(None, "--password", help="Password for encrypted PDFs."),
    embedding_model: Optional[str] = typer.Option(None, "--embedding-model", help="Embedding model spec."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Extraction worker processes."),
    wait: Optional[float] = typer.Option(None, "--wait", help="Seconds to wait if another kb process is writing."),
    as_json: bool = _JSON,
) -> None:
    """Add or update documents; forget files that were deleted. Only changed files are re-read."""
    from kb.ingest import IngestOptions
    from kb.reports import print_ingest_summary

    settings = _settings(embedding_model=embedding_model, workers=workers, lock_timeout=wait)
    options = IngestOptions.from_settings(settings, paths=paths or (), include=glob, exclude=exclude, force=force,
                                          password=password)
    report = _run_ingest(settings, options)
    if as_json:
        _print_json(report.to_dict())
    else:
        print_ingest_summary(report, verbose=state.verbose, quiet=state.quiet)
    raise typer.Exit(EXIT_ERROR if report.failed else EXIT_OK)


# ---- search ------------------------------------------------------------------------------------

@app.command()
@handle_errors
def search(
    query: str = typer.Argument(..., help="What to look for; - reads it from stdin."),
    top_k: int = typer.Option(10, "-k", "--top-k", min=1, max=1000, help="How many results."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, dense or bm25."),
    path: Optional[str] = typer.Option(None, "--path", help="Only documents whose path matches this glob."),
    reranker: Optional[str] = typer.Option(None, "--reranker", help="Cross-encoder to rerank with (path or id)."),
    no_rerank: bool = typer.Option(False, "--no-rerank", help="Keep the fused order even if a reranker is set."),
    as_json: bool = _JSON,
) -> None:
    """Find the passages that match a query (retrieval only, no LLM)."""
    from kb.render import render_hits
    from kb.retrieve import MODES, open_searcher

    if mode not in MODES:
        _fail(f"--mode must be one of: {', '.join(MODES)} (got {mode!r})", EXIT_USAGE)
    if query == "-":
        query = sys.stdin.read().strip()
    settings = _settings(reranker="" if no_rerank else reranker)
    searcher = open_searcher(settings)
    try:
        response = searcher.search(query, k=top_k, mode=mode, path_glob=path)
    finally:
        searcher.close()
    if as_json:
        _print_json(response.to_dict())
    elif response.hits:
        render_hits(response)
    if state.verbose:
        err.print(" · ".join(f"{k} {v:.1f} ms" for k, v in response.timings_ms.items()), markup=False)
    if not response.hits:
        if not as_json:
            err.print("no results", markup=False)
        raise typer.Exit(EXIT_NO_ANSWER)


# ---- ask ---------------------------------------------------------------------------------------

def _read_question(question: str) -> str:
    if question == "-":
        question = sys.stdin.read()
    question = " ".join(question.split())
    if not question:
        _fail("the question is empty", EXIT_USAGE)
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
    reranker: Optional[str] = typer.Option(None, "--reranker", help="Cross-encoder to rerank with (path or id)."),
    no_rerank: bool = typer.Option(False, "--no-rerank", help="Keep the fused order even if a reranker is set."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=16, help="Longest answer, in tokens."),
    show_sources: bool = typer.Option(False, "--show-sources", help="List every source given to the model."),
    no_sources: bool = typer.Option(False, "--no-sources", help="Print the answer alone."),
    as_json: bool = _JSON,
) -> None:
    """Answer a question from the documents, with numbered citations (exit code 3: the documents don't say)."""
    from kb.answer import AskOptions, open_asker
    from kb.render import AnswerPrinter, print_sources
    from kb.retrieve import QueryError

    question = _read_question(question)
    settings = _settings(llm_model=model, gpu_layers=gpu_layers, reranker="" if no_rerank else reranker)
    options = AskOptions.from_settings(settings, top_k=top_k, variants=variants, path_glob=path,
                                       extractive=extractive, max_tokens=max_tokens, fusion=_fusion_mode(fusion))
    with AnswerPrinter(enabled=not as_json, quiet=state.quiet) as printer:
        asker = open_asker(settings, cpu=cpu, on_status=printer.status)
        try:
            answer = asker.ask(question, options, on_text=printer.text, on_status=printer.status)
            printer.finish(answer)
        except QueryError as e:
            _fail(str(e), EXIT_USAGE)
        finally:
            asker.close()
    if as_json:
        _print_json(answer.to_dict())
    elif not no_sources:
        print_sources(answer, show_all=show_sources)
    if state.verbose:
        err.print(" · ".join(f"{k} {v:.0f}" for k, v in answer.timings_ms.items())
                  + (f" · {answer.tokens_per_s:.1f} tokens/s" if answer.tokens_per_s else ""), markup=False)
    raise typer.Exit(EXIT_NO_ANSWER if answer.abstained else EXIT_OK)


@app.command()
@handle_errors
def shell(top_k: Optional[int] = _TOP_K, fusion: Optional[bool] = _FUSION, path: Optional[str] = _PATH,
          model: Optional[str] = _MODEL, gpu_layers: Optional[int] = _GPU_LAYERS, cpu: bool = _CPU) -> None:
    """Ask questions and follow-ups in one session; /help lists the commands (piped: one question per line)."""
    from kb.answer import AskOptions
    from kb.shell import run_shell

    settings = _settings(llm_model=model, gpu_layers=gpu_layers)
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
    as_json: bool = _JSON,
) -> None:
    """Measure retrieval quality (nDCG@10, Recall@10/100, MRR@10) and latency on a BEIR dataset.

    The corpus is ingested into a throwaway knowledge base, or into --kb (kept, and re-used next time).
    """
    from kb.evaluate import run_eval
    from kb.reports import IngestProgress, print_eval

    settings = _settings(embedding_model=embedding_model)
    with IngestProgress(enabled=not state.quiet) as on_progress:
        report = run_eval(settings, dataset_dir, split, modes, limit, queries, keep_kb=state.kb is not None,
                          on_progress=on_progress, on_model_load=_announce_model)
    if as_json:
        _print_json(report)
    else:
        print_eval(report)


def _announce_model(model_id: str) -> None:
    if not state.quiet:
        err.print(f"loading embedding model {model_id} …", markup=False)


def _run_ingest(settings, options):
    from kb.ingest import ingest_with_settings
    from kb.reports import IngestProgress

    with IngestProgress(enabled=not state.quiet) as on_progress:
        return ingest_with_settings(settings, options, on_progress=on_progress, on_model_load=_announce_model)


# ---- status, list, remove, repair -------------------------------------------------------------

@app.command()
@handle_errors
def status(as_json: bool = _JSON) -> None:
    """The knowledge base: where it is, what it holds, which models it uses."""
    from kb.reports import print_status
    from kb.status import kb_status

    settings = _settings()
    info = kb_status(_kb(settings))
    info["reranker"] = settings.reranker or None
    _print_json(info) if as_json else print_status(info)


@app.command("list")
@handle_errors
def list_documents(as_json: bool = _JSON) -> None:
    """Documents in the knowledge base, with pages/slides, chunks and status."""
    from kb.reports import print_documents
    from kb.status import kb_documents

    docs = kb_documents(_kb(_settings()))
    _print_json(docs) if as_json else print_documents(docs, quiet=state.quiet)


@app.command()
@handle_errors
def remove(
    paths: List[Path] = typer.Argument(..., help="Documents (or folders of documents) to forget."),
    wait: Optional[float] = typer.Option(None, "--wait", help="Seconds to wait if another kb process is writing."),
    as_json: bool = _JSON,
) -> None:
    """Forget documents (the files themselves are not touched)."""
    from kb.maintenance import remove_paths
    from kb.status import display_path

    settings = _settings(lock_timeout=wait)
    removed, unmatched = remove_paths(_kb(settings), [str(p) for p in paths], settings.lock_timeout)
    if as_json:
        _print_json({"removed": removed, "not_found": unmatched})
    else:
        for p in removed:
            out.print(f"removed: {display_path(p)}", markup=False)
        for p in unmatched:
            err.print(f"not in the knowledge base: {p}", markup=False)
    raise typer.Exit(EXIT_ERROR if unmatched else EXIT_OK)


@app.command()
@handle_errors
def repair(
    wait: Optional[float] = typer.Option(None, "--wait", help="Seconds to wait for another writer."),
    as_json: bool = _JSON,
) -> None:
    """Rebuild the search indexes from the catalog (after a deleted or damaged index file)."""
    from kb.maintenance import repair as run_repair

    settings = _settings(lock_timeout=wait)
    gen = run_repair(_kb(settings), settings.lock_timeout)
    if as_json:
        _print_json({"path": str(settings.kb_path), "generation": gen})
    else:
        out.print(f"indexes rebuilt (generation {gen})", markup=False)


# ---- config ------------------------------------------------------------------------------------

@config_app.callback()
@handle_errors
def config_show(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Print the effective settings and where each value came from."""
    if ctx.invoked_subcommand:
        return
    from kb.config import effective_settings, user_config_file
    from kb.reports import print_config

    rows = effective_settings(_settings())
    if as_json:
        _print_json({"config_file": str(user_config_file()), "settings": rows})
    else:
        print_config(rows, user_config_file())


@config_app.command("set")
@handle_errors
def config_set(key: str = typer.Argument(...), value: str = typer.Argument(...),
               as_json: bool = _JSON) -> None:
    """Write KEY = VALUE to the user config file."""
    from kb.config import coerce, set_user_setting

    path = set_user_setting(key, value)
    if as_json:
        _print_json({"key": key, "value": coerce(key, value), "config_file": str(path)})
    else:
        out.print(f"{key} = {value}  ({path})", markup=False)


# ---- doctor, kbs ---------------------------------------------------------------------------------

@app.command()
@handle_errors
def doctor(as_json: bool = _JSON) -> None:
    """Check the installation, the models and the knowledge base; say how to fix what is wrong."""
    from kb.doctor import ERROR, run_checks, worst
    from kb.reports import print_checks

    settings = _settings()
    checks = run_checks(settings)
    overall = worst(checks)
    if as_json:
        _print_json({"kb": str(settings.kb_path), "status": overall, "checks": checks})
    else:
        print_checks(checks, settings.kb_path, quiet=state.quiet)
    raise typer.Exit(EXIT_ERROR if overall == ERROR else EXIT_OK)


@app.command("kbs")
@handle_errors
def kbs(as_json: bool = _JSON) -> None:
    """The knowledge bases under the user data dir (and the current one): size, models, last ingest."""
    from kb.reports import print_kbs
    from kb.status import list_kbs

    rows = list_kbs(_settings().kb_path)
    _print_json(rows) if as_json else print_kbs(rows)


app.command("list-kbs", hidden=True, help="Same as `kb kbs`.")(kbs)


# ---- models --------------------------------------------------------------------------------------

@models_app.callback()
@handle_errors
def models_show(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """The embedding model, reranker and LLM in use, and the packaged alternatives (installed or not)."""
    if ctx.invoked_subcommand:
        return
    from kb.models.overview import models_overview
    from kb.reports import print_models

    info = models_overview(_settings())
    _print_json(info) if as_json else print_models(info)


@models_app.command("pull")
@handle_errors
def models_pull(
    repo: str = typer.Argument(..., help="A Hugging Face repository, e.g. bartowski/Qwen2.5-3B-Instruct-GGUF."),
    file: Optional[str] = typer.Argument(None, help="One file to download (a .gguf). Without it: the whole "
                                         "repository (a sentence-transformers or cross-encoder model)."),
    timeout: float = typer.Option(10.0, "--timeout", min=1, help="Seconds to wait for the hub to answer."),
) -> None:
    """Download a model into the models dir and print its path (the only kb command that uses the network)."""
    from kb.config import models_dir
    from kb.models.hub import config_hint, pull_model

    dest = models_dir(_settings())
    if not state.quiet:
        err.print(f"downloading {repo}{' ' + file if file else ''} into {dest} …", markup=False)
    path = pull_model(repo, file, dest, timeout=timeout)
    out.print(str(path), markup=False)
    if not state.quiet:
        err.print(f"to use it: {config_hint(path)}", markup=False)


GLOBAL_FLAGS = {"-q", "--quiet", "-v", "--verbose"}


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let the global options stand anywhere on the line (`kb search -q --kb papers "query"`), as users type
    them: they are moved in front of the command, where click expects them. Nothing after `--` moves."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in GLOBAL_FLAGS or arg.startswith("--kb="):
            front.append(arg)
        elif arg == "--kb" and i + 1 < len(argv):
            front.extend(argv[i:i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main() -> None:
    try:
        app(args=hoist_global_options(sys.argv[1:]))
    except KeyboardInterrupt:
        err.print("kb: interrupted", markup=False)
        sys.exit(EXIT_INTERRUPTED)
