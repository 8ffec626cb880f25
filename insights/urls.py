from django.urls import path  # noqa: F401  (the insights endpoints are added below)

from insights import apis_forecast
from insights.apis_analysis import AnalysisApi
from insights.apis_recommendations import RecommendationsApi

urlpatterns: list = []
urlpatterns.append(path("billing/forecast", apis_forecast.ForecastApi.as_view(), name="billing-forecast"))
urlpatterns.append(path("billing/analysis", AnalysisApi.as_view(), name="billing-analysis"))
urlpatterns.append(path("billing/recommendations", RecommendationsApi.as_view(), name="billing-recommendations"))
