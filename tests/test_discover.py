""".kbignore follows .gitignore's rules: checked against git itself on the same tree and the same patterns."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from kb.ingest import discover

PATTERNS = "# drafts and notes stay out\n*.md\n!keep.md\ndocs/**/draft-*\nbuild/\n"
NESTED = "!draft-final.txt\n"  # a deeper file re-includes what a shallower one excluded
FILES = ["a.md", "keep.md", "b.txt", "docs/guide.txt", "docs/x/draft-1.txt", "docs/x/y/draft-2.txt",
         "docs/draft-top.txt", "docs/x/notes.md", "docs/x/keep.md", "build/out.txt", "src/build.txt",
         "sub/draft-final.txt", "sub/docs/z/draft-final.txt", "sub/docs/z/draft-other.txt"]


def _tree(root):
    for rel in FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("text\n")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_kbignore_behaves_as_git_would(tmp_path):
    kb_tree, git_tree = tmp_path / "kb", tmp_path / "git"
    for root, name in ((kb_tree, ".kbignore"), (git_tree, ".gitignore")):
        _tree(root)
        (root / name).write_text(PATTERNS)
        (root / "sub" / name).write_text(NESTED)
    subprocess.run(["git", "init", "-q", str(git_tree)], check=True)
    listed = subprocess.run(["git", "-C", str(git_tree), "ls-files", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.split()
    git_kept = sorted(f for f in listed if not f.endswith(".gitignore"))

    files, _ = discover([kb_tree])
    kb_kept = sorted(p.relative_to(kb_tree).as_posix() for p in files)
    assert kb_kept == git_kept
    assert "keep.md" in kb_kept and "a.md" not in kb_kept  # negation
    assert "docs/x/draft-1.txt" not in kb_kept and "docs/guide.txt" in kb_kept  # **
    assert "src/build.txt" in kb_kept and "build/out.txt" not in kb_kept  # a directory pattern


def test_glob_and_exclude_flags_still_use_fnmatch(tmp_path):
    _tree(tmp_path)
    files, _ = discover([tmp_path], include=["*.txt"], exclude=["docs/*"])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files) == [
        "b.txt", "build/out.txt", "src/build.txt", "sub/docs/z/draft-final.txt", "sub/docs/z/draft-other.txt",
        "sub/draft-final.txt"]  # docs/* is relative to the folder named: sub/docs is not under it
