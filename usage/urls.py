from django.urls import path

from usage import apis

urlpatterns = [
    path("events", apis.EventsIngestApi.as_view(), name="events-ingest"),
]
