"""Mount benchmark: a team image copied into a registry that already holds its base's layers in another repository,
by the moka-images copy engine (told the base's repository, or only through its blob-location cache) and by
`skopeo copy --all` (which mounts through its blob-info cache), in the same run. Prints times, bytes moved and
ratios against the issue's targets (time <= 1.2x skopeo's; bytes <= 1.1x the team's own layers).

    .venv/bin/python bench/mount_bench.py [--layers 6] [--layer-mb 20] [--jobs 4]
    .venv/bin/python bench/mount_bench.py --base spark-3.5 --team data-eng/etl-jobs

Either pushes a two-platform base (`--layers` random layers of `--layer-mb` per platform) and a team image on it
into test under bench-mount/<run>/, or takes the `latest` of two built images in test; copies the base into dev
with each tool (so each tool has seen it there), then times the team image's copy into a fresh repository of dev.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # promote_support: the images

from promote_bench import LIMIT, auth_file, timed
from promote_support import push_image, tar_layer

from moka_images.adapters import run
from moka_images.adapters.blob_cache import BlobLocations
from moka_images.adapters.copy import CopyStats, copy_image, walk
from moka_images.config.settings import load_settings
from moka_images.models import ALL_PLATFORMS, Environment
from moka_images.stages import registries

TEST, DEV = Environment.TEST, Environment.DEV


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6, help="base layers per platform (default 6)")
    parser.add_argument("--layer-mb", type=int, default=20, help="size of each base layer in MB (default 20)")
    parser.add_argument("--jobs", type=int, default=4, help="blobs copied at once by moka-images (default 4)")
    parser.add_argument("--base", help="a built base image in test (its latest), instead of a stand-in")
    parser.add_argument("--team", help="a built team image in test on --base (its latest)")
    args = parser.parse_args()
    settings = load_settings()
    test, dev = registries.client(settings, TEST), registries.client(settings, DEV)
    run_id = f"bench-mount/{int(time.time())}"
    if args.base and args.team:
        base_repo, team_repo = settings.repository(args.base), settings.repository(args.team)
        base_digest, team_digest = test.head_manifest(base_repo, "latest"), test.head_manifest(team_repo, "latest")
        if base_digest is None or team_digest is None:
            raise SystemExit(f"{base_repo}:latest and {team_repo}:latest must be in test (moka-images build)")
    else:
        below = {p: [tar_layer({f"opt/{i}.bin": os.urandom(args.layer_mb * 1024 * 1024)})
                     for i in range(args.layers)] for p in ALL_PLATFORMS}
        print(f"pushing a base and a team image into test under {run_id}/", file=sys.stderr)
        base = push_image(test, f"{run_id}/src/base", "1.0.0", seed=f"{run_id}-base", below=below)
        team = push_image(test, f"{run_id}/src/team", "2.0.0", seed=f"{run_id}-team", below=below, big_layers=1)
        base_repo, base_digest, team_repo, team_digest = base.repository, base.digest, team.repository, team.digest
    sizes = {m.digest: {d["digest"]: int(d["size"]) for d in [m.json["config"], *m.json["layers"]]}
             for repo, digest in ((base_repo, base_digest), (team_repo, team_digest))
             for m in walk(test, repo, digest) if not m.is_index}
    in_base = {d for m in walk(test, base_repo, base_digest) if not m.is_index for d in sizes[m.digest]}
    mine = {d: n for m in walk(test, team_repo, team_digest) if not m.is_index for d, n in sizes[m.digest].items()}
    shared = [d for d in mine if d in in_base]
    own = sum(n for d, n in mine.items() if d not in in_base)
    src_ref = f"{settings.env(TEST).registry}/{team_repo}@{team_digest}"
    rows: list[tuple[str, float, int | None]] = []
    with tempfile.TemporaryDirectory(prefix="moka-bench-") as tmp:
        auth = auth_file(settings, Path(tmp))

        def skopeo(src: str, dst: str) -> object:
            return run.call(["skopeo", "copy", "--all", "--preserve-digests", "--authfile", str(auth),
                             "--src-tls-verify=false", "--dest-tls-verify=false", f"docker://{src}",
                             f"docker://{settings.env(DEV).registry}/{dst}:bench"], timeout=LIMIT, quiet=True)

        with BlobLocations(Path(tmp) / "blob-locations.sqlite") as cache:
            copy_image(test, base_repo, dev, f"{run_id}/moka/base", base_digest, workers=args.jobs, cache=cache)
            skopeo(f"{settings.env(TEST).registry}/{base_repo}@{base_digest}", f"{run_id}/skopeo/base")
            for label, hints, with_cache in [("moka-images, told the base's repository", [f"{run_id}/moka/base"], False),
                                             ("moka-images, its blob-location cache only", [], True)]:
                seconds, stats = timed(label, lambda hints=hints, with_cache=with_cache: copy_image(
                    test, team_repo, dev, f"{run_id}/moka/team-{len(rows)}", team_digest, workers=args.jobs,
                    mount_from=hints, cache=cache if with_cache else None))
                assert isinstance(stats, CopyStats)
                rows.append((label, seconds, stats.bytes_copied))
        seconds, _ = timed("skopeo copy --all", lambda: skopeo(src_ref, f"{run_id}/skopeo/team"))
        rows.append(("skopeo copy --all (its blob-info cache)", seconds, None))
    skopeo_s = rows[-1][1]
    print(f"team image {team_repo}: {own / 1e6:.1f} MB of its own, {len(shared)} blobs of its base "
          f"({sum(mine[d] for d in shared) / 1e6:.0f} MB) already in dev")
    print(f"{'':48} {'seconds':>8} {'vs skopeo':>10} {'MB moved':>9} {'vs own':>7}")
    for label, seconds, moved in rows:
        bytes_cols = f"{moved / 1e6:9.1f} {moved / own:6.2f}x" if moved is not None else f"{'?':>9} {'':>7}"
        print(f"{label:48} {seconds:8.2f} {seconds / skopeo_s:9.2f}x {bytes_cols}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
