from django.urls import path  # noqa: F401  (the insights endpoints are added below)

urlpatterns: list = []
