"""The in-container PySpark driver's job loop: each job judged, timed and cut off at its own limit.

Spark itself is replaced by a recorder here because this tests the loop's bookkeeping; the jobs against real
Spark run in tests/integration/test_smoke.py.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

import moka_images.smoke

SCRIPT = Path(moka_images.smoke.__file__).parent / "payload" / "pyspark_suite.py"


@pytest.fixture()
def driver(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("moka_smoke_driver", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def wrong(spark: object) -> None:
        module._check(False, "expected 3, got 4")

    def crash(spark: object) -> None:
        raise RuntimeError("executor lost")

    def hang(spark: object) -> None:
        time.sleep(1.0)

    monkeypatch.setattr(module, "JOBS", {"ok": lambda spark: {"n": 3}, "wrong": wrong, "crash": crash, "hang": hang})
    return module


class FakeContext:
    def __init__(self) -> None:
        self.groups: list[str] = []
        self.cancelled: list[str] = []

    def setJobGroup(self, group: str, description: str, interruptOnCancel: bool) -> None:
        self.groups.append(group)

    def cancelJobGroup(self, group: str) -> None:
        self.cancelled.append(group)


def run(driver: ModuleType, name: str, limit: float, capsys: pytest.CaptureFixture[str]) -> tuple[bool, dict]:
    spark = SimpleNamespace(sparkContext=FakeContext())
    ok = driver.run_one(spark, name, limit, {"arch": "x86_64"}, driver.JOBS[name])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("MOKA_RESULT ")
    record = json.loads(line.removeprefix("MOKA_RESULT "))
    record["_ctx"] = spark.sparkContext
    return ok, record


def test_passing_job_reports_its_value_and_job_group(driver: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    ok, record = run(driver, "ok", 5, capsys)
    assert ok and record["status"] == "passed" and record["value"] == {"n": 3} and record["error"] is None
    assert record["_ctx"].groups == ["ok"] and record["info"] == {"arch": "x86_64"}


def test_wrong_answer_is_failed_and_crash_is_error(driver: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    ok, record = run(driver, "wrong", 5, capsys)
    assert not ok and record["status"] == "failed" and record["error"] == "expected 3, got 4"
    ok, record = run(driver, "crash", 5, capsys)
    assert not ok and record["status"] == "error" and record["error"] == "RuntimeError: executor lost"


def test_hung_job_is_cut_off_and_its_spark_jobs_cancelled(driver: ModuleType,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    ok, record = run(driver, "hang", 0.2, capsys)
    assert not ok and record["status"] == "timed-out" and "0.2s" in record["error"]
    assert record["_ctx"].cancelled == ["hang"] and record["seconds"] < 1.0
    assert time.monotonic() - start < 5


def test_team_script_runs_as_main_and_its_output_is_kept(driver: ModuleType, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "smoke.py"
    script.write_text("import sys\nif __name__ == '__main__':\n    print('rows', 3)\n    print(sys.argv[0])\n"
                      "    sys.exit(0)\n")
    (name, limit, job), = driver.parse_plan([f"team=30@{script}"])
    assert (name, limit) == ("team", 30.0)
    assert job(SimpleNamespace()) == {"output": ["rows 3", str(script)]}
    assert "rows 3" in capsys.readouterr().out, "the script's output also reaches the driver log"


def test_team_script_that_exits_non_zero_is_an_error(driver: ModuleType, tmp_path: Path) -> None:
    script = tmp_path / "smoke.py"
    script.write_text("raise SystemExit(3)\n")
    with pytest.raises(RuntimeError, match="exited with 3"):
        driver.team_job(str(script))(SimpleNamespace())


def test_unknown_job_name_stops_the_driver(driver: ModuleType) -> None:
    with pytest.raises(SystemExit):
        driver.parse_plan(["nope=10"])
