from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from rra import embedded_db


class Command(BaseCommand):
    help = "Show or stop the embedded PostgreSQL (used when POSTGRES_URL/DATABASE_URL is unset)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args, action: str, **options):
        if settings.DATABASE_URL:
            raise CommandError(
                "POSTGRES_URL/DATABASE_URL is set: the embedded database is not in use."
            )
        if action == "stop":
            stopped = embedded_db.stop(settings.EMBEDDED_PG_DIR)
            self.stdout.write("stopped" if stopped else "not running")
            return
        connection.ensure_connection()  # starts or finds the server, fills in HOST
        db = connection.settings_dict
        self.stdout.write(
            f"running: data in {settings.EMBEDDED_PG_DIR}, socket in {db['HOST']}, database {db['NAME']}"
        )
