#!/usr/bin/env bash
# Sets everything up on a fresh machine and starts the server on its embedded default:
# SQLite in ./instance, the sandbox Kommo and Bitrix24 with their CRM shell pages, a job worker.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh runtime
exec .venv/bin/python server.py "$@"
