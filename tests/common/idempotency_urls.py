"""The project's URLs plus two POST endpoints behind ``common.idempotency.idempotent`` whose outcome cannot be
kept: one answers with text PostgreSQL cannot store, one fails. ``calls`` counts how often each ran."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from common.idempotency import idempotent
from config.urls import urlpatterns as project_urlpatterns

calls: list[str] = []


class Unstorable(APIView):
    def post(self, request):
        def handler():
            calls.append("unstorable")
            return Response({"error": {"code": "odd", "field": None, "message": "a\x00b"}}, status=400)

        return idempotent(request, handler)


class Failing(APIView):
    def post(self, request):
        def handler():
            calls.append("failing")
            raise RuntimeError("the handler failed")

        return idempotent(request, handler)


urlpatterns = [
    path("v1/test/unstorable", Unstorable.as_view()),
    path("v1/test/failing", Failing.as_view()),
    *project_urlpatterns,
]
