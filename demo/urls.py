from django.urls import path

from demo import views

urlpatterns = [path("demo/webhooks/<slug:name>/", views.webhook_inbox, name="demo-webhook-inbox")]
