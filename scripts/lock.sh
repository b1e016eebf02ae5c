#!/usr/bin/env bash
# Locks the whole dependency tree with hashes: requirements.txt -> requirements.lock (runtime) and
# requirements-dev.txt -> requirements-dev.lock (runtime + tests and linters, with the runtime
# packages at exactly the versions of requirements.lock). scripts/setup.sh installs the locks with
# --require-hashes, so a file that changed on the index, or a package nobody locked, is refused.
#
#   ./scripts/lock.sh                          after editing requirements*.txt: keeps every other pin
#   ./scripts/lock.sh --upgrade                every package to the newest version the pins allow
#   ./scripts/lock.sh --upgrade-package NAME   one package (repeat the option for more)
#
# The tools (pip-tools, pinned in requirements-tools.txt) live in .venv-tools, apart from the app.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=.venv-tools
if [ ! -x "$tools/bin/pip-compile" ] || [ requirements-tools.txt -nt "$tools/bin/pip-compile" ]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
  touch "$tools/bin/pip-compile"
fi

# --allow-unsafe: pip refuses to install, in hash-checking mode, any package (setuptools included)
# the lock does not name. No index or find-links lines: every machine uses its own pip settings.
compile() {
  CUSTOM_COMPILE_COMMAND=./scripts/lock.sh "$tools/bin/pip-compile" --quiet --generate-hashes \
    --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links "$@"
}
compile "$@" -o requirements.lock requirements.txt
compile "$@" -c requirements.lock -o requirements-dev.lock requirements-dev.txt
echo "locked: requirements.lock ($(grep -c '^[a-z]' requirements.lock) packages)," \
  "requirements-dev.lock ($(grep -c '^[a-z]' requirements-dev.lock) packages)"
