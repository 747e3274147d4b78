"""Mistakes are said before any service is asked, and a stack that is down is named as such."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from moka_images.adapters import ecr
from moka_images.cli import main
from moka_images.errors import ServiceError
from moka_images.stages import registries


def test_promote_names_a_mistyped_image_before_asking_any_registry(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def no_service(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a service was asked before the arguments were checked")

    monkeypatch.setattr(registries, "client", no_service)
    monkeypatch.setattr(ecr, "client", no_service)
    assert main(["promote", "Spark 3.5!", "--to", "dev"]) == 2
    err = capsys.readouterr().err
    assert "'Spark 3.5!' is not an image name" in err and "Traceback" not in err


def test_a_local_endpoint_that_is_down_is_called_the_stack_being_down() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    access = ecr.AwsAccess("eu-west-1", f"http://127.0.0.1:{port}", "arn:aws:iam::100000000002:role/moka-promoter")
    with pytest.raises(ServiceError) as down:
        ecr.assume_role(access, access.role_arn or "", "test")
    assert "moka-images dev up" in (down.value.hint or "")


def test_a_broken_release_file_is_named_with_its_field_before_any_service(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(registries, "client", lambda *a, **k: pytest.fail("a registry was asked"))
    release = tmp_path / "release.json"
    release.write_text(json.dumps({"schema": "moka-images/release/v1", "images": [
        {"name": "spark-3.5", "version": "1.0.1", "build_tag": "1.0.1-a-b", "digest": "sha256:nothex",
         "platforms": {}}]}))
    assert main(["promote", "--release", str(release), "--to", "dev"]) == 2
    err = capsys.readouterr().err
    assert "release.json" in err and "images.0.digest" in err and "not a sha256 digest" in err
    assert "Traceback" not in err
