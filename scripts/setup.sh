#!/usr/bin/env bash
# Idempotent setup: a virtualenv in .venv with the locked packages, and compiled translations.
# "dev" adds the test tools; Debian's Chromium for the browser tests is installed by .ci/run
# (or by hand: apt-get install chromium).
#
# Packages come from the lock files (requirements.lock, requirements-dev.lock: the whole tree,
# each file's sha256), installed with --require-hashes: pip refuses any file whose hash differs and
# any package the lock does not name. ./scripts/lock.sh rewrites them after requirements*.txt change.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-runtime}"
lock=requirements.lock
[ "$kind" = dev ] && lock=requirements-dev.lock
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Installed once per lock content: a second run costs a checksum, not a pip run.
stamp=".venv/.installed-$(sha1sum "$lock" | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r "$lock"
  touch "$stamp"
fi
if [ -d widget/translations ]; then
  # -q goes before the subcommand; fuzzy (unconfirmed) entries are left out, English shows instead.
  # (The app also compiles a missing or stale catalog when it starts: widget/catalogs.py.)
  .venv/bin/pybabel -q compile -d widget/translations
fi
