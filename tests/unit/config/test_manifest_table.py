"""A table of bad declarations: each names the exact file, field and the gist of the message (and fix), as loading
the declarations or judging their graph (an approved base) reports it."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import pytest
from manifest_tree import BASES, TEAM, Tree

from moka_images.config.manifests import load_declarations
from moka_images.config.validation import MAX_YAML_BYTES
from moka_images.errors import ManifestError
from moka_images.stages.planning import graph_of

ETL = "manifests/data-eng/etl-jobs.yaml"
IMG = "images/spark/image.yaml"


def team(**changes: Any) -> Callable[[Tree], None]:
    """Write the team manifest with top-level changes (None removes a key)."""
    def setup(t: Tree) -> None:
        data = copy.deepcopy(TEAM)
        for key, value in changes.items():
            if value is None:
                data.pop(key)
            else:
                data[key] = value
        t.manifest(data)
    return setup


def nested(path: str, value: Any) -> Callable[[Tree], None]:
    """Write the team manifest with one nested value set, e.g. nested("python.packages", [...])."""
    def setup(t: Tree) -> None:
        data = copy.deepcopy(TEAM)
        *parents, last = path.split(".")
        cursor = data
        for part in parents:
            cursor = cursor[int(part)] if isinstance(cursor, list) else cursor[part]
        cursor[last] = value
        t.manifest(data)
    return setup


def raw(text: str | bytes, rel: str = ETL) -> Callable[[Tree], None]:
    return lambda t: t.write(rel, text) and None


def symlink_out(t: Tree) -> None:
    outside = t.write("../outside/secret.txt", "s3cr3t")
    (t.root / "manifests/data-eng/leak.txt").symlink_to(outside)
    team(files=[{"src": "leak.txt", "dest": "leak.txt"}])(t)


def symlink_in_dir(t: Tree) -> None:
    outside = t.write("../outside/id_rsa", "key")
    (t.root / "manifests/data-eng/etl/key").symlink_to(outside)


def symlink_dir_out(t: Tree) -> None:
    (t.root / "manifests/data-eng/etc").symlink_to("/etc")
    team(files=[{"src": "etc", "dest": "etc"}])(t)


def duplicate_name(t: Tree) -> None:
    t.manifest(TEAM, "manifests/data-eng/etl-jobs-copy.yaml")


def outside_team_folder(t: Tree) -> None:
    t.manifest(TEAM, "manifests/etl-jobs.yaml")


def two_files(t: Tree) -> None:
    team(version="one")(t)
    other = {**copy.deepcopy(TEAM), "team": "ml-platform", "name": "features", "env": {"HOME": "/x"},
             "files": [], "smoke": None}
    del other["smoke"]
    t.manifest(other, "manifests/ml-platform/features.yaml")


def bases(**changes: Any) -> Callable[[Tree], None]:
    def setup(t: Tree) -> None:
        t.bases({**copy.deepcopy(BASES), **changes})
    return setup


def line(index: int, **changes: Any) -> Callable[[Tree], None]:
    def setup(t: Tree) -> None:
        data = copy.deepcopy(BASES)
        data["lines"][index].update(changes)
        t.bases(data)
    return setup


def jvm(*packages: str, exclude: list[str] | None = None) -> Callable[[Tree], None]:
    """Write the team manifest with a `jvm` section."""
    return team(jvm={"packages": list(packages), **({"exclude": exclude} if exclude is not None else {})})


JSON = "org.json:json"
LOCK = "manifests/data-eng/etl-jobs.jvm.lock"
BOMB = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nname: *c\n"

# (id, setup, [(file, field, message part, fix part or None), ...])
CASES: list[tuple[str, Callable[[Tree], None], list[tuple[str, str, str, str | None]]]] = [
    ("unknown key, did you mean", team(pyton={"packages": []}),
     [(ETL, "pyton", "unknown key", "did you mean `python`?")]),
    ("unknown nested key", nested("smoke.timeout", 30),
     [(ETL, "smoke.timeout", "unknown key", "did you mean `timeout_seconds`?")]),
    ("build args are not a thing", team(build_args={"X": "1"}), [(ETL, "build_args", "unknown key", "allowed:")]),
    ("team does not match folder", team(team="ml-platform"),
     [(ETL, "team", "does not match the folder `manifests/data-eng/`", "set `team: data-eng`")]),
    ("path traversal in src", team(files=[{"src": "../../etc/passwd", "dest": "passwd"}]),
     [(ETL, "files.0.src", "leaves its folder through `..`", None)]),
    ("absolute src", team(files=[{"src": "/etc/passwd", "dest": "passwd"}]),
     [(ETL, "files.0.src", "is absolute", None)]),
    ("symlink escaping the folder", symlink_out,
     [(ETL, "files.0.src", "`leak.txt` is a symlink that leads outside manifests/data-eng/", "copy the file")]),
    ("symlink inside a copied directory", symlink_in_dir,
     [(ETL, "files.0.src", "`etl/key` is a symlink that leads outside", None)]),
    ("symlinked directory escaping", symlink_dir_out,
     [(ETL, "files.0.src", "`etc` is a symlink that leads outside", None)]),
    ("missing src", team(files=[{"src": "nope.txt", "dest": "nope.txt"}]),
     [(ETL, "files.0.src", "does not exist in manifests/data-eng/", None)]),
    ("dest traversal", team(files=[{"src": "etl", "dest": "../../usr/bin"}]),
     [(ETL, "files.0.dest", "leaves its folder", None)]),
    ("dest reserved", team(files=[{"src": "etl", "dest": ".moka/x"}]), [(ETL, "files.0.dest", "reserved", None)]),
    ("dest twice", team(files=[{"src": "etl", "dest": "a"}, {"src": "smoke", "dest": "a"}]),
     [(ETL, "files", "`a` is a destination twice", None)]),
    ("unpinned pip", nested("python.packages", ["pandas"]),
     [(ETL, "python.packages.0", "`pandas` is not pinned", "pandas==<version>")]),
    ("pip range", nested("python.packages", ["pandas>=2.0"]), [(ETL, "python.packages.0", "is a range", None)]),
    ("pip URL", nested("python.packages", ["https://evil.example/x.whl"]),
     [(ETL, "python.packages.0", "URLs, paths, options and spaces are not allowed", None)]),
    ("pip direct reference", nested("python.packages", ["x@https://evil.example/x.whl"]),
     [(ETL, "python.packages.0", "not a pin", None)]),
    ("pip option", nested("python.packages", ["--index-url=http://127.0.0.1/simple"]),
     [(ETL, "python.packages.0", "not a pin", None)]),
    ("pip marker", nested("python.packages", ["pyyaml==6.0.2;python_version>'3'"]),
     [(ETL, "python.packages.0", "markers and extras", None)]),
    ("pip name not normalized", nested("python.packages", ["PyYAML==6.0.2"]),
     [(ETL, "python.packages.0", "normalized (PEP 503)", "write `pyyaml==6.0.2`")]),
    ("pip pyspark from the base", nested("python.packages", ["pyspark==3.5.1"]),
     [(ETL, "python.packages.0", "comes from the base image", None)]),
    ("pip pinned twice", nested("python.packages", ["pyyaml==6.0.2", "pyyaml==6.0.1"]),
     [(ETL, "python.packages", "`pyyaml` is pinned twice", None)]),
    ("apt without version", nested("apt.packages", ["jq"]),
     [(ETL, "apt.packages.0", "`jq` is not pinned", "apt-cache policy jq")]),
    ("apt name with shell", nested("apt.packages", ["jq;curl=1.0"]),
     [(ETL, "apt.packages.0", "`jq;curl` is not a Debian package name", None)]),
    ("apt version with shell", nested("apt.packages", ["jq=1.6$(reboot)"]),
     [(ETL, "apt.packages.0", "is not a Debian version", None)]),
    ("env value with shell", nested("env", {"ETL_MODE": "$(curl 127.0.0.1)"}),
     [(ETL, "env.ETL_MODE", "character '$' is not allowed", None)]),
    ("env value on two lines", nested("env", {"ETL_MODE": "a\nRUN rm -rf /"}),
     [(ETL, "env.ETL_MODE", "character '\\n' is not allowed", None)]),
    ("env value too long", nested("env", {"ETL_MODE": "x" * 600}), [(ETL, "env.ETL_MODE", "too long", None)]),
    ("reserved env names", nested("env", {"PATH": "/tmp", "LD_PRELOAD": "/x.so", "SPARK_HOME": "/y"}),
     [(ETL, "env.PATH", "reserved", None), (ETL, "env.LD_PRELOAD", "reserved", None),
      (ETL, "env.SPARK_HOME", "reserved", None)]),
    ("bad env name", nested("env", {"etl-mode": "x"}), [(ETL, "env.etl-mode", "not a valid variable name", None)]),
    ("env value not a string", nested("env", {"ETL_DEBUG": True}), [(ETL, "env.ETL_DEBUG", "string", "quote")]),
    ("unknown base, did you mean", team(base="spark-3.6"),
     [(ETL, "base", "`spark-3.6` is not an approved base", "did you mean `spark-3.5`?")]),
    ("unapproved base image", team(base="ubuntu"),
     [(ETL, "base", "not an approved base", "approved: spark-3.5, spark-4.0")]),
    ("bad semver", team(version="1.0"), [(ETL, "version", "not a semantic version", None)]),
    ("semver with build metadata", team(version="1.0.0+abc"), [(ETL, "version", "image tag", None)]),
    ("version read as a number", raw("version: 1.0\n" + "".join(
        f"{k}: {v}\n" for k, v in TEAM.items() if k in ("name", "team", "base", "description"))),
     [(ETL, "version", "valid string", "quote the value")]),
    ("bad platform, did you mean", team(platforms=["linux/aarch64"]),
     [(ETL, "platforms.0", "unsupported platform", "did you mean `linux/arm64`?")]),
    ("platform twice", team(platforms=["linux/amd64", "linux/amd64"]), [(ETL, "platforms", "twice", None)]),
    ("no platform", team(platforms=[]), [(ETL, "platforms", "at least 1", None)]),
    ("bad name", team(name="ETL_Jobs"), [(ETL, "name", "not a valid name", None)]),
    ("description breaks out of a label", team(description='x" LABEL evil="1'),
     [(ETL, "description", "character '\"' is not allowed", None)]),
    ("smoke job not python", nested("smoke.job", "etl/config.yaml"), [(ETL, "smoke.job", "not a Python file", None)]),
    ("smoke job missing", nested("smoke.job", "smoke/none.py"), [(ETL, "smoke.job", "does not exist", None)]),
    ("smoke timeout too short", nested("smoke.timeout_seconds", 5),
     [(ETL, "smoke.timeout_seconds", "greater than or equal to 10", None)]),
    ("YAML alias bomb", raw(BOMB), [(ETL, "b.0", "aliases are not allowed", None)]),
    ("oversize file", raw("# x\n" * (MAX_YAML_BYTES // 4 + 1)), [(ETL, "", "over the", None)]),
    ("multiple documents", raw("name: a\n---\nname: b\n"), [(ETL, "", "expected one YAML document, found 2", None)]),
    ("not a mapping", raw("- name: etl-jobs\n"), [(ETL, "", "expected a mapping at the top, got list", None)]),
    ("duplicate key, and the rest of the file still checked", raw("name: a\nname: b\n"),
     [(ETL, "name", "duplicate key `name`", "keep one"), (ETL, "name", "not a valid name", None),
      *[(ETL, f, "required field is missing", None) for f in ("team", "version", "base", "description")]]),
    ("not YAML", raw("name: [unclosed\n"), [(ETL, "", "not valid YAML", None)]),
    ("not UTF-8", raw(b"name: \xff\xfe\n"), [(ETL, "", "not UTF-8", None)]),
    ("duplicate image names", duplicate_name,
     [("manifests/data-eng/etl-jobs.yaml", "name", "also declared in manifests/data-eng/etl-jobs-copy.yaml", None)]),
    ("manifest outside a team folder", outside_team_folder,
     [("manifests/etl-jobs.yaml", "", "must be in its team's folder", None)]),
    ("wrong extension", raw("name: x\n", "manifests/data-eng/x.yml"),
     [("manifests/data-eng/x.yml", "", "end in .yaml", "rename it to x.yaml")]),
    ("missing required fields", team(version=None, base=None),
     [(ETL, "version", "required field is missing", None), (ETL, "base", "required field is missing", None)]),
    ("several errors in one file", team(pyton={}, version="v1", env={"PATH": "/x"}, base="spark 9"),
     [(ETL, "pyton", "unknown key", None), (ETL, "version", "semantic version", None),
      (ETL, "env.PATH", "reserved", None), (ETL, "base", "not an image name", None)]),
    ("errors in several files together", two_files,
     [(ETL, "version", "semantic version", None),
      ("manifests/ml-platform/features.yaml", "env.HOME", "reserved", None)]),
    ("spark version off its line", line(0, spark_version="3.4.1"),
     [(IMG, "lines.0", "not on line 3.5", None)]),
    ("spark line twice", line(1, line="3.5", spark_version="3.5.1"), [(IMG, "lines", "declared twice", None)]),
    ("spark line unquoted", line(0, line=3.5), [(IMG, "lines.0.line", "valid string", "quote")]),
    ("base dockerfile missing", bases(dockerfile="Containerfile"),
     [(IMG, "dockerfile", "does not exist in images/spark/", None)]),
    ("base name is not its folder", bases(name="sparky"), [(IMG, "name", "does not match the folder", None)]),
    ("base matrix without lines", bases(lines=[]), [(IMG, "lines", "at least 1", None)]),
    ("jvm package without version", jvm(JSON), [(ETL, "jvm.packages.0", "has no version", f"`{JSON}:<version>`")]),
    ("jvm package with an empty version", jvm(f"{JSON}:"), [(ETL, "jvm.packages.0", "has no version", None)]),
    ("jvm version range", jvm(f"{JSON}:[20230101,20240101)"),
     [(ETL, "jvm.packages.0", "is a version range", "pin one exact version")]),
    ("jvm soft range", jvm(f"{JSON}:1.0,2.0"), [(ETL, "jvm.packages.0", "is a version range", None)]),
    ("jvm LATEST", jvm(f"{JSON}:LATEST"), [(ETL, "jvm.packages.0", "moves whenever", None)]),
    ("jvm RELEASE", jvm(f"{JSON}:RELEASE"), [(ETL, "jvm.packages.0", "moves whenever", None)]),
    ("jvm snapshot", jvm(f"{JSON}:1.0-SNAPSHOT"), [(ETL, "jvm.packages.0", "is a snapshot", "released version")]),
    ("jvm dynamic version", jvm(f"{JSON}:1.+"), [(ETL, "jvm.packages.0", "is a dynamic version", None)]),
    ("jvm classifier", jvm(f"{JSON}:jar:20231013"), [(ETL, "jvm.packages.0", "more than group:artifact:version",
                                                       "classifiers are not supported")]),
    ("jvm not a coordinate", jvm("json"), [(ETL, "jvm.packages.0", "is not a Maven coordinate", None)]),
    ("jvm bad characters", jvm("org.json:js on:1", "org/json:json:1", "org.json:json:1$x"),
     [(ETL, "jvm.packages.0", "`js on` is not a Maven artifact id", "letters, digits, . - and _"),
      (ETL, "jvm.packages.1", "`org/json` is not a Maven group id", None),
      (ETL, "jvm.packages.2", "`1$x` is not a Maven version", None)]),
    ("jvm package twice", jvm(f"{JSON}:20231013", "org.slf4j:slf4j-api:2.0.7", f"{JSON}:20240303"),
     [(ETL, "jvm.packages", f"`{JSON}` is declared twice (20231013 and 20240303)", "keep one version")]),
    ("jvm no packages", jvm(), [(ETL, "jvm.packages", "at least 1", None)]),
    ("jvm packages missing", team(jvm={"exclude": ["org.tukaani:xz"]}),
     [(ETL, "jvm.packages", "required field is missing", None)]),
    ("jvm exclusion with a version", jvm(f"{JSON}:20231013", exclude=["org.tukaani:xz:1.9"]),
     [(ETL, "jvm.exclude.0", "names no version", "write `org.tukaani:xz`")]),
    ("jvm exclusion of every group", jvm(f"{JSON}:20231013", exclude=["*:xz", "org.tukaani"]),
     [(ETL, "jvm.exclude.0", "excludes every group", "only the artifact may be *"),
      (ETL, "jvm.exclude.1", "is not group:artifact", None)]),
    ("jvm exclusion twice", jvm(f"{JSON}:20231013", exclude=["org.eclipse.jetty:*", "org.eclipse.jetty:*"]),
     [(ETL, "jvm.exclude", "`org.eclipse.jetty:*` is excluded twice", None)]),
    ("jvm unknown key", team(jvm={"packages": [f"{JSON}:20231013"], "repositories": ["http://evil"]}),
     [(ETL, "jvm.repositories", "unknown key", "allowed: exclude, packages")]),
    ("jvm problems all at once", jvm("a:b", f"{JSON}:20231013", "c:d:LATEST", exclude=["e:f:1"]),
     [(ETL, "jvm.packages.0", "no version", None), (ETL, "jvm.packages.2", "moves", None),
      (ETL, "jvm.exclude.0", "names no version", None)]),
    ("jvm on a base line", line(1, jvm={"packages": ["org.apache.hadoop:hadoop-aws:[3.4,)"]}),
     [(IMG, "lines.1.jvm.packages.0", "is a version range", None)]),
    ("jvm declared without a lock", jvm(f"{JSON}:20231013"),
     [(LOCK, "", f"missing: {ETL} declares `jvm`", "run `moka-images lock data-eng/etl-jobs` and commit the lock")]),
    ("base jvm declared without a lock", line(0, jvm={"packages": [f"{JSON}:20231013"]}),
     [("images/spark/jvm-3.5.lock", "", f"missing: line 3.5 of {IMG} declares `jvm`", "moka-images lock spark-3.5")]),
    ("a lock without jvm", raw("{}", LOCK), [(LOCK, "", "etl-jobs.yaml declares no `jvm`", "remove it")]),
    ("a lock without its manifest", raw("{}", "manifests/data-eng/other.jvm.lock"),
     [("manifests/data-eng/other.jvm.lock", "", "there is no other.yaml", "remove it")]),
    ("a base lock without jvm", raw("{}", "images/spark/jvm-4.0.lock"),
     [("images/spark/jvm-4.0.lock", "", "no line of image.yaml declares `jvm`", "moka-images lock spark-4.0")]),
]


@pytest.mark.parametrize(("setup", "expected"), [pytest.param(s, e, id=i) for i, s, e in CASES])
def test_bad_declarations(tree: Tree, setup: Callable[[Tree], None],
                          expected: list[tuple[str, str, str, str | None]]) -> None:
    setup(tree)
    with pytest.raises(ManifestError) as caught:  # what `plan` and `build` do: load, then judge the graph
        graph_of(load_declarations(tree.root))
    problems = caught.value.problems
    assert sorted((p.file, p.field) for p in problems) == sorted((f, fld) for f, fld, _, _ in expected), problems
    for file, field, message, fix in expected:
        found = [p for p in problems if (p.file, p.field) == (file, field)]
        assert any(message in p.message for p in found), (message, found)
        if fix is not None:
            assert any(p.fix and fix in p.fix for p in found), (fix, found)


def test_problems_name_the_file_relative_to_the_root(tree: Tree) -> None:
    team(version="1")(tree)
    with pytest.raises(ManifestError) as caught:
        load_declarations(tree.root)
    assert str(caught.value).startswith("1 problem(s) in the declarations:\n  - manifests/data-eng/etl-jobs.yaml:3: ")
    assert os.fspath(tree.root) not in str(caught.value)
