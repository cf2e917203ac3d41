#!/usr/bin/env bash
# The blog's experiment end to end on SQLite (or $DATABASE_URL): install, migrate, seed a demo
# user, start Gunicorn in the background, reset, splatter (ab -n 100 -c 3), audit, compare every
# withdrawal strategy; then, on a terminal, keep serving the report pages until Ctrl-C; stop
# Gunicorn (also when a step fails).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

port=${LAB_PORT:-8001}
url="http://127.0.0.1:$port"
requests=${LAB_REQUESTS:-100}
concurrency=${LAB_CONCURRENCY:-3}
python=.venv/bin/python
# A fresh random password for the demo user, passed through the environment, never argv.
if [[ -z ${BANK_PASSWORD:-} ]]; then
  BANK_PASSWORD=$("$python" -c 'import secrets; print(secrets.token_urlsafe(18))')
  password_note="password in .lab/demo-password"
else
  password_note="the password in \$BANK_PASSWORD"
fi
export BANK_PASSWORD

if curl --silent --max-time 2 --output /dev/null "$url/"; then
  echo "Something already answers on $url: stop it, or pick another port with LAB_PORT=8002." >&2
  exit 1
fi

"$python" manage.py migrate --verbosity 0
"$python" manage.py seed_account --username demo --no-input

mkdir -p .lab
# The report pages ask for a login: the password made here, readable by you alone.
if [[ $password_note == *demo-password* ]]; then
  (umask 077 && printf '%s\n' "$BANK_PASSWORD" >.lab/demo-password)
fi
echo "Starting Gunicorn on $url (log: .lab/gunicorn.log)"
.venv/bin/gunicorn --config gunicorn.conf.py --bind "127.0.0.1:$port" >.lab/gunicorn.log 2>&1 &
gunicorn_pid=$!
stop_gunicorn() {
  kill "$gunicorn_pid" 2>/dev/null || true
  wait "$gunicorn_pid" 2>/dev/null || true
  echo "Gunicorn stopped."
}
trap stop_gunicorn EXIT

for _ in $(seq 100); do
  curl --silent --max-time 2 --output /dev/null "$url/auth/login/" && break
  if ! kill -0 "$gunicorn_pid" 2>/dev/null; then
    echo "Gunicorn exited; the end of its log:" >&2
    tail -n 20 .lab/gunicorn.log >&2
    exit 1
  fi
  sleep 0.2
done

"$python" manage.py reset_balances --username demo --no-input
"$python" manage.py splatter --url "$url" --username demo -n "$requests" -c "$concurrency" --no-input
"$python" manage.py audit_transactions --username demo
echo
echo "Every strategy side by side, each on a freshly reset account:"
"$python" manage.py splatter --url "$url" --username demo -n "$requests" -c "$concurrency" --strategy all --no-input

echo
if [[ -t 0 && -t 1 && -z ${CI:-} ]]; then
  echo "The report pages are at $url/lab/runs/ (log in as demo, password in .lab/demo-password)."
  echo "Gunicorn serves them until you press Ctrl-C."
  wait "$gunicorn_pid" || true
else
  echo "To read the report pages later: .venv/bin/gunicorn --config gunicorn.conf.py --bind 127.0.0.1:$port"
  echo "then open $url/lab/runs/ (log in as demo, $password_note)."
fi
