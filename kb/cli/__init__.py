"""The `kb` command: parse flags, call the library, render (rich on a TTY, plain when piped, --json).

`app.py` holds the typer app and what commands share; `questions.py` (search, ask, shell, eval) and `manage.py`
(ingest and housekeeping) register their commands on it when imported here.
"""

from __future__ import annotations

import re
import sys

from kb.cli import manage, questions  # noqa: F401  (importing registers their commands)
from kb.cli.app import EXIT_INTERRUPTED, app, err

__all__ = ["app", "hoist_global_options", "main", "ray_flag_alone"]

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


RAY_ADDRESS = re.compile(r"^(local|auto|ray://\S+|[\w.\-]+:\d+)$")


def ray_flag_alone(argv: list[str]) -> list[str]:
    """`kb ingest docs --ray` means `--ray local`, as the issue that brought Ray wrote it: click cannot give an
    option an optional value (typer does not pass `flag_value` on), so a `--ray` not followed by an address
    (local, auto, host:port, ray://…) gets `local` here, and a path after it stays a path."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        out.append(arg)
        if arg == "--ray" and (i + 1 == len(argv) or not RAY_ADDRESS.match(argv[i + 1])):
            out.append("local")
    return out


def main() -> None:
    try:
        app(args=ray_flag_alone(hoist_global_options(sys.argv[1:])))
    except KeyboardInterrupt:
        err.print("kb: interrupted", markup=False)
        sys.exit(EXIT_INTERRUPTED)
