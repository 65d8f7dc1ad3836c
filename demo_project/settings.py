"""Settings of the demo project, read from the environment with django-environ.

Every name here is documented in the README; defaults give a working local demo on SQLite.
"""

from pathlib import Path

import django
import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="demo-insecure-secret-key-change-me-0123456789")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks_db",
    "connect_settings",
    "demo_project",
]

MIDDLEWARE = [
    # First, so that a database outage anywhere below is a 503 JSON answer, not a 500.
    "connect_settings.db_errors.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "connect_settings.middleware.ConnectMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
WSGI_APPLICATION = "demo_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The demo's own templates (and overrides of the package's) come first.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "connect_settings.context_processors.connect",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'demo.sqlite3'}")}
# PostgreSQL prepared statements (psycopg 3): each connection parses and plans a repeated
# query once instead of on every execution. Off by default, as in Django: a pooler in
# transaction mode (PgBouncer < 1.21) cannot keep prepared statements.
if env.bool("DATABASE_PREPARED_STATEMENTS", default=False) and DATABASES["default"][
    "ENGINE"
].endswith("postgresql"):
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=env.int("DATABASE_PREPARE_THRESHOLD", 5)
    )
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://connect-demo")}

# Django's tasks framework (django.tasks on Django 6, the django-tasks backport on 5.2). The
# demo delivers mirrored settings at once (immediate backend); TASKS_BACKEND=database queues
# them in the database for `manage.py db_worker` (django-tasks-db), as production would.
_tasks = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
_task_backends = {
    "immediate": f"{_tasks}.backends.immediate.ImmediateBackend",
    "database": "django_tasks_db.DatabaseBackend",
}
TASKS = {
    "default": {"BACKEND": _task_backends[env.str("TASKS_BACKEND", default="immediate")]},
    # Always available, so tests (and a worker) can use the queue whatever the default is.
    "database": {"BACKEND": _task_backends["database"]},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

_loopback = ["127.0.0.1", "localhost"] if DEBUG else []
CONNECT_SETTINGS = {
    "APP_KEY": env.str("CONNECT_APP_KEY", default="com.example.connect-settings-demo"),
    "BASE_URL": env.str("CONNECT_BASE_URL", default="http://127.0.0.1:8000"),
    "INSTALL_KEY_SERVERS": env.list(
        "CONNECT_INSTALL_KEY_SERVERS",
        default=[
            "https://asap-distribution.us-west-2.prod.atl-asap.net",
            "https://connect-install-keys.atlassian.com",
        ],
    ),
    "HOST_ALLOWLIST": env.list(
        "CONNECT_HOST_ALLOWLIST",
        default=["*.atlassian.net", "*.jira.com", "*.jira-dev.com", *_loopback],
    ),
    "SECRET_KEYS": env.list("CONNECT_SECRET_KEYS", default=[]),
    "CONFIGURE_FORM": "demo_project.forms.DemoSettingsForm",
    # Forge Remote (off unless an app id is given); the JWKS and API hosts default to
    # Atlassian's, plus loopback while debugging so the local emulator can stand in.
    "FORGE_APP_ID": env.str("CONNECT_FORGE_APP_ID", default=""),
    "FORGE_JWKS_URLS": env.list(
        "CONNECT_FORGE_JWKS_URLS",
        default=["https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"],
    ),
    "FORGE_API_HOSTS": env.list(
        "CONNECT_FORGE_API_HOSTS",
        default=["api.atlassian.com", "api.stg.atlassian.com", *_loopback],
    ),
    # Mirrored to the host's app properties, where a descriptor condition
    # (entity_property_equal_to, entity "addon") or a Forge front end can read them.
    "MIRROR": [
        {"property": "escalation-notify", "setting": "appSettings", "field": "notify"},
        {"property": "projects", "setting": "appSettings", "field": "project_keys"},
    ],
    "DESCRIPTOR": {
        "name": "Connect Settings Demo",
        "description": "A Django app installed through connect_settings.",
        "vendor": {"name": "connect_settings", "url": "https://example.com"},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"connect_settings": {"handlers": ["console"], "level": "INFO"}},
}
