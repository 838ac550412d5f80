from django.apps import AppConfig


class ChatsConfig(AppConfig):
    name = "chats"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chats import signals  # noqa: F401 - connects the receivers
        from chats.answering import runner_start
        from rra import registry

        # The worker generates answers in these threads (they stream through Redis).
        registry.WORKER_SERVICES.append(lambda stop: runner_start(stop=stop))
