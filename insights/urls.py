from django.urls import path  # noqa: F401  (the insights endpoints are added below)

from insights import apis_forecast

urlpatterns: list = []
urlpatterns.append(path("billing/forecast", apis_forecast.ForecastApi.as_view(), name="billing-forecast"))
