"""The project's URLs (with its error handlers) plus a view that fails, on an API path and on a page path."""

from django.urls import path

from config.urls import handler400, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as project_urlpatterns


def failing(request):
    raise RuntimeError("the view failed")


urlpatterns = [path("v1/test/failing", failing), path("test/failing", failing), *project_urlpatterns]
