# Ledgerline: `make demo` runs the product locally; `make test` runs the whole suite on PostgreSQL, then the demo's
# path on SQLite.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Links in the demo's e-mails point at where it serves (a wildcard address is reached on loopback).
DEMO_BASE_URL ?= http://$(if $(filter 0.0.0.0 ::,$(HOST)),127.0.0.1,$(HOST)):$(PORT)
export VENV

.PHONY: demo test venv venv-dev check lint serve

venv:
	@scripts/venv.sh requirements.txt

venv-dev:
	@scripts/venv.sh requirements-dev.txt

## demo: virtualenv, embedded SQLite database, catalogue and demo data, then serve on 127.0.0.1:8000 with the schedule
demo: venv
	@scripts/system-deps.sh demo
	@$(PY) manage.py migrate --noinput -v0
	@LEDGERLINE_BASE_URL=$(DEMO_BASE_URL) $(PY) manage.py load_demo
	@echo ""
	@echo "Ledgerline is running on http://$(HOST):$(PORT)/"
	@echo "  admin console  http://$(HOST):$(PORT)/admin/"
	@echo "  customer portal http://$(HOST):$(PORT)/portal/"
	@echo "  API docs       http://$(HOST):$(PORT)/api/docs/"
	@echo "The periodic tasks (month close, finalization, budgets, reminders) run beside it: var/demo-schedule.log."
	@echo "Stop with Ctrl-C. Start again with 'make demo' (data is kept in db.sqlite3; delete it to start over)."
	@LEDGERLINE_BASE_URL=$(DEMO_BASE_URL) HOST=$(HOST) PORT=$(PORT) scripts/demo-serve.sh

## test: installs what tests need, makes sure PostgreSQL and Redis answer, runs the suite on PostgreSQL, then
## tests/sqlite on the demo's database (SQLite: its event writers, triggers and month close)
test: venv-dev
	@scripts/system-deps.sh test
	@scripts/test-services.sh
	@$(PY) -m pytest
	@$(PY) -m pytest tests/sqlite --ds=config.settings.test_sqlite -n 0

## check: migrations in sync and production settings pass Django's deployment checks
check: venv-dev
	@$(PY) manage.py makemigrations --check --dry-run
	@DJANGO_SECRET_KEY=check-only-$$(date +%s)-not-a-real-secret-key-0123456789abcdef DJANGO_ALLOWED_HOSTS=billing.example.com \
	  BILLING_SELLER_NAME="Example Cloud Ltd" BILLING_SELLER_TAX_ID=IE1234567T BILLING_SELLER_PAYMENT_INSTRUCTIONS="IBAN IE29 AIBK 9311 5212 3456 78" \
	  LEDGERLINE_BASE_URL=https://billing.example.com DJANGO_SETTINGS_MODULE=config.settings.production $(PY) manage.py check --deploy

## lint: ruff (rules and formatting), then mypy on the files listed under [tool.mypy] in pyproject.toml
lint: venv-dev
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/lint-imports --no-cache
	@$(VENV)/bin/mypy
