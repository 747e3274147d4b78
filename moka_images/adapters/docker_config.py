"""The docker client config (auths) that buildx, cosign and trivy all read: written directly, atomically."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path


def config_path() -> Path:
    """DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def store_login(registry: str, username: str, password: str) -> None:
    """Record credentials for `registry` so every tool that reads the docker config can use them."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        doc = {}
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    if doc.get("auths", {}).get(registry, {}).get("auth") == auth:
        return
    doc.setdefault("auths", {})[registry] = {"auth": auth}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config.")
    with os.fdopen(fd, "w") as handle:
        json.dump(doc, handle, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
