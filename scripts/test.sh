#!/usr/bin/env bash
# Every test, from a fresh machine: install what is missing, lint and type-check, start the local stack, run
# unit tests first (fast, no processes), then the integration and end-to-end tests against the real tools.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/bootstrap.sh
.venv/bin/ruff check moka_images tests bench
.venv/bin/mypy
.venv/bin/moka-images dev up
.venv/bin/python -m pytest tests/unit -q -p no:cacheprovider
# Integration before end to end: the promotion reuses the smoke results the smoke tests attest.
.venv/bin/python -m pytest tests/integration tests/e2e -q -p no:cacheprovider -m "integration or e2e" --durations=15 "$@"
