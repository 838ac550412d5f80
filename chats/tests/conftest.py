from __future__ import annotations

import json
import threading

import pytest

from chats.answering import runner as answer_runner
from documents.services import document_ingest
from documents.tests.conftest import make_document

MANUAL = b"""# RoboRail calibration

## Chuck rotation

Put a spirit level on top of the front chuck and turn it until the chuck is level.
Then select Done on the remote control to save the home position.

## Network

When the PMAC controller has no communication, check the yellow Ethernet cable in the
control cabinet and ping 192.168.7.10 from the control PC.
"""


def events(response) -> list[tuple[str, dict]]:
    """Parse a Server-Sent Events response into (event, data) pairs."""
    body = b"".join(response.streaming_content).decode()
    parsed = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        parsed.append((lines["event"], json.loads(lines["data"])))
    return parsed


@pytest.fixture
def manual(owner, media):
    document = make_document(owner, name="roborail.md", content=MANUAL)
    assert document_ingest(document_id=document.pk) == "ready"
    return document


@pytest.fixture
def in_worker(settings, redis_url, monkeypatch):
    settings.ANSWERS_IN_WORKER = True
    settings.ANSWER_START_TIMEOUT_S = 30
    # A runner's dispatcher notices its stop within this (tests stop one each).
    monkeypatch.setattr(answer_runner, "DISPATCH_BLOCK_MS", 200)


@pytest.fixture
def runner(in_worker):
    """The worker's answer threads, in this process (a separate DB connection each)."""
    stop = threading.Event()
    threads = answer_runner.AnswerRunner(threads=2, stop=stop).start()
    yield
    stop.set()
    for thread in threads:
        thread.join(timeout=30)  # lets an answer in progress end
