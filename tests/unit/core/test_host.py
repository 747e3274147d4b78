from pathlib import Path

import pytest

from moka_images.adapters import host
from moka_images.errors import ServiceError


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: x-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: x\n")
    assert host.debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_from_legacy_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("# c\ndeb [arch=amd64] http://m.example/debian bookworm main\n")
    assert host.debian_mirror(tmp_path) == "http://m.example/debian"


def test_no_mirror_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    with pytest.raises(ServiceError, match="no Debian mirror"):
        host.debian_mirror(tmp_path)
