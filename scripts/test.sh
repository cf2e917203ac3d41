#!/usr/bin/env bash
# Run the test suite on SQLite, or on the PostgreSQL / MariaDB server that $DATABASE_URL names.
set -euo pipefail
cd "$(dirname "$0")/.."
BROWSER_TESTS=1 bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
