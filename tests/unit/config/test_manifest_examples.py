"""The declarations shipped in the repository validate, and say what the build needs."""

from __future__ import annotations

from pathlib import Path

from moka_images.config.manifests import BaseImage, TeamImage, load_declarations, team_files

ROOT = Path(__file__).resolve().parents[3]


def test_every_declaration_in_the_repository_validates() -> None:
    declarations = load_declarations(ROOT)
    assert [b.name for b in declarations.bases] == ["spark-3.5", "spark-4.0"]
    assert {t.name for t in declarations.teams} >= {"data-eng/etl-jobs", "ml-platform/feature-store"}
    for team in declarations.teams:
        assert team.base in {b.name for b in declarations.bases}
        assert team.manifest.smoke is not None and (ROOT / team.folder / team.manifest.smoke.job).is_file()
        assert team_files(ROOT, team), f"{team.name} ships no files"


def test_spark_lines_carry_their_spark_version() -> None:
    declarations = load_declarations(ROOT)
    for base in declarations.bases:
        assert isinstance(base, BaseImage)
        assert base.build_args["SPARK_VERSION"].startswith(base.line.line + ".")
        assert base.python_pins == [f"pyspark=={base.line.spark_version}"]
        assert (ROOT / base.dockerfile).is_file()


def test_example_smoke_jobs_expect_a_line_they_print() -> None:
    for team in load_declarations(ROOT).teams:
        assert isinstance(team, TeamImage) and team.manifest.smoke and team.manifest.smoke.expect
        job = (ROOT / team.folder / team.manifest.smoke.job).read_text()
        assert team.manifest.smoke.expect.split(":")[0] in job
