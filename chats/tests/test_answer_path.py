"""How many files a question crosses from the view to its saved answer (issue 23's
measure, docs/architecture.md): the app modules whose functions run from the API view
until the answer is saved, and whether control goes back and forth between two of them.
A callback handed down (the view's prepare, the service's stop check) runs code of the
module that made it; it is reported, not counted as a call back."""

from __future__ import annotations

import ast
import sys
import threading
from pathlib import Path

import pytest

from chats.models import Chat, Message

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "chats", "documents")


def _app_file(filename: str) -> str | None:
    try:
        relative = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    if relative.parts[0] not in APPS or "tests" in relative.parts:
        return None
    return str(relative)


def _is_callback(code) -> bool:
    return code.co_name == "<lambda>" or "<locals>" in code.co_qualname


def trace_path(run, *, start: tuple[str, str]):
    """Run `run` under a profiler; from the first call of `start` (file, function) on:
    the app files whose functions run, in order, and the calls between two of them,
    (caller file, callee file) -> {"caller -> callee"}, callbacks apart."""
    files: list[str] = []
    calls: dict[tuple[str, str], set[str]] = {}
    callbacks: dict[tuple[str, str], set[str]] = {}
    started = threading.Event()

    def profile(frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        callee = _app_file(code.co_filename)
        if callee is None:
            return
        if not started.is_set():
            if (callee, code.co_name) != start:
                return
            started.set()
        if callee not in files:
            files.append(callee)
        outer = frame.f_back
        while outer is not None:
            caller = _app_file(outer.f_code.co_filename)
            if caller is not None:
                if caller != callee:
                    kind = callbacks if _is_callback(code) else calls
                    kind.setdefault((caller, callee), set()).add(
                        f"{outer.f_code.co_name} -> {code.co_name}"
                    )
                return
            outer = outer.f_back

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return files, calls, callbacks


def _imports(relative: str) -> set[str]:
    tree = ast.parse((ROOT / relative).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _module(relative: str) -> str:
    return relative.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def test_a_question_crosses_at_most_eight_files_without_going_back_and_forth(
    owner_client, owner, manual
):
    chat = Chat.objects.create(owner=owner)

    def ask():
        response = owner_client.post(
            f"/api/chats/{chat.pk}/messages",
            {"question": "How do I level the front chuck?"},
            content_type="application/json",
        )
        assert response.status_code == 200
        b"".join(response.streaming_content)

    files, calls, callbacks = trace_path(ask, start=("chats/api.py", "post"))
    assert chat.messages.filter(role=Message.Role.ASSISTANT, status="complete").exists()
    # The path: the answering package's modules and what they read (search, models).
    answering = [f for f in files if f.startswith("chats/") or f == "documents/search.py"]
    print("\nfiles of the path:", *answering, sep="\n  ")
    print("all app files that ran:", len(files), files)
    print("callbacks:", {f"{a} <- {b}": sorted(v) for (a, b), v in callbacks.items()})
    back_and_forth = sorted((a, b) for a, b in calls if (b, a) in calls and a < b)
    for a, b in back_and_forth:
        print("back and forth:", a, calls[a, b], b, calls[b, a])
    assert back_and_forth == []
    # No two files of the path import each other.
    mutual = [
        (a, b)
        for a in files
        for b in files
        if a < b and _module(b) in _imports(a) and _module(a) in _imports(b)
    ]
    assert mutual == []
    # The files that hand the question on (call into another file of the path); the
    # others are leaves it reads (models, access, prompts, types, rendering, counters).
    relays = [f for f in answering if any(a == f and b in answering for a, b in calls)]
    print("relays:", relays)
    assert len(relays) <= 8, relays
