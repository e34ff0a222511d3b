"""eventd.storage.database: a database that cannot be opened says where and why.

Rules of this file: loopback only; real things to fail against — a port
nothing listens on, a database and a role the real PostgreSQL does not have,
a listening socket that never answers (driven by the autojump clock, so no
test waits out a timeout). Every URL carries a password, and no message may
repeat it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio.testing

from eventd.errors import Unavailable
from eventd.storage.database import CannotConnect, open_database
from tests.support import free_port

PASSWORD = "pw-Zq81-never-shown"
TIMEOUT_SECONDS = 30.0


def url_on(admin_url: str, *, user: str | None = None, database: str) -> str:
    """``admin_url``'s server, as ``user`` (its own by default) with PASSWORD, on ``database``."""
    parts = urllib.parse.urlsplit(admin_url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    name = user or userinfo.partition(":")[0] or "postgres"
    return urllib.parse.urlunsplit(
        parts._replace(netloc=f"{name}:{PASSWORD}@{hosts}", path=f"/{database}")
    )


def address_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}" if parts.hostname else ""


async def refusal(url: str) -> str:
    """Open ``url``, expect CannotConnect (an Unavailable), return its message."""
    with pytest.raises(CannotConnect) as info:
        async with open_database(url, pool_size=2, timeout_seconds=TIMEOUT_SECONDS):
            pass
    assert isinstance(info.value, Unavailable)
    message = str(info.value)
    assert PASSWORD not in message
    assert address_of(url) in message
    return message


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


async def test_a_closed_port_is_named_as_refused():
    port = free_port()
    message = await refusal(f"postgresql://eventd:{PASSWORD}@127.0.0.1:{port}/shop")
    assert f'database "shop" at 127.0.0.1:{port}' in message
    assert 'user "eventd"' in message
    assert "connection refused" in message


async def test_a_database_that_does_not_exist_is_named(pg_admin_url: str):
    missing = f"eventd_missing_{uuid.uuid4().hex[:8]}"
    message = await refusal(url_on(pg_admin_url, database=missing))
    assert f'database "{missing}" at ' in message
    assert "does not exist" in message


async def test_a_role_the_server_refuses_is_named(pg_admin_url: str):
    ghost = f"eventd_ghost_{uuid.uuid4().hex[:8]}"
    message = await refusal(url_on(pg_admin_url, user=ghost, database="postgres"))
    assert 'database "postgres" at ' in message
    assert f'refused user "{ghost}"' in message
    assert f'role "{ghost}" does not exist' in message  # the server's own words


async def test_a_server_that_never_answers_times_out(
    black_hole: int, autojump_clock: trio.testing.MockClock
):
    url = f"postgresql://eventd:{PASSWORD}@127.0.0.1:{black_hole}/shop"
    message = await refusal(url)
    assert f'database "shop" at 127.0.0.1:{black_hole}' in message
    assert f"did not answer within {TIMEOUT_SECONDS:g} s" in message


def test_the_command_prints_the_cause_in_one_line(pg_admin_url: str, tmp_path: Path):
    missing = f"eventd_missing_{uuid.uuid4().hex[:8]}"
    url = url_on(pg_admin_url, database=missing)
    config = tmp_path / "eventd.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTD_")}
    result = subprocess.run(
        [sys.executable, "-m", "eventd", "migrate", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f'eventd: database "{missing}" at {address_of(url)}')
    assert "does not exist" in result.stderr
    assert "cannot be reached right now" not in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


async def test_a_cut_off_statement_closes_its_session_instead_of_reusing_it(database_url: str):
    """A statement cancelled mid-flight leaves the session in an unknown state:
    it is closed at once (no reset waiting on the server), and the next
    statement runs on another session."""
    async with open_database(database_url, pool_size=1, timeout_seconds=TIMEOUT_SECONDS) as db:
        first = await db.fetchval("SELECT pg_backend_pid()")
        with trio.move_on_after(0.2) as waited:
            await db.fetchval("SELECT pg_sleep(30)")
        assert waited.cancelled_caught
        second = await db.fetchval("SELECT pg_backend_pid()")
        assert second != first
        # A statement the server refused leaves its session fit for the next one.
        with pytest.raises(Exception, match="division by zero"):
            await db.fetchval("SELECT 1 / 0")
        assert await db.fetchval("SELECT pg_backend_pid()") == second



async def test_a_session_the_server_ended_is_unavailable_then_replaced(database_url: str):
    """The server ends a session in use (an administrator, a restart): the statement on
    it is Unavailable, nothing else, and the next one gets a new session."""
    async with open_database(database_url, pool_size=1, timeout_seconds=TIMEOUT_SECONDS) as db, \
            open_database(database_url, pool_size=1, timeout_seconds=TIMEOUT_SECONDS) as admin:
        async with db.connection() as conn:
            ended = await conn.fetchval("SELECT pg_backend_pid()")
            await admin.fetchval("SELECT pg_terminate_backend($1)", ended)
            with pytest.raises(Unavailable):
                await conn.fetchval("SELECT 1")
        assert await db.fetchval("SELECT pg_backend_pid()") != ended
