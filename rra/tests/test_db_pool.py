"""The connection pool (rra/dbpool.py, built by the backend rra/postgres): after a long
outage it reconnects within about a second of the server's return (psycopg_pool alone
waits 1, 2, 4, 8 s... between attempts), and its check finds a connection the server
ended without sending a query on connections in use."""

from __future__ import annotations

import contextlib
import os
import socket
import threading

import psycopg
import pytest
from django.db import connection, connections

from rra import dbpool

pytestmark = pytest.mark.django_db


class Gate:
    """A TCP server on 127.0.0.1 in front of the test database's socket: while shut,
    it accepts each connection and closes it at once (the server is down: every
    attempt fails), counting them; while open, it passes each connection through."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.open = False
        self.refused = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                self.refused += 1
                client.close()
                continue
            server = socket.socket(socket.AF_UNIX)
            server.connect(self.target)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self._closing = True
        self.listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _pool_through(gate: Gate, **pool_options):
    """A connection of the project's backend (DATABASES' ENGINE) to the test database
    through the gate; its .pool is the pool that backend builds."""
    settings_dict = {
        **connection.settings_dict,
        "HOST": "127.0.0.1",
        "PORT": str(gate.port),
        "OPTIONS": {
            **{k: v for k, v in connection.settings_dict["OPTIONS"].items() if k != "pool"},
            "pool": pool_options,
        },
        "CONN_MAX_AGE": 0,
    }
    return type(connections["default"])(settings_dict, alias="pool-test")


def _socket_of(settings_dict: dict) -> str:
    return os.path.join(settings_dict["HOST"], f".s.PGSQL.{settings_dict['PORT'] or 5432}")


def test_after_a_long_outage_the_pool_reconnects_within_a_second_or_two_of_the_server_return():
    gate = Gate(_socket_of(connection.settings_dict))
    # One connection and no room to grow: the waiting request is served by the pool's
    # reconnection attempts alone, as every request is once an outage outlasts the
    # growth attempt's own first tries.
    wrapper = _pool_through(gate, min_size=1, max_size=1, timeout=3.0, reconnect_timeout=120)
    pool = wrapper.pool
    try:
        pool.open(wait=False)
        # Down for 8 s: psycopg_pool's own attempts come at 0, 1, 3 and 7 s, the next at
        # 15 s; capped, one about every second.
        threading.Event().wait(8)
        refused_while_down = gate.refused
        gate.open = True
        conn = pool.getconn(timeout=3.0)  # PoolTimeout unless an attempt comes soon
        try:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            pool.putconn(conn)
        assert refused_while_down >= 6, refused_while_down  # psycopg_pool alone: 4
    finally:
        wrapper.close_pool()
        gate.close()


def test_a_connection_the_server_ended_is_not_handed_out():
    gate = Gate(_socket_of(connection.settings_dict))
    gate.open = True
    # check_after: an hour, so only the socket's state can tell the connection is gone.
    wrapper = _pool_through(gate, min_size=1, max_size=1, timeout=5.0, check_after=3600)
    pool = wrapper.pool
    try:
        pool.open(wait=True)
        with pool.connection() as conn:
            pid = conn.info.backend_pid
        with pool.connection() as conn:  # the same connection, checked without a query
            assert conn.info.backend_pid == pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone() == (True,)
        threading.Event().wait(0.5)  # the FATAL message reaches the client's socket
        with pool.connection() as conn:
            assert conn.info.backend_pid != pid
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        wrapper.close_pool()
        gate.close()


def test_the_check_sends_a_query_only_when_the_connection_was_idle_or_has_news():
    with psycopg.connect(**connection.get_connection_params()) as conn:
        conn.autocommit = True
        sent = []
        conn.add_notice_handler(lambda notice: None)
        original = conn.execute

        def counting(query, *args, **kwargs):
            sent.append(query)
            return original(query, *args, **kwargs)

        conn.execute = counting
        pool = type("P", (), {"check_after": 3600})()
        conn._pool = pool
        dbpool.quick_check(conn)  # never checked: the empty query
        dbpool.quick_check(conn)  # checked a moment ago, nothing to read: none
        assert sent == [""]
        pool.check_after = 0  # idle long enough: the empty query again
        dbpool.quick_check(conn)
        assert sent == ["", ""]
        conn.close()
        with pytest.raises(psycopg.OperationalError):
            dbpool.quick_check(conn)
