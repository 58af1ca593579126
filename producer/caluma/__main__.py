"""``python -m flowbus.producer.caluma outbox relay|migrate|status|rejected|retry``: the
outbox commands of ``flowbus outbox`` on the Caluma service's own database.

Runs with Caluma's settings (``DJANGO_SETTINGS_MODULE``, default
``caluma.settings.django``, and Caluma's ``DATABASE_*`` environment): the database is
``DATABASES[FLOWBUS_OUTBOX_USING]``, handed to ``flowbus outbox`` through
``FLOWBUS_OUTBOX_DATABASE_URL`` (never on the command line, which other users can read).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "outbox":
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caluma.settings.django")
    import django

    django.setup()
    from ..outbox.cli import outbox
    from ..outbox.django import database_url, outbox_alias

    os.environ["FLOWBUS_OUTBOX_DATABASE_URL"] = database_url(outbox_alias())
    outbox.main(argv[1:], prog_name="python -m flowbus.producer.caluma outbox")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
