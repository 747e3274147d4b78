#!/usr/bin/env bash
# The main job end to end on the local real stack, from a fresh machine:
# install what is missing, start the stack, then the pipeline on merge (plan, build, scan, sign, smoke, promote).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/bootstrap.sh
.venv/bin/moka-images dev up
.venv/bin/moka-images pipeline "$@"
