#!/usr/bin/env bash
# Runs the test suite (SQLite by default; PostgreSQL when TEST_DATABASE_URL is set).
# Extra arguments go to pytest, e.g. ./test.sh -k kommo
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh dev
exec .venv/bin/python -m pytest "$@"
