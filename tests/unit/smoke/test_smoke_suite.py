"""The suite as data: grouping into Spark applications, limits, team jobs, the container command."""

from __future__ import annotations

import pytest

from moka_images.config.manifests import load_declarations
from moka_images.config.settings import load_settings
from moka_images.errors import ConfigError
from moka_images.models import Digest, ImageRef, Platform
from moka_images.recipes.team import SMOKE_PATH
from moka_images.smoke.docker_runner import container_args, create_argv
from moka_images.smoke.suite import (
    BASE_CONF,
    BUILTIN_JOBS,
    PAYLOAD_DIR,
    PROPERTIES_FILE,
    PYSPARK_CONF,
    PYTHON_RUNNER,
    STARTUP_ALLOWANCE,
    JobKind,
    JobSpec,
    S3Target,
    SparkApp,
    payload_files,
    plan_apps,
    properties_file,
    s3a_job,
    team_job,
)
from moka_images.stages.verify.smoke import builtin_jobs, jobs_for

IMAGE = ImageRef("127.0.0.1:15001", "moka/spark-3.5", digest=Digest("sha256:" + "4" * 64))


def test_pyspark_jobs_share_one_application_and_the_jvm_job_gets_its_own() -> None:
    apps = plan_apps(BUILTIN_JOBS)
    assert [a.name for a in apps] == ["pyspark", "jvm"]
    assert [j.name for j in apps[0].jobs] == ["entrypoint", "dataframe_sql", "python_udf", "parquet",
                                              "classpath", "metrics", "json_logs"]
    assert apps[0].app_args == ("entrypoint=120", "dataframe_sql=180", "python_udf=120", "parquet=180",
                                "classpath=60", "metrics=120", "json_logs=60")
    assert apps[0].limit == STARTUP_ALLOWANCE + 840


def test_builtin_suite_covers_what_the_issue_lists() -> None:
    assert {j.name for j in BUILTIN_JOBS} == {"entrypoint", "dataframe_sql", "python_udf", "parquet",
                                              "classpath", "metrics", "json_logs", "jvm"}
    assert {j.kind for j in BUILTIN_JOBS} == {JobKind.PYSPARK, JobKind.JVM}


def test_plain_spark_submit_for_the_jvm_job() -> None:
    jvm = next(a for a in plan_apps(BUILTIN_JOBS) if a.name == "jvm")
    args = container_args(jvm)
    assert args[:3] == ["spark-submit", "--master", "local[2]"]
    assert args[-3:] == ["--class", "moka.smoke.SmokeJob", f"{PAYLOAD_DIR}/moka-smoke.jar"]


def test_pyspark_application_gets_driver_pod_arguments_through_the_entrypoint() -> None:
    pyspark = next(a for a in plan_apps(BUILTIN_JOBS) if a.name == "pyspark")
    args = container_args(pyspark)
    # As a driver pod: the settings in a properties file (the master among them), then the application.
    assert args[:5] == ["driver", "--properties-file", f"{PAYLOAD_DIR}/{PROPERTIES_FILE}",
                        "--deploy-mode", "client"]
    assert args[5:8] == ["--class", PYTHON_RUNNER, f"local://{PAYLOAD_DIR}/pyspark_suite.py"]
    assert args[8:] == list(pyspark.app_args) and "--conf" not in args and "--master" not in args
    assert b"spark.master=local[2]\n" in properties_file(pyspark)


def test_create_argv_pins_platform_digest_and_isolates_network() -> None:
    jvm = next(a for a in plan_apps(BUILTIN_JOBS) if a.name == "jvm")
    argv = create_argv(jvm, IMAGE, Platform("linux", "arm64"), "moka-smoke-x", emulated=False, run_id="r1")
    assert argv[:2] == ["docker", "create"]
    assert argv[argv.index("--platform") + 1] == "linux/arm64"
    assert argv[argv.index("--network") + 1] == "none"
    assert argv[argv.index("--add-host") + 1] == f"{argv[argv.index('--hostname') + 1]}:127.0.0.1"
    assert "SPARK_DRIVER_BIND_ADDRESS=127.0.0.1" in argv
    assert argv[argv.index("--label") + 1] == "moka-images.smoke=r1"
    assert not any(a.startswith("JAVA_TOOL_OPTIONS=") for a in argv)
    assert argv[argv.index(str(IMAGE)) + 1] == "spark-submit"


TARGET = S3Target("s3a://moka-smoke/p", (("spark.hadoop.fs.s3a.endpoint", "http://127.0.0.1:15080"),),
                  (("AWS_ACCESS_KEY_ID", "mokalocal"),), host_network=True)


def test_create_argv_shares_the_host_network_when_the_app_must_reach_the_host() -> None:
    pyspark = plan_apps((*BUILTIN_JOBS, s3a_job(TARGET)), TARGET)[0]
    argv = create_argv(pyspark, IMAGE, Platform("linux", "amd64"), "x", emulated=False, run_id="r")
    assert argv[argv.index("--network") + 1] == "host" and argv.count("--network") == 1
    assert "--hostname" not in argv and "--add-host" not in argv
    assert argv[argv.index("AWS_ACCESS_KEY_ID=mokalocal") - 1] == "--env"
    assert "SPARK_DRIVER_BIND_ADDRESS=127.0.0.1" in argv


