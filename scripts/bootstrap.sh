#!/usr/bin/env bash
# Prepare this machine for the lab: the Debian tools it drives (curl, ab; with BROWSER_TESTS=1, as
# scripts/test.sh sets it, chromium and its chromedriver for the browser tests, which download
# nothing) and builds against (mysqlclient needs MariaDB's client headers), then a virtualenv in
# .venv with requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

# Checked first, before anything is installed: on Python 3.10 the install succeeds and only the
# first import fails (the lab uses enum.StrEnum, new in 3.11). Django 5.2 LTS, which the lab
# pins, is tested here on 3.11 to 3.13; Django 6 would need 3.12 or newer.
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "No $python on PATH: install Python 3.11 or newer (Debian: apt-get install python3), or set PYTHON=python3.11." >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "The lab needs Python 3.11 or newer (it uses enum.StrEnum); $python is $("$python" --version 2>&1)." \
    "Supported: Python 3.11 to 3.13 with Django 5.2 LTS (Django 6 would need 3.12). Set PYTHON=python3.11." >&2
  exit 1
fi

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v ab >/dev/null || missing+=(apache2-utils)
if [[ ${BROWSER_TESTS:-} == 1 ]]; then
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
fi
command -v gcc >/dev/null || missing+=(gcc)
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null || missing+=(libmariadb-dev)

if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "Missing Debian packages: ${missing[*]}. Install them (apt-get install ${missing[*]}) and run this again." >&2
    exit 1
  fi
  echo "Installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv || {
    echo "Could not create .venv: on Debian, install python3-venv." >&2
    exit 1
  }
fi
# Install only when requirements.txt changed since the last install.
stamp=.venv/.requirements.sha256
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$wanted" >"$stamp"
fi
