#!/usr/bin/env bash
# Idempotent setup: a virtualenv in .venv with the pinned packages, and compiled translations.
# "dev" adds the test tools; Debian's Chromium for the browser tests is installed by .ci/run
# (or by hand: apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-runtime}"
req=requirements.txt
[ "$kind" = dev ] && req=requirements-dev.txt
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=".venv/.installed-$(sha1sum "$req" requirements.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
  touch "$stamp"
fi
if [ -d widget/translations ]; then
  # -q goes before the subcommand; fuzzy (unconfirmed) entries are left out, English shows instead.
  .venv/bin/pybabel -q compile -d widget/translations
fi
