from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from rra import embedded_redis


class Command(BaseCommand):
    help = (
        "Show or stop the private Redis in EMBEDDED_REDIS_DIR (used when REDIS_URL is unset). "
        "With EMBEDDED_REDIS=false it is not started first (make db-stop)."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args, action: str, **options):
        private = embedded_redis.url(settings.EMBEDDED_REDIS_DIR)
        if settings.REDIS_URL and private != settings.REDIS_URL:
            raise CommandError("REDIS_URL is set: the private Redis is not in use.")
        if action == "stop":
            stopped = embedded_redis.stop(settings.EMBEDDED_REDIS_DIR)
            self.stdout.write("stopped" if stopped else "not running")
            return
        running = embedded_redis._answers(embedded_redis.socket_path(settings.EMBEDDED_REDIS_DIR))
        self.stdout.write(f"{'running' if running else 'not running'}: {private}")
