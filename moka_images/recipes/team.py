"""The Dockerfile for a team image, generated from its validated manifest: teams never write one themselves.

Every value reaching the Dockerfile was validated against a strict charset by the manifest model; ENV values
are additionally JSON-quoted, so nothing a team writes can add an instruction or run a shell.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

APP_DIR = "/opt/app"
SMOKE_PATH = "/opt/app/.moka/smoke.py"
SPARK_JARS = "/opt/python/lib/python3.11/site-packages/pyspark/jars"  # $SPARK_HOME/jars in the base images

_TEMPLATE_VERSION = "team-recipe/1"


def render(*, apt_packages: Sequence[str], has_wheels: bool, has_jars: bool, has_files: bool, has_smoke: bool,
           env: Mapping[str, str], labels: Mapping[str, str] | None = None) -> str:
    """Dockerfile text for a team image; the base comes in as the BASE build argument (a digest reference).

    With `has_jars`, the context's jars/ (the JARs of the image's JVM lock) joins Spark's own on the classpath,
    owned by root like them.
    """
    lines = ["ARG BASE", "FROM ${BASE}", "USER root"]
    if apt_packages:
        pkgs = " ".join(apt_packages)
        lines.append("RUN apt-get update \\\n && apt-get install -y --no-install-recommends " + pkgs +
                     " \\\n && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb")
    if has_wheels:
        lines += ["COPY wheels/ /tmp/wheels/",
                  ("RUN /opt/python/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels "
                   "--require-hashes -r /tmp/wheels/requirements.txt \\\n && rm -rf /tmp/wheels")]
    if has_jars:
        lines.append(f"COPY --chown=0:0 jars/ {SPARK_JARS}/")
    if has_files:
        lines.append(f"COPY --chown=185:185 app/ {APP_DIR}/")
    if has_smoke:
        lines.append(f"COPY --chown=185:185 smoke.py {SMOKE_PATH}")
    for key, value in sorted(env.items()):
        lines.append(f"ENV {key}={json.dumps(value)}")
    for key, value in sorted((labels or {}).items()):
        lines.append(f"LABEL {json.dumps(key)}={json.dumps(value)}")
    lines.append("USER 185")
    return "\n".join(lines) + "\n"


def recipe_hash(*, has_jars: bool) -> str:
    """Changes whenever the generator's output for the same manifest would change.

    The sample holds JARs only for an image that has them: the hash of one without is the one it had before
    JARs could be added, so that no image needs a version bump for a step it does not use.
    """
    sample = render(apt_packages=["a=1"], has_wheels=True, has_jars=has_jars, has_files=True, has_smoke=True,
                    env={"K": "v"})
    return hashlib.sha256((_TEMPLATE_VERSION + sample).encode()).hexdigest()
