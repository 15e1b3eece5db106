"""Settings precedence (defaults < config.toml < kb.toml < env < flags) and validation."""

from __future__ import annotations

import pytest

from kb.config import ConfigError, load_settings, resolve_kb_path, set_user_setting, user_config_file


def test_defaults_and_sources():
    s = load_settings()
    assert s.embedding_model == "e5" and s.sources["embedding_model"] == "default"
    assert s.kb_path == resolve_kb_path(None)
    assert s.kb_path.name == "default"


def test_precedence_layers(tmp_path, monkeypatch):
    set_user_setting("batch_size", "8")
    set_user_setting("chunk_overlap", "10")
    kb_dir = tmp_path / "mykb"
    kb_dir.mkdir()
    (kb_dir / "kb.toml").write_text("chunk_overlap = 20\nworkers = 0\n")
    monkeypatch.setenv("KB_WORKERS", "2")
    s = load_settings(str(kb_dir), flags={"batch_size": None, "chunk_tokens": 100})
    assert s.batch_size == 8 and s.sources["batch_size"] == str(user_config_file())
    assert s.chunk_overlap == 20 and s.sources["chunk_overlap"].endswith("kb.toml")
    assert s.workers == 2 and s.sources["workers"] == "env KB_WORKERS"
    assert s.chunk_tokens == 100 and s.sources["chunk_tokens"] == "flag"


def test_invalid_values_name_key_value_and_allowed(monkeypatch):
    with pytest.raises(ConfigError, match=r"batch_size='many' is not a valid int"):
        set_user_setting("batch_size", "many")
    with pytest.raises(ConfigError, match=r"device='tpu' must be one of: auto, cpu, cuda, mps"):
        set_user_setting("device", "tpu")
    with pytest.raises(ConfigError, match=r"unknown setting 'colour'"):
        set_user_setting("colour", "red")
    monkeypatch.setenv("KB_CHUNK_OVERLAP", "-3")
    with pytest.raises(ConfigError, match=r"env: setting chunk_overlap='-3' must be >= 0"):
        load_settings()


def test_kb_names_and_paths(tmp_path, monkeypatch):
    assert resolve_kb_path("papers").parts[-2:] == ("kbs", "papers")
    assert resolve_kb_path(str(tmp_path / "x")) == tmp_path / "x"
    monkeypatch.setenv("KB_HOME", str(tmp_path / "fromenv"))
    assert load_settings().kb_path == tmp_path / "fromenv"
    assert load_settings().sources["kb"] == "env KB_HOME"


def test_readme_documents_every_setting_with_its_default():
    import re
    from pathlib import Path

    from kb.config import OPTIONS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", readme, re.MULTILINE))
    for o in OPTIONS:
        shown = rows.get(o.key)
        assert shown is not None, f"README's configuration table lacks {o.key}"
        default = ("true" if o.default else "false") if isinstance(o.default, bool) else \
            (f'"{o.default}"' if isinstance(o.default, str) else str(o.default))
        assert shown == default, (o.key, shown, default)


def test_config_set_keeps_comments_and_key_order():
    """`kb config set` edits the user's file in place: comments and key order stay, a new key goes last."""
    path = user_config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('# my kb settings\nworkers = 2  # two cores here\n\nbatch_size = 16\ndevice = "cpu"\n',
                    encoding="utf-8")
    set_user_setting("batch_size", "8")
    set_user_setting("chunk_overlap", "10")
    assert path.read_text(encoding="utf-8") == ('# my kb settings\nworkers = 2  # two cores here\n\n'
                                                'batch_size = 8\ndevice = "cpu"\nchunk_overlap = 10\n')
    set_user_setting("workers", "3")
    assert path.read_text(encoding="utf-8").splitlines()[:2] == ["# my kb settings", "workers = 3  # two cores here"]
    s = load_settings()
    assert (s.workers, s.batch_size, s.device, s.chunk_overlap) == (3, 8, "cpu", 10)
    assert not path.with_suffix(".tmp").exists()
