"""The in-container PySpark driver's job loop: each job judged, timed and cut off at its own limit.

Spark itself is replaced by a recorder here because this tests the loop's bookkeeping; the jobs against real
Spark run in tests/integration/test_smoke.py.
"""

from __future__ import annotations

import importlib.util
import json
import time
import zipfile
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


def fake_proc(root: Path, processes: dict[int, tuple[int, bytes]]) -> Path:
    """A /proc with `pid: (ppid, cmdline)` entries, as the kernel shows them."""
    for pid, (ppid, cmdline) in processes.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "stat").write_bytes(f"{pid} (qemu-aarch64) S {ppid} 1 1 0".encode())
        (root / str(pid) / "cmdline").write_bytes(cmdline)
    (root / "self").mkdir()
    return root


JVM = b"/usr/libexec/qemu-binfmt/aarch64-binfmt-P\0/usr/bin/java\0-cp\0jars/*\0"


def test_reaper_finds_only_jvm_children_still_a_copy_of_the_jvm_after_its_delay(driver: ModuleType,
                                                                                tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {
        40: (1, JVM),  # the JVM
        41: (40, JVM),  # forked, never reached exec
        42: (40, b"/usr/libexec/qemu-binfmt/aarch64-binfmt-P\0/usr/bin/chmod\x000644\0f\0"),  # exec'd normally
        43: (1, JVM),  # looks the same, but not the JVM's child
    })
    reaper = driver.StuckForkReaper(40, after=15.0, proc=str(proc))
    assert reaper.stuck_children(now=100.0) == []  # first seen now
    assert reaper.stuck_children(now=110.0) == []
    assert reaper.stuck_children(now=115.0) == [41]


def test_job_that_met_a_stuck_fork_is_retried_and_says_so(driver: ModuleType,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    reaper = SimpleNamespace(killed=0)
    attempts: list[int] = []

    def chmod_killed_once(spark: object) -> dict:
        attempts.append(1)
        if len(attempts) == 1:
            reaper.killed += 1  # as the reaper thread does while the job waits on the stuck child
            raise RuntimeError("ExitCodeException exitCode=137: chmod")
        return {"rows": 5}

    spark = SimpleNamespace(sparkContext=FakeContext())
    assert driver.run_one(spark, "parquet", 5, {"arch": "aarch64"}, chmod_killed_once, reaper)
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("MOKA_RESULT "))
    assert record["status"] == "passed" and record["value"] == {"rows": 5} and len(attempts) == 2
    assert record["info"] == {"arch": "aarch64", "retries_after_stuck_fork": 1}


def test_a_failure_without_a_stuck_fork_is_not_retried(driver: ModuleType,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    reaper = SimpleNamespace(killed=3)
    spark = SimpleNamespace(sparkContext=FakeContext())
    assert not driver.run_one(spark, "crash", 5, {}, driver.JOBS["crash"], reaper)
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("MOKA_RESULT "))
    assert record["status"] == "error" and record["info"] == {} and spark.sparkContext.groups == ["crash"]


@pytest.mark.parametrize(("name", "artifact", "version"), [
    ("netty-transport-native-epoll-4.1.96.Final-linux-x86_64.jar", "netty-transport-native-epoll",
     "4.1.96.Final"),
    ("hive-shims-0.23-2.3.9.jar", "hive-shims-0.23", "2.3.9"),
    ("log4j-1.2-api-2.20.0.jar", "log4j-1.2-api", "2.20.0"),
    ("json4s-core_2.12-3.7.0-M11.jar", "json4s-core_2.12", "3.7.0"),
    ("hadoop-client-api-3.3.4.jar", "hadoop-client-api", "3.3.4"),
    ("zstd-jni-1.5.5-4.jar", "zstd-jni", "1.5.5"),
    ("xz-1.9.jar", "xz", "1.9"),
    ("commons-lang3-3.12.0.jar", "commons-lang3", "3.12.0"),
    ("opencsv.jar", "opencsv", ""),
])
def test_jar_name_splits_artifact_and_version(driver: ModuleType, name: str, artifact: str,
                                              version: str) -> None:
    assert driver.jar_name(name) == (artifact, version)


GOOD_JARS = ["hadoop-client-api-3.3.4.jar", "hadoop-client-runtime-3.3.4.jar", "hadoop-aws-3.3.4.jar",
             "spark-core_2.12-3.5.3.jar", "netty-transport-native-epoll-4.1.96.Final-linux-x86_64.jar",
             "netty-transport-native-epoll-4.1.96.Final-linux-aarch_64.jar", "NOTICE.txt"]


def spark_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jars: list[str]) -> None:
    """A $SPARK_HOME whose jars folder holds `jars` (empty files: no Maven metadata to tell groups apart)."""
    (tmp_path / "jars").mkdir()
    for name in jars:
        (tmp_path / "jars" / name).write_bytes(b"")
    monkeypatch.setenv("SPARK_HOME", str(tmp_path))


def test_classpath_passes_one_version_of_each_artifact(driver: ModuleType, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spark_home(tmp_path, monkeypatch, GOOD_JARS)
    assert driver.classpath(None) == {"artifacts": 5, "hadoop": "3.3.4"}


NO_AWS = [j for j in GOOD_JARS if not j.startswith("hadoop-aws")]


@pytest.mark.parametrize(("jars", "says"), [
    ([*GOOD_JARS, "foo-1.0.jar", "foo-2.0.jar"],
     "two versions of one artifact on the classpath: {'foo': ['1.0', '2.0']}"),
    (NO_AWS, "hadoop-aws missing is not at the Hadoop client's version ['3.3.4']"),
    ([*NO_AWS, "hadoop-aws-3.3.6.jar"],
     "hadoop-aws ['3.3.6'] is not at the Hadoop client's version ['3.3.4']"),
    ([j for j in GOOD_JARS if not j.startswith("hadoop-")], "no hadoop-client-api JAR in $SPARK_HOME/jars"),
])
def test_classpath_fails_on_two_versions_or_a_hadoop_aws_that_does_not_match(
        driver: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jars: list[str],
        says: str) -> None:
    spark_home(tmp_path, monkeypatch, jars)
    with pytest.raises(driver.CheckFailed) as failed:
        driver.classpath(None)
    assert str(failed.value) == says


def test_classpath_tells_two_artifacts_of_one_name_apart_by_their_maven_group(
        driver: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spark_home(tmp_path, monkeypatch, GOOD_JARS)
    for version, group in (("2.14.6", "jline"), ("3.22.0", "org.jline")):  # as Spark ships them
        with zipfile.ZipFile(tmp_path / "jars" / f"jline-{version}.jar", "w") as jar:
            jar.writestr(f"META-INF/maven/{group}/jline/pom.properties", f"version={version}\n")
    assert driver.classpath(None)["artifacts"] == 6


def test_the_s3a_job_takes_its_uri_after_the_limit(driver: ModuleType,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert driver.PARAMETER_JOBS["s3a"] is driver.s3a_job
    monkeypatch.setitem(driver.PARAMETER_JOBS, "s3a", lambda uri: ("s3a round trip at", uri))
    assert driver.parse_plan(["s3a=240@s3a://b/p"]) == [("s3a", 240.0, ("s3a round trip at", "s3a://b/p"))]
    with pytest.raises(SystemExit, match="unknown smoke job: s3a"):
        driver.parse_plan(["s3a=240"])  # without a URI there is nothing to write to
