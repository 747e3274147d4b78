"""The smoke command's argument handling: plain references and the registered options."""

from __future__ import annotations

import pytest

from moka_images.cli import build_parser, main
from moka_images.errors import ConfigError
from moka_images.models import Digest, ImageRef, Platform

DIGEST = "sha256:" + "c" * 64


@pytest.mark.parametrize(("text", "ref"), [
    (f"127.0.0.1:15001/scratch-smoke/spark-no-java@{DIGEST}",
     ImageRef("127.0.0.1:15001", "scratch-smoke/spark-no-java", digest=Digest(DIGEST))),
    ("127.0.0.1:15001/moka/spark-3.5:1.0.1", ImageRef("127.0.0.1:15001", "moka/spark-3.5", "1.0.1")),
    ("127.0.0.1:15001/moka/spark-3.5", ImageRef("127.0.0.1:15001", "moka/spark-3.5")),
])
def test_parse_ref(text: str, ref: ImageRef) -> None:
    assert ImageRef.parse(text) == ref


@pytest.mark.parametrize("text", ["127.0.0.1:15001/moka/x@sha256:short", "127.0.0.1:15001/Bad/Name"])
def test_bad_ref_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        ImageRef.parse(text)


def test_smoke_command_options() -> None:
    args = build_parser().parse_args(["smoke", "spark-3.5", "--env", "test", "--platform", "linux/arm64",
                                      "--junit", "j.xml", "--json", "r.json", "--attest"])
    assert (args.image, args.env, args.platform, args.attest) == ("spark-3.5", "test", [Platform("linux", "arm64")],
                                                                   True)
    assert str(args.junit) == "j.xml" and str(args.json) == "r.json" and args.parallel == 1


def test_a_bad_platform_argument_is_a_clean_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Platform.parse raises ConfigError from argparse's `type=`: the CLI reports it, with no traceback."""
    code = main(["smoke", "spark-3.5", "--env", "dev", "--platform", "windows/amd64"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unsupported platform 'windows/amd64'" in err and "use linux/amd64 or linux/arm64" in err
    assert "Traceback" not in err
