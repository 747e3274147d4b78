from pathlib import Path

import pytest

from moka_images.config.settings import load_settings
from moka_images.errors import ManifestError
from moka_images.models import Environment

ROOT = Path(__file__).resolve().parents[3]


def test_local_profile_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOKA_HOME", str(tmp_path))
    settings = load_settings(ROOT, "local")
    assert settings.local_stack
    assert settings.env(Environment.TEST).signing_key == f"{tmp_path}/keys/test.key"
    assert settings.repository("spark-3.5") == "moka/spark-3.5"
    assert settings.policy_path(Environment.PROD) == ROOT / "policies/prod.yaml"
    assert settings.env(Environment.PROD).approval_required


def test_production_profile_points_at_real_ecr() -> None:
    settings = load_settings(ROOT, "production")
    assert settings.ecr.endpoint is None
    assert all(".dkr.ecr." in settings.env(e).registry for e in Environment)
    assert settings.env(Environment.PROD).signing_key.startswith("awskms://")


def test_env_overrides_platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOKA_PLATFORMS", "linux/arm64")
    assert [str(p) for p in load_settings(ROOT, "local").platform_list()] == ["linux/arm64"]


def test_unknown_profile_names_file_and_known_profiles() -> None:
    with pytest.raises(ManifestError) as err:
        load_settings(ROOT, "staging-eu")
    assert "moka.yaml:3: profiles: no profile 'staging-eu'" in str(err.value)
    assert "local" in str(err.value)


def test_bad_config_reports_field(tmp_path: Path) -> None:
    text = (ROOT / "moka.yaml").read_text().replace('account: "100000000002"', 'acount: "100000000002"', 1)
    (tmp_path / "moka.yaml").write_text(text)
    with pytest.raises(ManifestError) as err:
        load_settings(tmp_path, "local")
    message = str(err.value)
    assert "moka.yaml:22: profiles.local.environments.dev.acount: unknown key (did you mean `account`?)" in message
    assert "moka.yaml:20: profiles.local.environments.dev.account: required field is missing" in message


def test_an_unsupported_platform_is_a_located_problem_not_a_bare_error(tmp_path: Path) -> None:
    text = (ROOT / "moka.yaml").read_text().replace("platforms: [linux/amd64, linux/arm64]",
                                                    "platforms: [windows/amd64]", 1)
    (tmp_path / "moka.yaml").write_text(text)
    with pytest.raises(ManifestError) as err:
        load_settings(tmp_path, "local")
    (problem,) = err.value.problems
    assert (problem.file, problem.line, problem.field) == ("moka.yaml", 8, "profiles.local.platforms")
    assert "unsupported platform 'windows/amd64'" in problem.message and problem.fix


def test_an_impossible_date_in_the_settings_is_located(tmp_path: Path) -> None:
    text = (ROOT / "moka.yaml").read_text().replace('mirror: "127.0.0.1:15000"', "mirror: 2024-02-30", 1)
    (tmp_path / "moka.yaml").write_text(text)
    with pytest.raises(ManifestError) as err:
        load_settings(tmp_path, "local")
    (problem,) = err.value.problems
    assert (problem.line, problem.field) == (10, "profiles.local.mirror")
    assert "`2024-02-30` is not a date" in problem.message
