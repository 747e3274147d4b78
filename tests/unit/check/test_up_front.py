"""Commands read and validate their own files before contacting any service: a broken policy or manifest stops
them with exit 2 and a located message, and no registry is asked anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from project_copy import edit

from moka_images.cli import main
from moka_images.commands import smoke as smoke_command
from moka_images.config.settings import load_settings
from moka_images.errors import ManifestError
from moka_images.models import Environment
from moka_images.stages import pipeline, registries

BROKEN_POLICY = ("policies/prod.yaml", "max_severity_with_fix: MEDIUM", "max_severity_with_fix: !!bool maybe")


def no_service(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a service was contacted before the files were validated")


@pytest.fixture
def offline(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project copy as MOKA_ROOT, with every way to a registry refused."""
    monkeypatch.setenv("MOKA_ROOT", str(project))
    monkeypatch.setenv("MOKA_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(registries, "client", no_service)
    monkeypatch.setattr(registries, "mirror", no_service)
    monkeypatch.setattr(smoke_command, "resolve", no_service)
    monkeypatch.setattr(pipeline, "build", no_service)
    return project


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, err


@pytest.mark.parametrize("argv", [["scan", "spark-3.5", "--env", "prod"], ["rescan", "--env", "prod"]])
def test_a_broken_policy_stops_the_command_before_any_registry(offline: Path, capsys: pytest.CaptureFixture[str],
                                                               argv: list[str]) -> None:
    edit(offline, *BROKEN_POLICY)
    code, err = run(capsys, *argv)
    assert code == 2 and "policies/prod.yaml:3: vulnerabilities.max_severity_with_fix: `maybe`" in err


def test_a_broken_waiver_file_is_reported_with_the_policy(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(offline, *BROKEN_POLICY)
    edit(offline, "policies/exceptions.yaml", "exceptions: []", "exceptions: [{id: x}]")
    code, err = run(capsys, "scan", "spark-3.5", "--env", "prod")
    assert code == 2 and "policies/prod.yaml:3" in err and "policies/exceptions.yaml:3: exceptions.0.image" in err


def test_the_pipeline_reads_test_and_its_target_policy_before_building(offline: Path) -> None:
    edit(offline, *BROKEN_POLICY)
    settings = load_settings(profile="local")
    with pytest.raises(ManifestError) as caught:
        pipeline.run_pipeline(settings, promote_to=Environment.PROD)
    assert [p.file for p in caught.value.problems] == ["policies/prod.yaml"]


def test_smoke_reads_the_manifests_before_the_registry(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(offline, "manifests/data-eng/etl-jobs.yaml", "timeout_seconds: 300", "timeout_seconds: !!int soon")
    code, err = run(capsys, "smoke", "data-eng/etl-jobs", "--env", "dev")
    assert code == 2 and "manifests/data-eng/etl-jobs.yaml:22: smoke.timeout_seconds: `soon`" in err
