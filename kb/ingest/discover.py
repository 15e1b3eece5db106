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
import stat
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


class Discovery:
    """What a walk found: the files to ingest, and how many entries it passed over and why. Unpacks as
    `(files, skipped_other)` for callers that only need those."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.skipped_other = 0  # regular files that are not a document type
        self.skipped_special = 0  # FIFOs, sockets, devices (also behind symlinks)
        self.skipped_links = 0  # symlinks leading outside the folders named, into a loop, or nowhere

    def __iter__(self):
        return iter((self.files, self.skipped_other))


def discover(roots: Sequence[Path], include: Sequence[str] = (), exclude: Sequence[str] = (),
             follow_links: bool = False) -> Discovery:
    """Files to ingest under `roots`.

    Only regular files are taken: FIFOs, sockets and devices are counted and skipped, also behind a symlink
    (opening a FIFO blocks; a device like /dev/zero reads forever). A symlinked folder is followed once (a
    folder reached twice, e.g. through a loop, is walked once: folders are told apart by device and inode), and
    a symlink is followed only when it leads inside one of `roots`, unless `follow_links`. Hidden and VCS
    directories are skipped, and so is whatever a `.kbignore` file names; a file named explicitly is always
    taken. Legacy office formats are kept so they can be reported with a hint instead of silently ignored.
    """
    found = Discovery()
    real_roots = [os.path.realpath(r) for r in roots]
    seen_dirs: set[tuple[int, int]] = set()
    for root in roots:
        try:
            st = os.stat(root)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            if stat.S_ISREG(st.st_mode):
                found.files.append(root)
            else:
                found.skipped_special += 1
            continue
        _walk(Path(root), st, found, seen_dirs, real_roots, include, exclude, follow_links)
    found.files = list(dict.fromkeys(found.files))
    return found


def _inside(target: str, real_roots: Sequence[str]) -> bool:
    return any(target == r or target.startswith(r.rstrip(os.sep) + os.sep) for r in real_roots)


def _walk(root: Path, root_stat: os.stat_result, found: Discovery, seen_dirs: set, real_roots: Sequence[str],
          include: Sequence[str], exclude: Sequence[str], follow_links: bool) -> None:
    from kb.extract import is_candidate

    seen_dirs.add((root_stat.st_dev, root_stat.st_ino))
    stack: list[tuple[Path, _Ignores]] = [(root, _Ignores())]
    while stack:
        here, rules = stack.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError:
            continue
        rules = rules.inside(here, [e.name for e in entries])
        subdirs = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            path = here / name
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError:  # a dangling link, or gone since the listing
                found.skipped_links += entry.is_symlink()
                continue
            if not stat.S_ISDIR(st.st_mode) and not stat.S_ISREG(st.st_mode):
                found.skipped_special += 1  # FIFO, socket, device: never opened, wherever a link points
                continue
            if entry.is_symlink() and not follow_links and not _inside(os.path.realpath(path), real_roots):
                found.skipped_links += 1
                continue
            if stat.S_ISDIR(st.st_mode):
                if name in SKIP_DIRS or rules.ignored(path, is_dir=True):
                    continue
                if (st.st_dev, st.st_ino) in seen_dirs:  # a loop, or a folder already walked
                    found.skipped_links += entry.is_symlink()
                    continue
                seen_dirs.add((st.st_dev, st.st_ino))
                subdirs.append(path)
                continue
            rel = path.relative_to(root).as_posix()
            if include and not any(_match(rel, name, g) for g in include):
                continue
            if any(_match(rel, name, g) for g in exclude) or rules.ignored(path, is_dir=False):
                continue
            if is_candidate(path):
                found.files.append(path)
            else:
                found.skipped_other += 1
        stack.extend((d, rules) for d in reversed(subdirs))


def _match(rel: str, name: str, pattern: str) -> bool:
    return fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, pattern)


def file_sha256(path: Path) -> str:
    """The content hash; refuses (OSError) anything that is not a regular file by the time it is opened."""
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"not a regular file: {path}")
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
