"""The demo's URLs plus two empty views, so that authentication is the only difference."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from connect_settings.decorators import authenticate, check_valid_token


def empty(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("bench/empty", empty),
    path("bench/session", check_valid_token(empty)),
    path("bench/page", authenticate(empty)),
    path("", include("demo_project.urls")),
]
