from django.urls import path

from disputes import apis

urlpatterns = [
    path("disputes", apis.DisputesApi.as_view(), name="dispute-list"),
    path("disputes/<str:id>", apis.DisputeDetailApi.as_view(), name="dispute-detail"),
    path("disputes/<str:id>/messages", apis.DisputeReplyApi.as_view(), name="dispute-messages"),
]
