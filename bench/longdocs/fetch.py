"""The long real PDFs of the longdocs bench: manuals written by others, taken from Debian's TeX Live packages,
pinned by package name, version and the PDF's sha256. Nothing is committed; the PDFs are unpacked into a cache
folder outside the repository (default ~/.cache/kb-bench/longdocs, env KB_BENCH_CACHE).

    python bench/longdocs/fetch.py            # fetch what is missing, print the folder
    python bench/longdocs/fetch.py --check    # only say whether every PDF is there

Needs `apt-get` (Debian/Ubuntu with the package lists updated: `apt-get update`) and `dpkg-deb`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# (file name in the cache, Debian package, version, path inside the package, sha256 of the PDF, pages)
PDFS = [
    ("ctex.pdf", "texlive-lang-chinese", "2022.20230122-1",
     "usr/share/doc/texlive-doc/latex/ctex/ctex.pdf",
     "372421fadf1a7cc053f129e89ab53800c80643865498e4b0b297fc180e21e5d7", 175),
    ("lshort-zh-cn.pdf", "texlive-lang-chinese", "2022.20230122-1",
     "usr/share/doc/texlive-doc/latex/lshort-chinese/lshort-zh-cn.pdf",
     "4f6b11c04054fcdbb23d6d3c8527b145d27c21abb9efa7e57f96be2b7def484c", 139),
    ("listings.pdf", "texlive-latex-recommended-doc", "2022.20230122-3",
     "usr/share/doc/texlive-doc/latex/listings/listings.pdf",
     "9a6e55d925a56c2e84f131242b1d0aa607e22ea2c385539f5561b00bc2e94839", 63),
    ("fontspec.pdf", "texlive-latex-recommended-doc", "2022.20230122-3",
     "usr/share/doc/texlive-doc/latex/fontspec/fontspec.pdf",
     "811067aa38ccb352a77f58ce844896b1d9ea31b7e385f8e2bb13338ce812c33e", 66),
    ("xcolor.pdf", "texlive-latex-recommended-doc", "2022.20230122-3",
     "usr/share/doc/texlive-doc/latex/xcolor/xcolor.pdf",
     "d354360b1216cf8c9618571434a34e9e7683c2cec426e6156b4c5fb80af49e41", 66),
    ("beameruserguide.pdf", "texlive-latex-recommended-doc", "2022.20230122-3",
     "usr/share/doc/texlive-doc/latex/beamer/beameruserguide.pdf",
     "9a1f87ab1036dec58ac19b59a27607d5ed51d115103cec41f8fd4d963ef9eb68", 234),
]


def cache_dir() -> Path:
    base = os.environ.get("KB_BENCH_CACHE") or Path.home() / ".cache" / "kb-bench"
    return Path(base) / "longdocs"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def missing(folder: Path) -> list[tuple]:
    return [p for p in PDFS if not (folder / p[0]).is_file() or sha256(folder / p[0]) != p[4]]


def fetch(folder: Path | None = None) -> Path:
    """Every pinned PDF in `folder` (the cache by default), fetched when missing; exits with a clear message
    when one cannot be had."""
    folder = folder or cache_dir()
    todo = missing(folder) if folder.exists() else list(PDFS)
    if not todo:
        return folder
    for tool in ("apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            sys.exit(f"longdocs: {len(todo)} PDF(s) missing from {folder} and `{tool}` is not available to fetch "
                     f"them (Debian packages: {', '.join(sorted({p[1] + ' ' + p[2] for p in todo}))})")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kb-longdocs-") as tmp:
        for package, version in sorted({(p[1], p[2]) for p in todo}):
            print(f"longdocs: downloading Debian package {package} {version} …", file=sys.stderr)
            run = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=tmp,
                                 capture_output=True, text=True)
            debs = list(Path(tmp).glob(f"{package}_*.deb"))
            if run.returncode or not debs:
                sys.exit(f"longdocs: cannot download Debian package {package} {version} "
                         f"(run `apt-get update` first?): {run.stderr.strip()[-300:]}")
            unpacked = Path(tmp) / package
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True)
            for name, pkg, _, member, digest, _ in todo:
                if pkg != package:
                    continue
                src = unpacked / member
                if not src.is_file():
                    sys.exit(f"longdocs: {member} is not in Debian package {package} {version}")
                if sha256(src) != digest:
                    sys.exit(f"longdocs: {member} in Debian package {package} {version} has sha256 "
                             f"{sha256(src)}, expected {digest}")
                shutil.copyfile(src, folder / name)
    if missing(folder):
        sys.exit(f"longdocs: still missing after the download: {[p[0] for p in missing(folder)]}")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check the cache; exit 1 when something is missing")
    ap.add_argument("--dir", type=Path, default=None, help="the folder (default: the cache)")
    args = ap.parse_args()
    folder = args.dir or cache_dir()
    if args.check:
        gone = missing(folder) if folder.exists() else PDFS
        for p in gone:
            print(f"missing: {p[0]} (Debian package {p[1]} {p[2]})")
        sys.exit(1 if gone else 0)
    print(fetch(folder))


if __name__ == "__main__":
    main()
