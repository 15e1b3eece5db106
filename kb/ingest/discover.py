"""Which files an ingest looks at: a walk of the folders named, minus hidden and VCS folders and whatever a
`.kbignore` says, plus the content hash that tells a changed file from an unchanged one.

`.kbignore` files follow .gitignore's rules exactly (pathspec's GitIgnoreSpec: `*.log`, `drafts/`, `docs/**/draft-*`,
negation with `!keep.md`, patterns relative to the folder holding the file, deeper files overriding shallower
ones, and, as in git, nothing inside an ignored folder can be brought back). `--glob`/`--exclude` patterns are
fnmatch patterns matched against the path relative to the folder named, or the file name.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from pathlib import Path
from typing import Sequence

SKIP_DIRS = {"node_modules", "__pycache__", "venv", ".venv"}
IGNORE_FILE = ".kbignore"


class _Ignores:
    """The .kbignore files that apply inside one folder, outermost first."""

    def __init__(self, specs: tuple[tuple[Path, object], ...] = ()):
        self.specs = specs

    def inside(self, folder: Path, filenames: Sequence[str]) -> "_Ignores":
        if IGNORE_FILE not in filenames:
            return self
        try:
            lines = (folder / IGNORE_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return self
        from pathspec import GitIgnoreSpec

        return _Ignores((*self.specs, (folder, GitIgnoreSpec.from_lines(lines))))

    def ignored(self, path: Path, is_dir: bool) -> bool:
        """git's answer: the deepest .kbignore with a pattern matching `path` decides (a `!` pattern includes)."""
        verdict = False
        for base, spec in self.specs:
            rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
            result = spec.check_file(rel)
            if result.include is not None:
                verdict = result.include
        return verdict


def discover(roots: Sequence[Path], include: Sequence[str] = (), exclude: Sequence[str] = ()
             ) -> tuple[list[Path], int]:
    """Files to ingest under `roots`, and how many other files were passed over (not a document type).

    Hidden and VCS directories are skipped, and so is whatever a `.kbignore` file names; a file named
    explicitly is always taken. Legacy office formats are kept so they can be reported with a hint instead of
    silently ignored.
    """
    from kb.extract import is_candidate

    files: list[Path] = []
    skipped = 0
    for root in roots:
        if root.is_file():
            files.append(root)
            continue
        ignores: dict[Path, _Ignores] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            rules = ignores.pop(here, None) or _Ignores()
            rules = rules.inside(here, filenames)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS
                                 and not rules.ignored(here / d, is_dir=True))
            for d in dirnames:
                ignores[here / d] = rules
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = here / name
                rel = path.relative_to(root).as_posix()
                if include and not any(_match(rel, name, g) for g in include):
                    continue
                if any(_match(rel, name, g) for g in exclude) or rules.ignored(path, is_dir=False):
                    continue
                if is_candidate(path):
                    files.append(path)
                else:
                    skipped += 1
    return list(dict.fromkeys(files)), skipped


def _match(rel: str, name: str, pattern: str) -> bool:
    return fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, pattern)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
