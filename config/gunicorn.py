"""gunicorn settings: `gunicorn -c config/gunicorn.py config.wsgi`. Tuned by environment variables."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One process per core, each with enough threads that concurrent requests overlap their PostgreSQL commits
# and single events arriving together share one (group commit, usage/group_commit.py): on 2 cores, 2 x 8
# answers ~1,000 single-event requests/s where 3 x 4 gave ~780 and 1 x 8 ~840 (bench/ingest.py).
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
# Threaded workers keep client connections alive and overlap requests waiting on PostgreSQL commits.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycling a worker bounds slow leaks, but a new worker loads Django again (~1.5 s of CPU): at ingest rates
# of ~1,000 requests/s, 5,000 requests meant a restart every few seconds somewhere.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "200000"))
max_requests_jitter = 20000
# Empty or /dev/null: no access log at all (gunicorn would still format every line for /dev/null).
_access_log = os.environ.get("GUNICORN_ACCESS_LOG", "-")
accesslog = None if _access_log in ("", os.devnull) else _access_log
errorlog = "-"
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
