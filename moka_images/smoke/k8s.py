"""Kubernetes smoke backend: spark-submit in cluster mode, one driver pod per application, pinned to an arch.

NOT RUN HERE: this machine has no cluster. The command and the pod templates it produces are unit-tested
(tests/unit/smoke/test_k8s.py); `run()` has never been executed against a real API server. A cluster's
settings (`KubernetesSettings`) are all it needs: the suite's files travel in a ConfigMap mounted by the
driver and executor pod templates, the image is pinned by per-platform digest, and a node selector per
arch puts the pods on native nodes (no emulation).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field

from moka_images.adapters import run
from moka_images.config.validation import Strict
from moka_images.errors import CommandFailed
from moka_images.models import ImageRef, Platform
from moka_images.smoke.results import AppOutput
from moka_images.smoke.runner import spark_submit_args
from moka_images.smoke.suite import PAYLOAD_DIR, SparkApp

# Local-master settings that make no sense on a cluster.
_LOCAL_ONLY = ("spark.master", "spark.driver.host")


class KubernetesSettings(Strict):
    """Where and as whom the smoke drivers run on a cluster."""

    api_server: str = Field(description="API server URL, e.g. https://k8s.example:6443")
    context: str | None = Field(default=None, description="kubeconfig context")
    namespace: str = "spark-smoke"
    service_account: str = "spark"
    node_selectors: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {"amd64": {"kubernetes.io/arch": "amd64"}, "arm64": {"kubernetes.io/arch": "arm64"}},
        description="node labels per arch (amd64, arm64)",
    )
    image_pull_secret: str | None = None
    executor_instances: int = Field(default=1, ge=1)
    spark_submit: str = Field(default="spark-submit", description="a spark-submit of the same Spark line")
    kubectl: str = "kubectl"


def pod_template(settings: KubernetesSettings, platform: Platform, config_map: str) -> dict[str, Any]:
    """Pod template for driver and executors: the suite's files from `config_map` at PAYLOAD_DIR. Pure."""
    spec: dict[str, Any] = {
        "nodeSelector": dict(settings.node_selectors[platform.arch]),
        "securityContext": {"runAsNonRoot": True},
        "volumes": [{"name": "moka-smoke", "configMap": {"name": config_map, "defaultMode": 0o444}}],
        "containers": [{
            "name": "spark",
            "volumeMounts": [{"name": "moka-smoke", "mountPath": PAYLOAD_DIR, "readOnly": True}],
        }],
    }
    if settings.image_pull_secret:
        spec["imagePullSecrets"] = [{"name": settings.image_pull_secret}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"moka-images.smoke": "1"}}, "spec": spec}


def submit_argv(settings: KubernetesSettings, app: SparkApp, image: ImageRef, platform: Platform,
                template: Path, driver_pod: str) -> list[str]:
    """spark-submit --master k8s://... --deploy-mode cluster for one application on one arch. Pure."""
    conf: dict[str, str] = {
        "spark.kubernetes.namespace": settings.namespace,
        "spark.kubernetes.container.image": str(image),
        "spark.kubernetes.container.image.pullPolicy": "IfNotPresent",
        "spark.kubernetes.driver.pod.name": driver_pod,
        "spark.kubernetes.authenticate.driver.serviceAccountName": settings.service_account,
        "spark.kubernetes.driver.podTemplateFile": str(template),
        "spark.kubernetes.executor.podTemplateFile": str(template),
        "spark.kubernetes.submission.waitAppCompletion": "true",
        "spark.executor.instances": str(settings.executor_instances),
    }
    if settings.context:
        conf["spark.kubernetes.context"] = settings.context
    if settings.image_pull_secret:
        conf["spark.kubernetes.container.image.pullSecrets"] = settings.image_pull_secret
    for key, value in settings.node_selectors[platform.arch].items():
        conf[f"spark.kubernetes.node.selector.{key}"] = value
    conf.update({k: v for k, v in app.conf if k not in _LOCAL_ONLY})
    resource = app.resource if "://" in app.resource else f"local://{app.resource}"
    cluster_app = replace(app, resource=resource, conf=tuple(conf.items()))
    return [settings.spark_submit, "--master", f"k8s://{settings.api_server}", "--deploy-mode", "cluster",
            "--name", f"moka-smoke-{app.name}", *spark_submit_args(cluster_app)]


class KubernetesRunner:
    """Runs smoke applications as driver pods on a cluster (see the module note: designed, not run here)."""

    name = "kubernetes"

    def __init__(self, settings: KubernetesSettings) -> None:
        self.settings = settings

    def _kubectl(self, *args: str) -> list[str]:
        ctx = ["--context", self.settings.context] if self.settings.context else []
        return [self.settings.kubectl, *ctx, "--namespace", self.settings.namespace, *args]

    def prepare(self, image: ImageRef, platform: Platform) -> None:
        """Nothing to fetch: the nodes pull the per-platform digest with the pull secret."""

    def run(self, app: SparkApp, image: ImageRef, platform: Platform, files: Mapping[str, bytes]) -> AppOutput:
        """Ship files as a ConfigMap, submit in cluster mode, read the driver pod's log and exit code."""
        run_id = uuid.uuid4().hex[:10]
        config_map, driver_pod = f"moka-smoke-{run_id}", f"moka-smoke-{app.name.replace('_', '-')}-{run_id}"
        with tempfile.TemporaryDirectory(prefix="moka-smoke-k8s-") as tmp:
            work = Path(tmp)
            sources = []
            for name, data in files.items():
                (work / name).write_bytes(data)
                sources.append(f"--from-file={name}={work / name}")
            template = work / "pod-template.json"  # JSON is YAML, which is what Spark reads
            template.write_text(json.dumps(pod_template(self.settings, platform, config_map)))
            run.call(self._kubectl("create", "configmap", config_map, *sources))
            start, timed_out = time.monotonic(), False
            try:
                try:
                    run.call(submit_argv(self.settings, app, image, platform, template, driver_pod),
                             check=False, timeout=app.limit)
                except CommandFailed as exc:
                    timed_out = exc.returncode == -9
                seconds = round(time.monotonic() - start, 2)
                logs = run.call(self._kubectl("logs", driver_pod), check=False, quiet=True)
                state = run.call(self._kubectl("get", "pod", driver_pod, "-o", "jsonpath={.status.containerStatuses[0]"
                                               ".state.terminated.exitCode}"), check=False, quiet=True)
                code = int(state.stdout) if state.stdout.strip().isdigit() else 1
                return AppOutput(137 if timed_out else code, logs.stdout, logs.stderr, seconds, timed_out)
            finally:
                run.call(self._kubectl("delete", "pod", driver_pod, "--ignore-not-found", "--wait=false"),
                         check=False, quiet=True)
                run.call(self._kubectl("delete", "configmap", config_map, "--ignore-not-found"),
                         check=False, quiet=True)
