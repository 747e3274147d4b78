import pytest

from moka_images.errors import ConfigError
from moka_images.models import Digest, Environment, ImageRef, Platform, is_valid_tag

D = "sha256:" + "ab" * 32


def test_platform_parse_and_uname() -> None:
    assert Platform.parse("linux/arm64") == Platform("linux", "arm64")
    assert Platform.parse("linux/amd64").uname == "x86_64"
    assert str(Platform.parse("linux/arm64")) == "linux/arm64"


@pytest.mark.parametrize("text", ["linux/s390x", "windows/amd64", "arm64", "linux/arm64/v8"])
def test_platform_rejects_unsupported(text: str) -> None:
    with pytest.raises(ConfigError, match="unsupported platform"):
        Platform.parse(text)


def test_digest_validates() -> None:
    assert Digest(D).short == "ab" * 6
    for bad in ["sha256:abc", "md5:" + "a" * 32, "sha256:" + "G" * 64, D.upper()]:
        with pytest.raises(ValueError):
            Digest(bad)


def test_image_ref_rendering_prefers_digest() -> None:
    ref = ImageRef("127.0.0.1:15001", "moka/spark-3.5", "1.0.0")
    assert str(ref) == "127.0.0.1:15001/moka/spark-3.5:1.0.0"
    assert str(ref.with_digest(Digest(D))) == f"127.0.0.1:15001/moka/spark-3.5@{D}"
    with pytest.raises(ValueError):
        ImageRef("r", "Bad/Repo")
    with pytest.raises(ValueError):
        ImageRef("r", "ok", tag="-starts-with-dash")


def test_tags() -> None:
    assert is_valid_tag("1.0.0-0123456789-abcdefabcd")
    assert not is_valid_tag("a" * 129)
    assert not is_valid_tag("1.0.0+build")


def test_environment_order_and_previous() -> None:
    assert Environment.TEST < Environment.DEV < Environment.STAGING < Environment.PROD
    assert sorted([Environment.PROD, Environment.TEST]) == [Environment.TEST, Environment.PROD]
    assert Environment.PROD.previous is Environment.STAGING
    assert Environment.TEST.previous is None
    with pytest.raises(ConfigError, match="unknown environment 'qa'"):
        Environment.parse("qa")
