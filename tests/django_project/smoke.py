"""Proves the venv runs the project: Django's system checks and the migrations, on SQLite."""

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
database = Path(tempfile.mkdtemp()) / "smoke.sqlite3"
os.environ.update(
    DJANGO_SETTINGS_MODULE="permits_site.settings",
    PERMITS_DATABASE_URL=f"sqlite:///{database}",
    KAFKA_BOOTSTRAP_SERVERS=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1"),
)
import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402

call_command("check")
call_command("migrate", verbosity=0)
print("django project ok:", django.get_version())
