from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from rra.backup import BackupError, backup


class Command(BaseCommand):
    help = (
        "Back up the database and the uploaded files, consistent with each other, while "
        "the site runs (rra/backup.py). Restore with `manage.py restore FOLDER`."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            type=Path,
            help="an empty or new folder (default: var/backups/rra-<UTC time>)",
        )

    def handle(self, *args, output: Path | None = None, **options):
        folder = output or Path(settings.BASE_DIR) / "var" / "backups" / (
            "rra-" + timezone.now().strftime("%Y%m%d-%H%M%S")
        )
        try:
            summary = backup(folder)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        counts = ", ".join(f"{n} {label}" for label, n in summary.counts.items())
        self.stdout.write(f"backed up to {summary.folder}: {counts}, {summary.files} files")
        if summary.missing:
            self.stderr.write(
                f"warning: {len(summary.missing)} documents' files were missing or did not "
                f"match their checksum (listed in manifest.json), e.g. {summary.missing[0]}"
            )
