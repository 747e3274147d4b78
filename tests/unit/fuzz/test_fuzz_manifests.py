"""Property: for ANY declarations tree, `load_declarations` either returns images that satisfy the safety
invariants (every string that reaches the generated Dockerfile has its safe charset, every file stays inside
its team's folder, the Dockerfile has exactly the instructions the template makes), or raises ManifestError
whose problems each name a file of the tree (and the field, whenever the file was a readable mapping).
Never any other exception.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from hostile import RAW_ATTACKS, any_value, check_recipe, dump, examples, hostile_text, maybe
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from moka_images.config import manifests as m
from moka_images.config.manifests import Declarations, TeamImage, load_declarations, team_files
from moka_images.errors import ManifestError

FUZZ = settings(max_examples=examples(90), deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASES = {"name": "spark", "description": "Curated Spark runtime", "dockerfile": "Dockerfile",
         "lines": [{"line": "3.5", "version": "1.0.0", "spark_version": "3.5.7"}]}
TEAM = {"name": "etl-jobs", "team": "data-eng", "version": "1.0.0", "base": "spark-3.5", "description": "ETL jobs",
        "platforms": ["linux/amd64", "linux/arm64"], "python": {"packages": ["pyyaml==6.0.2"]},
        "apt": {"packages": ["jq=1.6-2.1+deb12u2"]}, "files": [{"src": "etl", "dest": "etl"}],
        "env": {"ETL_CONFIG": "/opt/app/etl/config.yaml"},
        "smoke": {"job": "smoke/job.py", "timeout_seconds": 60, "expect": "ok"}}
OTHER_TEAM = {"name": "tool", "team": "other-team", "version": "1.0.0", "base": "spark-3.5",
              "description": "Another team's image", "files": [{"src": "private.py", "dest": "private.py"}]}
TEAM_DIR = "manifests/data-eng"
MANIFEST = f"{TEAM_DIR}/etl-jobs.yaml"
OUTSIDE = "outside-secret"


# ---- a tree to load --------------------------------------------------------------------------------------
def write(root: Path, rel: str, data: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def base_tree(root: Path) -> None:
    write(root, "images/spark/image.yaml", yaml.safe_dump(BASES))
    write(root, "images/spark/Dockerfile", "ARG BASE\nFROM ${BASE}\n")
    write(root, f"{TEAM_DIR}/etl/config.yaml", "regions: [north]\n")
    write(root, f"{TEAM_DIR}/smoke/job.py", "print('ok')\n")
    write(root, "manifests/other-team/private.py", "token = 'other team'\n")
    write(root, "manifests/other-team/tool.yaml", yaml.safe_dump(OTHER_TEAM))
    write(root.parent, OUTSIDE, "not for the image\n")


def _link(target: str, at: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        path = root / TEAM_DIR / at
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target.format(outside=root.parent / OUTSIDE, root=root), path)
    return make


def _fifo(root: Path) -> None:
    os.mkfifo(root / TEAM_DIR / "fifo")


def _manifest_dir(root: Path) -> None:
    (root / TEAM_DIR / "dir.yaml").mkdir()


def _manifest_fifo(root: Path) -> None:
    os.mkfifo(root / TEAM_DIR / "fifo.yaml")


def _endless_base(root: Path) -> None:
    (root / "images" / "zero").mkdir()
    os.symlink("/dev/zero", root / "images" / "zero" / "image.yaml")


def _team_link(root: Path) -> None:
    os.symlink(root / TEAM_DIR, root / "manifests" / "linked-team")


# Each puts something in the team folder that a fuzzed `src` or `job` may point at.
TREE_ATTACKS: dict[str, Callable[[Path], None]] = {
    "none": lambda root: None,
    "file link outside": _link("{outside}", "escape"),
    "relative link outside": _link("../../../outside-secret", "escape"),
    "link to another team": _link("../other-team/private.py", "escape"),
    "link to /etc": _link("/etc/passwd", "escape"),
    "dir link outside": _link("{root}/../", "escape"),
    "link inside a dir": _link("{outside}", "etl/escape"),
    "dir link inside a dir": _link("/etc", "etl/etc"),
    "symlink loop": _link("escape", "escape"),
    "loop inside a dir": _link("loop", "etl/loop"),
    "dangling link": _link("nowhere", "escape"),
    "python link outside": _link("{outside}", "smoke/escape.py"),
    "fifo": _fifo,
    "manifest is a directory": _manifest_dir,
    "manifest is a fifo": _manifest_fifo,
    "base file is /dev/zero": _endless_base,
    "team folder is a symlink": _team_link,
    "manifest is a symlink": _link("etl-jobs.yaml", "again.yaml"),
}
# What a fuzzed path field may name: the attacks above, plus plain hostile strings.
PATHS = st.one_of(st.sampled_from(["escape", "etl", "etl/escape", "etl/etc", "etl/loop", "fifo", "smoke/escape.py",
                                   "smoke/job.py", "etl/config.yaml"]), hostile_text)


@st.composite
def team_manifest(draw: st.DrawFn) -> Any:
    """TEAM with some fields replaced by hostile values, deleted, or joined by unknown keys."""
    doc = copy.deepcopy(TEAM)
    fuzzed = draw(st.sets(st.sampled_from([*TEAM, "extra", "files.src", "files.dest", "env.key", "env.value",
                                           "python.item", "apt.item", "smoke.job", "smoke.timeout_seconds",
                                           "smoke.expect", "platforms.item"]), max_size=4))
    for field in sorted(fuzzed, key=lambda f: ("." not in f, f)):  # nested ones first: a whole section may go
        if field == "extra":
            doc[draw(hostile_text)] = draw(any_value)
        elif field == "files.src":
            doc["files"] = [{"src": draw(PATHS), "dest": draw(st.sampled_from(["etl", "x/y"]) | hostile_text)}]
        elif field == "files.dest":
            doc["files"] = [{"src": "etl/config.yaml", "dest": draw(hostile_text)}]
        elif field == "env.key":
            doc["env"] = {draw(hostile_text): "value"}
        elif field == "env.value":
            doc["env"] = {"TEAM_SETTING": draw(maybe("plain value") | hostile_text)}
        elif field in ("python.item", "apt.item"):
            section = field.split(".")[0]
            doc[section] = {"packages": [*TEAM[section]["packages"], draw(hostile_text)]}
        elif field == "platforms.item":
            doc["platforms"] = ["linux/amd64", draw(hostile_text)]
        elif field.startswith("smoke."):
            key = field.split(".")[1]
            doc["smoke"] = {**doc["smoke"], key: draw(PATHS if key == "job" else maybe(TEAM["smoke"][key]))}
        elif draw(st.booleans()):
            del doc[field]
        else:
            doc[field] = draw(maybe(doc[field]))
    return doc


# ---- the properties --------------------------------------------------------------------------------------
def load(root: Path) -> Declarations | ManifestError:
    try:
        return load_declarations(root)
    except ManifestError as exc:
        return exc


def check_problems(root: Path, error: ManifestError, mapped: str | None) -> None:
    """Each problem names a file of the tree; those in `mapped` (a file that holds a mapping) name a field."""
    assert error.problems, "a ManifestError without problems"
    for problem in error.problems:
        assert not os.path.isabs(problem.file) and os.path.lexists(root / problem.file), \
            f"{problem} names no file of the tree"
        assert problem.message.strip(), f"{problem} says nothing"
        whole_file = problem.file != mapped or "bytes, over the" in problem.message
        assert problem.field or whole_file, f"{problem} names no field"


def check_team(root: Path, image: TeamImage) -> None:
    """The invariants the build relies on, checked on what it reads, not on how it was validated."""
    spec = image.manifest
    folder = (root / image.folder).resolve()
    assert re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", spec.name) and spec.team == Path(image.folder).name
    for src, dest in team_files(root, image):
        assert src.resolve().is_relative_to(folder), f"{src} leaves {folder}"
        assert src.is_file()
        assert PurePosixPath(os.path.normpath(dest)) == dest and dest.is_relative_to("/opt/app"), dest
        assert not dest.is_relative_to("/opt/app/.moka")
    if spec.smoke:
        job = root / image.folder / spec.smoke.job
        assert job.resolve().is_relative_to(folder) and job.is_file()
    check_dockerfile(root, image)


def check_dockerfile(root: Path, image: TeamImage) -> None:
    """The Dockerfile the build would generate for this image."""
    spec = image.manifest
    pins, files = list(spec.python.packages), team_files(root, image)
    check_recipe(list(spec.apt.packages), bool(pins), bool(files), spec.smoke is not None, dict(spec.env))


def run_case(attack: str, doc: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="moka-fuzz-") as tmp:
        root = Path(tmp) / "project"
        base_tree(root)
        TREE_ATTACKS[attack](root)
        write(root, MANIFEST, dump(doc))
        result = load(root)
        event("refused" if isinstance(result, ManifestError) else "loaded")
        if isinstance(result, ManifestError):
            check_problems(root, result, MANIFEST if isinstance(doc, dict) else None)
        else:
            assert [i.name for i in result.bases] == ["spark-3.5"]
            for image in result.teams:
                check_team(root, image)


@FUZZ
@given(attack=st.sampled_from(sorted(TREE_ATTACKS)), doc=team_manifest())
def test_any_team_manifest_loads_safely_or_names_its_problems(attack: str, doc: Any) -> None:
    run_case(attack, doc)


@FUZZ
@given(doc=any_value)
def test_any_structure_at_all_is_a_manifest_error(doc: Any) -> None:
    run_case("none", doc)


@settings(max_examples=examples(40), deadline=None)
@given(attack=st.sampled_from(sorted(RAW_ATTACKS)), n=st.integers(0, 20), where=st.sampled_from(["team", "base"]))
def test_raw_yaml_attacks_are_manifest_errors_naming_the_file(attack: str, n: int, where: str) -> None:
    with tempfile.TemporaryDirectory(prefix="moka-fuzz-") as tmp:
        root = Path(tmp) / "project"
        base_tree(root)
        write(root, MANIFEST, yaml.safe_dump(TEAM))
        rel = MANIFEST if where == "team" else "images/spark/image.yaml"
        write(root, rel, RAW_ATTACKS[attack](n))
        result = load(root)
        assert isinstance(result, ManifestError), f"{attack} was accepted"
        check_problems(root, result, None)
        assert rel in {p.file for p in result.problems}


@FUZZ
@given(doc=st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in BASES.items()}),
       line=st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in BASES["lines"][0].items()}),
       extra=st.dictionaries(hostile_text, any_value, max_size=1))
def test_any_base_matrix_loads_safely_or_names_its_problems(doc: dict[str, Any], line: dict[str, Any],
                                                           extra: dict[str, Any]) -> None:
    doc = {**doc, **extra}
    if isinstance(doc.get("lines"), list):
        doc["lines"] = [line]
    with tempfile.TemporaryDirectory(prefix="moka-fuzz-") as tmp:
        root = Path(tmp) / "project"
        base_tree(root)
        os.symlink(root.parent / OUTSIDE, root / "images" / "spark" / "escape")
        write(root, "images/spark/image.yaml", dump(doc))
        result = load(root)
        event("refused" if isinstance(result, ManifestError) else "loaded")
        if isinstance(result, ManifestError):
            check_problems(root, result, "images/spark/image.yaml")
            return
        for base in result.bases:
            assert re.fullmatch(r"spark-\d+\.\d+", base.name)
            assert re.fullmatch(r"\d+\.\d+\.\d+", base.build_args["SPARK_VERSION"])
            dockerfile = (root / base.dockerfile).resolve()
            assert dockerfile.is_relative_to((root / base.folder).resolve()) and dockerfile.is_file()


def test_the_known_escapes_are_each_refused() -> None:
    """Not left to chance: each tree attack, named by `src`, is refused with the field it came in by."""
    for attack, src in [("file link outside", "escape"), ("relative link outside", "escape"),
                        ("link to another team", "escape"), ("link to /etc", "escape"),
                        ("dir link outside", "escape"), ("link inside a dir", "etl"), ("dir link inside a dir", "etl"),
                        ("symlink loop", "escape"), ("loop inside a dir", "etl"), ("fifo", "fifo"),
                        ("none", "../other-team/private.py"), ("none", "/etc/passwd")]:
        doc = {**TEAM, "files": [{"src": src, "dest": "x"}]}
        with tempfile.TemporaryDirectory(prefix="moka-fuzz-") as tmp:
            root = Path(tmp) / "project"
            base_tree(root)
            TREE_ATTACKS[attack](root)
            write(root, MANIFEST, yaml.safe_dump(doc))
            result = load(root)
            assert isinstance(result, ManifestError), f"{attack}: {src} was accepted"
            assert [(p.file, p.field) for p in result.problems] == [(MANIFEST, "files.0.src")], (attack, result)
    assert m.MAX_TEXT < 1000 and m.MAX_ENV_VALUE < 1000
