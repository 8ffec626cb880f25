#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1 for the test suite: start them if installed,
# install them (Debian packages) if not.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
PY="${VENV:-.venv}/bin/python"

pg_up() {
  "$PY" - <<'PYEOF' >/dev/null 2>&1
import os, psycopg
url = os.environ.get("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/postgres")
url = url.rsplit("/", 1)[0] + "/postgres"
psycopg.connect(url, connect_timeout=3).close()
PYEOF
}
redis_up() {
  "$PY" -c "import redis; redis.Redis.from_url('${REDIS_URL:-redis://127.0.0.1:6379/15}', socket_timeout=3).ping()" >/dev/null 2>&1
}
wait_for() { for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done; return 1; }

if ! pg_up; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "-- starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  if ! wait_for pg_up; then
    # A fresh Debian cluster allows password logins on TCP: give the postgres role the test password.
    as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
    wait_for pg_up || { echo "!! PostgreSQL is not reachable on 127.0.0.1:5432 (set DATABASE_URL)." >&2; exit 1; }
  fi
fi
echo "-- PostgreSQL is up"

if ! redis_up; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  echo "-- starting Redis"
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for redis_up || { echo "!! Redis is not reachable on 127.0.0.1:6379 (set REDIS_URL)." >&2; exit 1; }
fi
echo "-- Redis is up"