def test_create_argv_without_host_network_keeps_the_app_off_any_network_and_env() -> None:
    pyspark = plan_apps(BUILTIN_JOBS, TARGET)[0]  # no s3a job: nothing to reach
    argv = create_argv(pyspark, IMAGE, Platform("linux", "amd64"), "x", emulated=False, run_id="r")
    assert argv[argv.index("--network") + 1] == "none" and "--hostname" in argv
    assert not any(a.startswith("AWS_") for a in argv)


def test_plan_apps_gives_the_s3_target_to_the_shared_application_only() -> None:
    pyspark, jvm = plan_apps((*BUILTIN_JOBS, s3a_job(TARGET)), TARGET)
    assert pyspark.conf == (*PYSPARK_CONF, *TARGET.conf)
    assert pyspark.env == TARGET.env and pyspark.host_network
    assert pyspark.app_args[-1] == "s3a=240@s3a://moka-smoke/p"
    assert (jvm.conf, jvm.env, jvm.host_network) == (BASE_CONF, (), False)


@pytest.mark.parametrize("s3", [TARGET, None])
def test_plan_apps_without_the_s3a_job_reaches_nothing(s3: S3Target | None) -> None:
    pyspark, jvm = plan_apps(BUILTIN_JOBS, s3)
    assert (pyspark.conf, pyspark.env, pyspark.host_network) == (PYSPARK_CONF, (), False)
    assert (jvm.conf, jvm.env, jvm.host_network) == (BASE_CONF, (), False)


def test_the_shared_application_serves_its_ui_on_a_free_port_under_the_pods_app_id() -> None:
    conf = dict(plan_apps(BUILTIN_JOBS)[0].conf)
    assert (conf["spark.ui.enabled"], conf["spark.ui.port"]) == ("true", "0")
    assert conf["spark.app.id"] == "spark-moka-smoke"


@pytest.mark.parametrize("uri", ["s3://moka-smoke/p", "s3a://", "moka-smoke/p"])
def test_s3_target_must_be_an_s3a_uri(uri: str) -> None:
    with pytest.raises(ConfigError, match="is not an s3a:// URI"):
        S3Target(uri)


def test_properties_file_escapes_backslash_and_newline() -> None:
    app = SparkApp("a", (), "r", conf=(("spark.master", "local[2]"), ("spark.x", "C:\\tmp\\y"),
                                        ("spark.y", "one\ntwo")))
    assert properties_file(app) == b"spark.master=local[2]\nspark.x=C:\\\\tmp\\\\y\nspark.y=one\\ntwo\n"


def test_emulated_platform_gets_the_c1_only_jit() -> None:
    argv = create_argv(plan_apps(BUILTIN_JOBS)[0], IMAGE, Platform("linux", "arm64"), "x", emulated=True, run_id="r")
    assert "JAVA_TOOL_OPTIONS=-XX:TieredStopAtLevel=1" in argv


def test_team_job_runs_last_in_the_pyspark_application_from_the_app_dir() -> None:
    apps = plan_apps((team_job("smoke/job.py", "ok", 90), *BUILTIN_JOBS))
    assert [a.name for a in apps] == ["pyspark", "jvm"]
    assert [j.name for j in apps[0].jobs][-1] == "team"
    assert apps[0].app_args[-1] == "team=90@/opt/app/smoke/job.py"
    assert apps[0].limit == STARTUP_ALLOWANCE + 840 + 90


@pytest.mark.parametrize("path", ["../other/job.py", "/etc/passwd.py", "job.sh", "a/../../b.py"])
def test_team_job_cannot_leave_its_folder(path: str) -> None:
    with pytest.raises(ConfigError):
        team_job(path, "ok", 60)


def test_job_needs_positive_timeout_and_team_job_needs_its_path() -> None:
    with pytest.raises(ConfigError):
        JobSpec("x", JobKind.JVM, 0)
    with pytest.raises(ConfigError):
        JobSpec("team", JobKind.TEAM, 10, expect="ok")
    assert team_job("x.py", "", 10).expect is None


# The local profile's S3A round trip (moka.yaml's smoke_s3: the bucket, the default prefix).
LOCAL_S3A = JobSpec("s3a", JobKind.PYSPARK, 240, path="s3a://moka-smoke/moka-smoke")


def test_team_images_get_their_manifest_job_baked_in_by_the_build() -> None:
    settings = load_settings(profile="local")
    declarations = load_declarations(settings.root)
    teams = [i for i in declarations.teams if i.manifest.smoke]
    assert teams, "the example manifests declare smoke jobs"
    for image in teams:
        spec = image.manifest.smoke
        assert spec is not None
        *builtin, team = jobs_for(settings, image.name)
        assert tuple(builtin) == (*BUILTIN_JOBS, LOCAL_S3A)
        assert (team.kind, team.path, team.expect, team.timeout) == (
            JobKind.TEAM, SMOKE_PATH, spec.expect, spec.timeout_seconds)
    assert jobs_for(settings, declarations.bases[0].name) == (*BUILTIN_JOBS, LOCAL_S3A)


def test_builtin_jobs_add_the_s3a_round_trip_only_where_the_profile_names_a_bucket() -> None:
    settings = load_settings(profile="local")
    assert builtin_jobs(settings) == (*BUILTIN_JOBS, LOCAL_S3A)
    assert builtin_jobs(settings.model_copy(update={"smoke_s3": None})) == BUILTIN_JOBS


def test_payload_holds_the_driver_script_with_every_pyspark_job() -> None:
    files = payload_files()
    assert set(files) == {"pyspark_suite.py"}
    for job in BUILTIN_JOBS:
        if job.kind is JobKind.PYSPARK:
            assert f"def {job.name}(spark)".encode() in files["pyspark_suite.py"]
