"""The typer app every `kb` command registers on, the global options, and what every command shares: the
settings it runs with, its error handling (a KbError becomes one line on stderr and its exit code) and --json.

Only light modules are imported at the top; torch and friends load inside the commands that need them.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from functools import wraps
from typing import Any, Optional

import typer

from kb import __version__
from kb.config import load_settings
from kb.errors import EXIT_ERROR, EXIT_INTERRUPTED, KbError
from kb.render import err


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
            fail("interrupted; the knowledge base is as it was before this command", EXIT_INTERRUPTED)
        except KbError as e:
            fail(str(e), e.exit_code)
        except sqlite3.DatabaseError as e:  # a damaged catalog found while reading it
            fail(f"the knowledge base's catalog cannot be read ({e}); `kb doctor` says what is damaged. The catalog "
                 "is the source of truth: restore the knowledge base folder from a backup, or move it away and "
                 "ingest the documents again", EXIT_ERROR)

    return wrapper


def fail(message: str, code: int) -> None:
    err.print(f"kb: error: {message}", markup=False)
    raise typer.Exit(code)


JSON_FLAG = typer.Option(False, "--json", help="Print as JSON (shapes in README.md).")
RERANKER_FLAG = typer.Option(None, "--reranker", help="Cross-encoder to rerank with (path or id).")
NO_RERANK_FLAG = typer.Option(False, "--no-rerank", help="Keep the fused order even if a reranker is set.")


def print_json(data: Any) -> None:
    from kb.names import json_dumps

    sys.stdout.write(json_dumps(data, indent=2) + "\n")


def settings_with(**flags):
    return load_settings(state.kb, flags)


def open_kb(settings):
    from kb.store import KnowledgeBase

    return KnowledgeBase(settings.kb_path)


def announce_model(model_id: str) -> None:
    if not state.quiet:
        err.print(f"loading embedding model {model_id} …", markup=False)
