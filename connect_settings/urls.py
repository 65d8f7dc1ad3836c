"""Mount with ``path("", include("connect_settings.urls"))`` at the app's BASE_URL."""

from django.urls import path

from .views import configure, descriptor, forge, lifecycle

app_name = "connect_settings"

urlpatterns = [
    path("atlassian-connect.json", descriptor.descriptor, name="descriptor"),
    path("installed", lifecycle.InstalledView.as_view(), name="installed"),
    path("uninstalled", lifecycle.UninstalledView.as_view(), name="uninstalled"),
    path("enabled", lifecycle.EnabledView.as_view(), name="enabled"),
    path("disabled", lifecycle.DisabledView.as_view(), name="disabled"),
    path("configure", configure.configure, name="configure"),
    path("forge/events", forge.ForgeEventsView.as_view(), name="forge-events"),
]
