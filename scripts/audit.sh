#!/usr/bin/env bash
# Checks every locked package (requirements.lock and requirements-dev.lock) against known
# vulnerabilities with pip-audit. It needs the network: pip-audit asks a vulnerability service
# (by default the package index's JSON API; ./scripts/audit.sh -s osv asks OSV instead), so it
# cannot run on an offline machine. Extra arguments go to pip-audit.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=.venv-tools
if [ ! -x "$tools/bin/pip-audit" ] || [ requirements-tools.txt -nt "$tools/bin/pip-audit" ]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
  touch "$tools/bin/pip-audit"
fi
# --disable-pip: audit the pins as locked (hashes included), without resolving or installing anything.
status=0
for lock in requirements.lock requirements-dev.lock; do
  echo "== $lock"
  "$tools/bin/pip-audit" --disable-pip --require-hashes --progress-spinner off -r "$lock" "$@" || status=$?
done
exit "$status"
