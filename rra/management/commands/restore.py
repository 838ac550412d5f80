from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from rra.backup import BackupError, restore


class Command(BaseCommand):
    help = (
        "Restore a backup of `manage.py backup` into the configured database (empty: a "
        "fresh EMBEDDED_PG_DIR or a new database) and the file storage (MEDIA_ROOT or the "
        "S3 bucket). Stop the site first."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path)
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace the tables of a database that is not empty, and differing files",
        )

    def handle(self, *args, folder: Path, force: bool = False, **options):
        try:
            summary = restore(folder, force=force)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        counts = ", ".join(f"{n} {label}" for label, n in summary.counts.items())
        self.stdout.write(f"restored {summary.folder}: {counts}, {summary.files} files")
