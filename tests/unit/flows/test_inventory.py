"""Reading a repository's inventory: every build and rolling tag with the build times of rolled digests, or only
the tags asked for, without those reads (what `status` needs)."""

from __future__ import annotations

from fakes import FakeRegistry, push_image

from moka_images.adapters.registry import Manifest
from moka_images.models import Digest
from moka_images.plan.graph import BuildTag
from moka_images.stages.images import read_inventory
from moka_images.stages.status import current, serving_tags

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


def test_status_reads_only_latest_and_the_build_tags_and_no_build_time() -> None:
    fake = CountingRegistry()
    push_image(fake, REPO, "1.0.0", seed="a")
    new = push_image(fake, REPO, "1.1.0", seed="b")
    listed = fake.list_tags(REPO)
    fake.heads.clear()
    fake.reads.clear()
    narrow = read_inventory(fake, REPO, tags=serving_tags(listed), with_created=False)
    assert sorted(fake.heads) == sorted(["latest", *(t for t in listed if BuildTag.parse(t))]) and not fake.reads
    assert narrow.created == {}
    assert current(narrow) == current(read_inventory(fake, REPO)) == (new.digest, "1.1.0", str(new.build))
