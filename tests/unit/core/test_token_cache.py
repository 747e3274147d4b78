"""Registry tokens kept on disk between runs: handed out while good, private to the user, never a failure."""

from __future__ import annotations

import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from moka_images.adapters.ecr import RegistryCredentials
from moka_images.adapters.token_cache import TokenCache

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_a_kept_token_is_handed_out_until_five_minutes_before_it_expires(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "tokens")
    creds = RegistryCredentials("AWS", "t0ken", NOW + timedelta(hours=12))
    cache.put("prod", creds, now=NOW)
    assert TokenCache(tmp_path / "tokens").get("prod", now=NOW) == creds  # another run reads it back
    assert cache.get("prod", now=NOW + timedelta(hours=11, minutes=54)) == creds
    assert cache.get("prod", now=NOW + timedelta(hours=11, minutes=56)) is None
    assert cache.get("dev", now=NOW) is None


def test_a_token_without_an_expiry_is_kept_twelve_hours_from_when_it_was_fetched(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    cache.put("local", RegistryCredentials("AWS", "moto", None), now=NOW)
    assert cache.get("local", now=NOW + timedelta(hours=11)) == RegistryCredentials("AWS", "moto", None)
    assert cache.get("local", now=NOW + timedelta(hours=12)) is None


def test_tokens_are_readable_by_the_user_alone_and_named_by_a_hash_of_the_key(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "tokens")
    cache.put("default|prod|123456789012", RegistryCredentials("AWS", "t0ken", None), now=NOW)
    (path,) = (tmp_path / "tokens").iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "prod" not in path.name and "t0ken" in path.read_text()


def test_a_garbled_file_is_dropped_and_the_token_fetched_anew(tmp_path: Path,
                                                              warnings: list[tuple[str, dict[str, Any]]]) -> None:
    cache = TokenCache(tmp_path)
    cache.put("prod", RegistryCredentials("AWS", "t0ken", None), now=NOW)
    (path,) = tmp_path.iterdir()
    path.write_text('{"username": "AWS", "pass')  # a run killed mid-write by an older version, or a hand edit
    assert cache.get("prod", now=NOW) is None and not path.exists() and not warnings
    cache.put("prod", RegistryCredentials("AWS", "new", None), now=NOW)
    assert cache.get("prod", now=NOW) == RegistryCredentials("AWS", "new", None)


def test_a_cache_that_cannot_be_written_acts_as_empty_and_says_so_once(
        tmp_path: Path, warnings: list[tuple[str, dict[str, Any]]]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = TokenCache(blocker / "tokens")
    cache.put("prod", RegistryCredentials("AWS", "t0ken", None), now=NOW)
    cache.put("dev", RegistryCredentials("AWS", "t0ken", None), now=NOW)
    assert cache.get("prod", now=NOW) is None
    assert len(warnings) == 1 and "fetching tokens from ECR" in warnings[0][0]


def test_a_half_written_file_a_killed_run_left_is_dropped_once_an_hour_old(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    cache.put("prod", RegistryCredentials("AWS", "t0ken", None), now=NOW)
    old, fresh = tmp_path / ".part-old", tmp_path / ".part-fresh"  # another run may be writing the fresh one
    for part in (old, fresh):
        part.write_text('{"username": "AWS", "password": "t0')
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    cache.put("dev", RegistryCredentials("AWS", "t0ken", None), now=NOW)
    assert not old.exists() and fresh.exists()
    assert cache.get("prod", now=NOW) == cache.get("dev", now=NOW) == RegistryCredentials("AWS", "t0ken", None)
