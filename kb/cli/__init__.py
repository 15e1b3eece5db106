"""The `kb` command: parse flags, call the library, render (rich on a TTY, plain when piped, --json).

`app.py` holds the typer app and what commands share; `questions.py` (search, ask, shell, eval) and `manage.py`
(ingest and housekeeping) register their commands on it when imported here.
"""

from __future__ import annotations

import sys

from kb.cli import manage, questions  # noqa: F401  (importing registers their commands)
from kb.cli.app import EXIT_INTERRUPTED, app, err

__all__ = ["app", "hoist_global_options", "main"]

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
