"""The Kubernetes backend's spark-submit command and pod template (it is never run here: no cluster)."""

from __future__ import annotations

from pathlib import Path

import yaml

from moka_images.models import Digest, ImageRef, Platform
from moka_images.smoke.k8s import KubernetesSettings, pod_template, submit_argv
from moka_images.smoke.suite import BUILTIN_JOBS, PAYLOAD_DIR, PYTHON_RUNNER, plan_apps

ARM = Platform("linux", "arm64")
IMAGE = ImageRef("1111.dkr.ecr.eu-west-1.amazonaws.com", "spark-platform/spark-4.0",
                 digest=Digest("sha256:" + "5" * 64))
SETTINGS = KubernetesSettings(api_server="https://k8s.example:6443", context="ci", namespace="smoke",
                              service_account="spark-smoke", image_pull_secret="ecr-pull",
                              node_selectors={"amd64": {"kubernetes.io/arch": "amd64"},
                                              "arm64": {"kubernetes.io/arch": "arm64", "pool": "graviton"}})


def conf_of(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--conf")


def test_submit_is_cluster_mode_on_the_api_server_with_the_digest_pinned_image() -> None:
    app = plan_apps(BUILTIN_JOBS)[0]
    argv = submit_argv(SETTINGS, app, IMAGE, ARM, Path("/tmp/t.json"), "moka-smoke-pyspark-1")
    assert argv[:5] == ["spark-submit", "--master", "k8s://https://k8s.example:6443", "--deploy-mode", "cluster"]
    conf = conf_of(argv)
    assert conf["spark.kubernetes.container.image"] == str(IMAGE) and "@sha256:" in str(IMAGE)
    assert conf["spark.kubernetes.namespace"] == "smoke"
    assert conf["spark.kubernetes.context"] == "ci"
    assert conf["spark.kubernetes.authenticate.driver.serviceAccountName"] == "spark-smoke"
    assert conf["spark.kubernetes.container.image.pullSecrets"] == "ecr-pull"
    assert conf["spark.kubernetes.node.selector.kubernetes.io/arch"] == "arm64"
    assert conf["spark.kubernetes.node.selector.pool"] == "graviton"
    assert conf["spark.kubernetes.driver.podTemplateFile"] == "/tmp/t.json"
    assert conf["spark.kubernetes.driver.pod.name"] == "moka-smoke-pyspark-1"
    assert "spark.master" not in conf and "spark.driver.host" not in conf and "local[2]" not in argv
    # The UI serves the metrics job's scrape; on a pod its port is the pod's own, so a free one is as good.
    assert (conf["spark.ui.enabled"], conf["spark.ui.port"]) == ("true", "0")
    assert argv[-10:] == ["--class", PYTHON_RUNNER, f"local://{PAYLOAD_DIR}/pyspark_suite.py",
                          "entrypoint=120", "dataframe_sql=180", "python_udf=120", "parquet=180", "classpath=60",
                          "metrics=120", "json_logs=60"]


def test_jvm_job_keeps_its_class_and_becomes_a_local_resource() -> None:
    jvm = next(a for a in plan_apps(BUILTIN_JOBS) if a.name == "jvm")
    argv = submit_argv(SETTINGS, jvm, IMAGE, Platform("linux", "amd64"), Path("t"), "p")
    assert argv[-3:] == ["--class", "moka.smoke.SmokeJob", f"local://{PAYLOAD_DIR}/moka-smoke.jar"]
    assert conf_of(argv)["spark.kubernetes.node.selector.kubernetes.io/arch"] == "amd64"


def test_pod_template_mounts_the_suite_and_selects_the_arch() -> None:
    pod = yaml.safe_load(yaml.safe_dump(pod_template(SETTINGS, ARM, "moka-smoke-abc")))
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/arch": "arm64", "pool": "graviton"}
    assert spec["imagePullSecrets"] == [{"name": "ecr-pull"}]
    assert spec["volumes"][0]["configMap"]["name"] == "moka-smoke-abc"
    mount = spec["containers"][0]["volumeMounts"][0]
    assert mount == {"name": "moka-smoke", "mountPath": PAYLOAD_DIR, "readOnly": True}
    assert spec["securityContext"] == {"runAsNonRoot": True}


def test_defaults_select_nodes_by_the_standard_arch_label() -> None:
    settings = KubernetesSettings(api_server="https://k")
    assert pod_template(settings, ARM, "c")["spec"]["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    assert "imagePullSecrets" not in pod_template(settings, ARM, "c")["spec"]
