"""The command list: lifecycle order, and a run that loads only its own command's module."""

from __future__ import annotations

import argparse
import gc

import pytest

from moka_images import cli, commands


def _top_level(parser: argparse.ArgumentParser) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_help_lists_every_command_in_lifecycle_order() -> None:
    listed = _top_level(cli.build_parser())
    assert listed == [word for _, words in commands.IN_LIFECYCLE_ORDER for word in words]
    assert listed[:9] == ["check", "lock", "plan", "build", "scan", "sign", "attest", "verify", "smoke"]
    assert listed.index("promote") < listed.index("status")


@pytest.mark.parametrize(("argv", "word"), [
    (["status", "--json"], "status"),
    (["--profile", "local", "--log-format", "json", "rollback", "spark-3.5"], "rollback"),
    (["--profile=local", "db", "mirror"], "db"),
    (["--version"], None),
    ([], None),
])
def test_command_word_skips_global_options_and_their_values(argv: list[str], word: str | None) -> None:
    assert commands.command_word(argv, ("--profile", "--log-format", "--metrics-file")) == word


def test_a_command_registers_only_its_own_module() -> None:
    assert _top_level(cli.build_parser(["--profile", "local", "rollback", "x", "--env", "dev", "--to", "1.0.0"])) == [
        "promote", "rollback"]
    assert _top_level(cli.build_parser(["verify", "spark-3.5"])) == ["sign", "attest", "verify"]
    assert len(_top_level(cli.build_parser(["no-such-command"]))) == sum(
        len(words) for _, words in commands.IN_LIFECYCLE_ORDER)  # argparse names the choices


def test_version_names_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.build_parser(["--version"]).parse_args(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip().startswith("moka-images 0.")
    # it loads no command to answer; beside --help, every command is still listed
    assert _top_level(cli.build_parser(["--version"])) == []
    assert len(_top_level(cli.build_parser(["--version", "--help"]))) == sum(
        len(words) for _, words in commands.IN_LIFECYCLE_ORDER)


def test_only_a_process_of_its_own_freezes_what_loading_made(capsys: pytest.CaptureFixture[str]) -> None:
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    assert cli.main(["plan", "spark-3.6"]) == 2  # an unknown image: loads the command, fails fast
    assert gc.get_freeze_count() == 0  # in-process callers (tests) keep their garbage collection as it was
    try:
        assert cli.main(["plan", "spark-3.6"], own_process=True) == 2
        assert gc.get_freeze_count() > 10_000 and gc.isenabled()
    finally:
        gc.unfreeze()
