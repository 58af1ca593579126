"""Settings of the permits test project; the database comes from PERMITS_DATABASE_URL."""

import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
# The outbox app: its table (flowbus's DDL), the sink bound to Django's connection, and
# `manage.py flowbus_outbox_relay`.
INSTALLED_APPS = ["django.contrib.contenttypes", "flowbus.producer.outbox.django", "permits"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "permits_site.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _database(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parts.path}
    if parts.scheme in ("postgresql", "postgres"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": parts.username or "",
            "PASSWORD": parts.password or "",
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    raise ValueError(f"PERMITS_DATABASE_URL: unsupported scheme {parts.scheme!r}")


DATABASES = {
    "default": _database(
        os.environ.get("PERMITS_DATABASE_URL", f"sqlite:///{BASE_DIR / 'permits.sqlite3'}")
    )
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"flowbus": {"handlers": ["stderr"], "level": "WARNING"}},
}
