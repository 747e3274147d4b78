"""Registry tokens kept on disk from one run to the next, as Amazon's ECR credential helper keeps its own.

An ECR authorization token is valid for 12 hours, and fetching one costs a run an STS call (the environment's
role) and an ECR call per environment (0.14 s for four environments in one measurement on the local stack;
round trips to AWS on the real one).
Tokens are kept under a key of what they were fetched for (the caller builds it: profile, account, region,
endpoint, role, the caller's AWS identity variables), one file each, readable by the user alone: the same
secret docker's config.json holds after a login. A token is handed out until five minutes before it expires
(one without an expiry, as moto's: until 12 hours after it was fetched); a registry that refuses it has it
replaced by the caller (`RegistryClient(renew=...)`). A cache that cannot be read or written acts as empty:
it may make a run slower, never fail it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from moka_images import log
from moka_images.adapters.ecr import REFRESH_MARGIN, RegistryCredentials

TOKEN_LIFETIME = timedelta(hours=12)  # ECR's; also the most a token without an expiry is kept
STALE_PART_SECONDS = 3600  # a half-written file this old was left by a run that died


class TokenCache:
    """Registry credentials by key under `root`, one file each (0600 in a 0700 folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._broken = False

    def _path(self, key: str) -> Path:
        return self.root / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def get(self, key: str, now: datetime | None = None) -> RegistryCredentials | None:
        """The credentials kept for `key`, if there are some and they are good for five minutes more."""
        path = self._path(key)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._failed(exc)
            return None
        try:
            doc = json.loads(text)
            until = datetime.fromisoformat(doc["valid_until"])
            creds = RegistryCredentials(doc["username"], doc["password"],
                                        datetime.fromisoformat(doc["expires_at"]) if doc["expires_at"] else None)
        except (ValueError, KeyError, TypeError):  # cut short or not ours: dropped, and fetched anew
            self.forget(key)
            return None
        return creds if until - (now or datetime.now(UTC)) >= REFRESH_MARGIN else None

    def put(self, key: str, creds: RegistryCredentials, now: datetime | None = None) -> None:
        """Keep `creds` for `key`, replacing what was there; written whole or not at all."""
        if self._broken:
            return
        until = creds.expires_at or (now or datetime.now(UTC)) + TOKEN_LIFETIME
        doc = {"username": creds.username, "password": creds.password, "valid_until": until.isoformat(),
               "expires_at": creds.expires_at.isoformat() if creds.expires_at else None}
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            with tempfile.NamedTemporaryFile("w", dir=self.root, prefix=".part-", delete=False) as tmp:  # 0600
                json.dump(doc, tmp)
            os.replace(tmp.name, self._path(key))
        except OSError as exc:
            self._failed(exc)
            return
        self._drop_stale_parts()

    def _drop_stale_parts(self) -> None:
        """Half-written files a killed run left (each holds a token): gone once they are an hour old."""
        for part in self.root.glob(".part-*"):
            try:
                if part.stat().st_mtime < time.time() - STALE_PART_SECONDS:
                    part.unlink()
            except OSError:  # another run dropped it meanwhile
                continue

    def forget(self, key: str) -> None:
        """Drop what is kept for `key`."""
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        if not self._broken:
            self._broken = True
            log.warn(f"registry token cache {self.root} is not usable ({exc}); fetching tokens from ECR")
