#!/usr/bin/env bash
# Run the test suite on SQLite, or on the PostgreSQL / MariaDB server that $DATABASE_URL names,
# on two pytest workers per core: many tests spend their time waiting (on a server, a race
# window, a subprocess), and the second worker's tests use the core meanwhile. Each worker takes
# whole test files, so a file's lab and servers start once. Arguments go to pytest after these;
# -n 0 runs everything in this one process.
set -euo pipefail
cd "$(dirname "$0")/.."
BROWSER_TESTS=1 bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest -n "$((2 * $(nproc)))" --dist loadfile "$@"
