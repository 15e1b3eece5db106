"""`kb ingest` and the housekeeping commands (status, list, remove, repair, config, doctor, kbs, models)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kb.cli.app import (JSON_FLAG, announce_model, app, config_app, handle_errors, models_app, open_kb, print_json,
                        settings_with, state)
from kb.errors import EXIT_ERROR, EXIT_OK
from kb.render import err, out


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
    ocr: Optional[str] = typer.Option(None, "--ocr", help="OCR scanned pages and images: auto, always, never."),
    wait: Optional[float] = typer.Option(None, "--wait", help="Seconds to wait if another kb process is writing."),
    follow_links: Optional[bool] = typer.Option(None, "--follow-links",
                                                help="Follow symlinks that lead outside the folders named."),
    ray: Optional[str] = typer.Option(
        None, "--ray", metavar="[ADDRESS]",
        help="Extract, chunk and embed on a Ray cluster: local (start one here; what --ray alone means), auto "
             "(join the running one) or host:port. Needs the ray extra."),
    as_json: bool = JSON_FLAG,
) -> None:
    """Add or update documents; forget files that were deleted. Only changed files are re-read."""
    from kb.ingest import IngestOptions
    from kb.reports import print_ingest_summary

    settings = settings_with(embedding_model=embedding_model, workers=workers, lock_timeout=wait,
                             follow_links=follow_links, ocr=ocr, ray_address=ray)
    options = IngestOptions.from_settings(settings, paths=paths or (), include=glob, exclude=exclude, force=force,
                                          password=password)
    report = _run_ingest(settings, options)
    if as_json:
        print_json(report.to_dict())
    else:
        print_ingest_summary(report, verbose=state.verbose, quiet=state.quiet)
    raise typer.Exit(EXIT_ERROR if report.failed else EXIT_OK)


def _run_ingest(settings, options):
    from kb.ingest import ingest_with_settings
    from kb.reports import IngestProgress

    with IngestProgress(enabled=not state.quiet) as on_progress:
        return ingest_with_settings(settings, options, on_progress=on_progress, on_model_load=announce_model)


# ---- status, list, remove, repair -------------------------------------------------------------

@app.command()
@handle_errors
def status(as_json: bool = JSON_FLAG) -> None:
    """The knowledge base: where it is, what it holds, which models it uses."""
    from kb.reports import print_status
    from kb.status import kb_status

    settings = settings_with()
    info = kb_status(open_kb(settings))
    info["reranker"] = settings.reranker or None
    print_json(info) if as_json else print_status(info)


@app.command("list")
@handle_errors
def list_documents(as_json: bool = JSON_FLAG) -> None:
    """Documents in the knowledge base, with pages/slides, chunks and status."""
    from kb.reports import print_documents
    from kb.status import kb_documents

    docs = kb_documents(open_kb(settings_with()))
    print_json(docs) if as_json else print_documents(docs, quiet=state.quiet)


@app.command()
@handle_errors
def remove(
    paths: List[Path] = typer.Argument(..., help="Documents (or folders of documents) to forget."),
    wait: Optional[float] = typer.Option(None, "--wait", help="Seconds to wait if another kb process is writing."),
    as_json: bool = JSON_FLAG,
) -> None:
    """Forget documents (the files themselves are not touched)."""
    from kb.maintenance import remove_paths
    from kb.status import display_path

    settings = settings_with(lock_timeout=wait)
    removed, unmatched = remove_paths(open_kb(settings), [str(p) for p in paths], settings.lock_timeout)
    if as_json:
        print_json({"removed": removed, "not_found": unmatched})
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
    as_json: bool = JSON_FLAG,
) -> None:
    """Rebuild the search indexes from the catalog (after a deleted or damaged index file)."""
    from kb.maintenance import repair as run_repair

    settings = settings_with(lock_timeout=wait)
    gen = run_repair(open_kb(settings), settings.lock_timeout)
    if as_json:
        print_json({"path": str(settings.kb_path), "generation": gen})
    else:
        out.print(f"indexes rebuilt (generation {gen})", markup=False)


# ---- config ------------------------------------------------------------------------------------

@config_app.callback()
@handle_errors
def config_show(ctx: typer.Context, as_json: bool = JSON_FLAG) -> None:
    """Print the effective settings and where each value came from."""
    if ctx.invoked_subcommand:
        return
    from kb.config import effective_settings, user_config_file
    from kb.reports import print_config

    rows = effective_settings(settings_with())
    if as_json:
        print_json({"config_file": str(user_config_file()), "settings": rows})
    else:
        print_config(rows, user_config_file())


@config_app.command("set")
@handle_errors
def config_set(key: str = typer.Argument(...), value: str = typer.Argument(...),
               as_json: bool = JSON_FLAG) -> None:
    """Write KEY = VALUE to the user config file."""
    from kb.config import coerce, set_user_setting

    path = set_user_setting(key, value)
    if as_json:
        print_json({"key": key, "value": coerce(key, value), "config_file": str(path)})
    else:
        out.print(f"{key} = {value}  ({path})", markup=False)


# ---- doctor, kbs ---------------------------------------------------------------------------------

@app.command()
@handle_errors
def doctor(as_json: bool = JSON_FLAG) -> None:
    """Check the installation, the models and the knowledge base; say how to fix what is wrong."""
    from kb.doctor import ERROR, run_checks, worst
    from kb.reports import print_checks

    settings = settings_with()
    checks = run_checks(settings)
    overall = worst(checks)
    if as_json:
        print_json({"kb": str(settings.kb_path), "status": overall, "checks": checks})
    else:
        print_checks(checks, settings.kb_path, quiet=state.quiet)
    raise typer.Exit(EXIT_ERROR if overall == ERROR else EXIT_OK)


@app.command("kbs")
@handle_errors
def kbs(as_json: bool = JSON_FLAG) -> None:
    """The knowledge bases under the user data dir (and the current one): size, models, last ingest."""
    from kb.reports import print_kbs
    from kb.status import list_kbs

    rows = list_kbs(settings_with().kb_path)
    print_json(rows) if as_json else print_kbs(rows)


app.command("list-kbs", hidden=True, help="Same as `kb kbs`.")(kbs)


# ---- models --------------------------------------------------------------------------------------

@models_app.callback()
@handle_errors
def models_show(ctx: typer.Context, as_json: bool = JSON_FLAG) -> None:
    """The embedding model, reranker and LLM in use, and the packaged alternatives (installed or not)."""
    if ctx.invoked_subcommand:
        return
    from kb.models.overview import models_overview
    from kb.reports import print_models

    info = models_overview(settings_with())
    print_json(info) if as_json else print_models(info)


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

    dest = models_dir(settings_with())
    if not state.quiet:
        err.print(f"downloading {repo}{' ' + file if file else ''} into {dest} …", markup=False)
    path = pull_model(repo, file, dest, timeout=timeout)
    out.print(str(path), markup=False)
    if not state.quiet:
        err.print(f"to use it: {config_hint(path)}", markup=False)
