from django.urls import path

from webhooks import apis

urlpatterns = [
    path("webhooks/endpoints", apis.EndpointsApi.as_view(), name="webhook-endpoints"),
    path("webhooks/endpoints/<str:id>", apis.EndpointDetailApi.as_view(), name="webhook-endpoint"),
    path(
        "webhooks/endpoints/<str:id>/rotate-secret",
        apis.EndpointRotateSecretApi.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path("webhooks/endpoints/<str:id>/test", apis.EndpointTestApi.as_view(), name="webhook-endpoint-test"),
    path(
        "webhooks/endpoints/<str:id>/deliveries",
        apis.EndpointDeliveriesApi.as_view(),
        name="webhook-endpoint-deliveries",
    ),
    path(
        "webhooks/endpoints/<str:id>/resend-failed",
        apis.EndpointResendFailedApi.as_view(),
        name="webhook-endpoint-resend-failed",
    ),
    path("webhooks/deliveries/<str:id>/resend", apis.DeliveryResendApi.as_view(), name="webhook-delivery-resend"),
]
