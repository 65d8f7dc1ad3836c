from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/settings", views.settings_json, name="demo-settings"),
    path("health", views.health, name="demo-health"),
    path("forge/settings", views.forge_settings, name="demo-forge-settings"),
    path("", include("connect_settings.urls")),
]
