"""`kb models pull`: the only place kb touches the network (the Hugging Face hub), and the `kb config set`
line that uses what it pulled. huggingface_hub is imported only when pulling."""

from __future__ import annotations

import os
from pathlib import Path

from kb.errors import ModelNotFound

HF_ENDPOINT = "https://huggingface.co"


def check_reachable(url: str, timeout: float) -> None:
    """Fail fast (one line) when the hub cannot be reached, instead of huggingface_hub's minute of retries."""
    import socket
    import threading
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # through a proxy a direct probe proves nothing; rely on the download's own timeout
    u = urlparse(url)
    host, port = u.hostname or url, u.port or (80 if u.scheme == "http" else 443)
    failure: list[str] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as e:
            failure.append(e.strerror or str(e))

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive() or failure:
        why = failure[0] if failure else f"no answer within {timeout:g} s"
        raise ModelNotFound(f"cannot reach {host} ({why}): `kb models pull` needs network access to the "
                            f"Hugging Face hub")


def pull_model(repo_id: str, filename: str | None, dest_root: Path, timeout: float = 10.0) -> Path:
    """`kb models pull`: one file (a GGUF) into `dest_root`, or a whole model repository (sentence-transformers,
    cross-encoder) into `dest_root/<owner>--<name>`. The only place kb touches the network."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ModelNotFound("HF_HUB_OFFLINE is set: unset it to let `kb models pull` download")
    endpoint = os.environ.get("HF_ENDPOINT", HF_ENDPOINT)
    check_reachable(endpoint, timeout)
    from huggingface_hub import hf_hub_download, snapshot_download

    what = f"{repo_id}/{filename}" if filename else repo_id
    dest_root.mkdir(parents=True, exist_ok=True)
    try:
        if filename:
            return Path(hf_hub_download(repo_id, filename, local_dir=dest_root, etag_timeout=timeout))
        return Path(snapshot_download(repo_id, local_dir=dest_root / repo_id.replace("/", "--"),
                                      etag_timeout=timeout))
    except (OSError, ValueError) as e:  # huggingface_hub's errors derive from these (HTTPError is an OSError)
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFound(f"cannot download {what}: {message}") from None


def config_hint(path: Path) -> str:
    """The `kb config set` line that uses a pulled model."""
    if path.suffix == ".gguf":
        return f"kb config set llm_model {path}"
    try:
        import json

        archs = json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError):
        archs = []
    key = "reranker" if any("SequenceClassification" in a for a in archs) else "embedding_model"
    return f"kb config set {key} {path}"
