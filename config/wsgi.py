import os

from django.core.wsgi import get_wsgi_application

from common.wsgi import ChunkedRequestBodies

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
# Chunked request bodies reach Django with their length (see common/wsgi.py).
django_application = ChunkedRequestBodies(get_wsgi_application())

# Single usage events skip the middleware stack and the REST framework (same answers, see the module).
from usage.fast_ingest import EventsFastPath  # noqa: E402 - needs the apps loaded above

application = EventsFastPath(django_application)
