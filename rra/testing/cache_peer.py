"""A second Django process for the query-cache tests (rra/tests/test_query_cache.py).

Reads one JSON command per line on stdin and answers one JSON line on stdout, so a test
can interleave reads and writes of two processes that share the database and Redis:

    {"op": "list", "token": "rra_…"}              -> {"status": 200, "body": {...}}
    {"op": "detail", "token": "rra_…", "chat": id} -> {"status": 200, "body": {...}}
    {"op": "rename", "chat": id, "title": "…"}    -> {"updated": 1}   (QuerySet.update)
    {"op": "delete", "chat": id}                  -> {"deleted": 1}   (QuerySet.delete)
    {"op": "revoke", "token": "rra_…"}             -> {"revoked": 1}   (as DELETE /api/tokens/x)
    {"op": "redis"}                               -> {"url": REDIS_URL, "backends": [...]}
    {"op": "get", "token": "rra_…", "path": "/api/…", "max_events": n}
                                     -> {"status": 200, "body": "…"} (a stream: until n tokens)
    {"op": "post", "token": "rra_…", "path": "/api/…"} -> {"status": 202}
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rra.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client
    from django.utils import timezone

    from accounts.models import ApiToken, hash_token
    from chats.models import Chat

    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op in ("list", "detail"):
            client = Client(HTTP_AUTHORIZATION=f"Bearer {command['token']}")
            path = "/api/chats" if op == "list" else f"/api/chats/{command['chat']}"
            response = client.get(path)
            answer = {"status": response.status_code, "body": response.json()}
        elif op == "rename":
            answer = {
                "updated": Chat.objects.filter(pk=command["chat"]).update(title=command["title"])
            }
        elif op == "delete":
            answer = {"deleted": Chat.objects.filter(pk=command["chat"]).delete()[0]}
        elif op == "get":
            client = Client(HTTP_AUTHORIZATION=f"Bearer {command['token']}")
            response = client.get(command["path"])
            if response.streaming:
                chunks = []
                for chunk in response.streaming_content:
                    chunks.append(chunk.decode())
                    if "".join(chunks).count("event: token") >= command.get("max_events", 1e9):
                        break
                response.close()
                body = "".join(chunks)
            else:
                body = response.content.decode()
            answer = {"status": response.status_code, "body": body}
        elif op == "post":
            client = Client(HTTP_AUTHORIZATION=f"Bearer {command['token']}")
            answer = {"status": client.post(command["path"]).status_code}
        elif op == "revoke":
            token = ApiToken.objects.active().get(key_hash=hash_token(command["token"]))
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            answer = {"revoked": 1}
        elif op == "redis":
            answer = {
                "url": settings.REDIS_URL,
                "backends": sorted({c["BACKEND"] for c in settings.CACHES.values()}),
            }
        else:
            answer = {"error": f"unknown op {op}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
