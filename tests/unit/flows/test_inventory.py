"""Reading a repository's inventory: every build and rolling tag with the build times of rolled digests, or only
the tags asked for, without those reads: what `status` needs, looked up newest build first."""

from __future__ import annotations

from fakes import FakeRegistry, push_image

from moka_images.adapters.registry import OCI_INDEX, Manifest
from moka_images.models import Digest
from moka_images.stages.images import read_inventory
from moka_images.stages.status import current, serving

REPO = "moka/spark-3.5"


class CountingRegistry(FakeRegistry):
    """The fake, counting the references looked up and the manifests read."""

    def __init__(self) -> None:
        super().__init__()
        self.heads: list[str] = []
        self.reads: list[str] = []

    def head_manifest(self, repository: str, reference: str) -> Digest | None:
        self.heads.append(reference)
        return super().head_manifest(repository, reference)

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        self.reads.append(reference)
        return super().get_manifest(repository, reference)


def test_a_full_inventory_reads_every_tracked_tag_and_the_build_times() -> None:
    fake = CountingRegistry()
    old = push_image(fake, REPO, "1.0.0", seed="a", created="2025-01-01T00:00:00Z")
    new = push_image(fake, REPO, "1.1.0", seed="b", created="2025-02-01T00:00:00Z")
    fake.heads.clear()
    fake.reads.clear()
    inventory = read_inventory(fake, REPO)
    assert inventory.tags["latest"] == new.digest and inventory.tags["1.0.0"] == old.digest
    assert inventory.created == {old.digest: "2025-01-01T00:00:00Z", new.digest: "2025-02-01T00:00:00Z"}
    assert sorted(fake.reads) == sorted([str(old.digest), str(new.digest)])


def test_status_finds_the_served_build_newest_first_and_agrees_with_the_whole_inventory() -> None:
    fake = CountingRegistry()
    old = push_image(fake, REPO, "1.0.0", seed="a")
    for patch in range(1, 6):
        push_image(fake, REPO, f"1.0.{patch}", seed=f"p{patch}")
    new = push_image(fake, REPO, "1.1.0", seed="b")
    listed = fake.list_tags(REPO)
    fake.heads.clear()
    fake.reads.clear()
    # the usual case: latest, then only the newest build tag; no build time is read
    found = serving(fake, REPO, listed)
    assert fake.heads == ["latest", str(new.build)] and not fake.reads
    assert found == current(read_inventory(fake, REPO)) == (new.digest, "1.1.0", str(new.build))
    # rolled back to the oldest build: rounds of 1, 2, 4 builds (7 in all), still the whole inventory's answer
    fake.put_manifest(REPO, "latest", old.raw, OCI_INDEX)
    fake.heads.clear()
    fake.reads.clear()
    found = serving(fake, REPO, listed)
    assert fake.heads[0] == "latest" and len(fake.heads) == 1 + 7 and not fake.reads
    assert found == current(read_inventory(fake, REPO)) == (old.digest, "1.0.0", str(old.build))
    # without latest, the highest version tag; a digest no build tag names has neither version nor build
    assert serving(fake, REPO, [t for t in listed if t != "latest"])[:2] == (new.digest, "1.1.0")
    stray = push_image(fake, REPO, "9.9.9", seed="stray", tags=["latest"])
    assert serving(fake, REPO, fake.list_tags(REPO)) == (stray.digest, None, None)
    assert serving(fake, REPO, []) is None and serving(fake, "moka/nothing", ["latest"]) is None
