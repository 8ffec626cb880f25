#!/usr/bin/env bash
# Serve the demo: the web server in the foreground and, beside it, the periodic task schedule (celery beat
# reading the schedule from the database, running each due task inline: no broker or worker needed), so the
# hourly, daily and monthly jobs the docs describe happen in the demo too. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.local}"
mkdir -p var
CELERY_BROKER_URL="${DEMO_BROKER_URL:-memory://localhost/}" \
  "$VENV/bin/celery" -A config beat --loglevel=info --pidfile= >var/demo-schedule.log 2>&1 &
beat=$!
trap 'kill "$beat" 2>/dev/null || true' EXIT INT TERM
"$VENV/bin/python" manage.py runserver --noreload "${HOST:-127.0.0.1}:${PORT:-8000}"
