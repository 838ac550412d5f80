"""Prune expired sessions, old finished task results and expired sign-ups once (the worker does it every
HOUSEKEEPING_INTERVAL_S; this is for cron or a one-off)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rra.housekeeping import housekeeping_run


class Command(BaseCommand):
    help = (
        "Delete expired sessions, finished task results past their retention and sign-ups"
        " whose link expired unused, once."
    )

    def handle(self, *args, **options) -> None:
        counts = housekeeping_run()
        if counts is None:
            raise CommandError("Another process is doing housekeeping right now; try later.")
        self.stdout.write(", ".join(f"{kind}: {n} deleted" for kind, n in counts.items()))
