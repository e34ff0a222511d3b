"""The daemon's life: graceful stop, a lost database, the command line.

Each test runs its own daemon process on its own database.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import trio

from tests.conftest import future, unique_location
from tests.support import DaemonProcess, run_sql

pytestmark = pytest.mark.slow


async def test_sigterm_finishes_in_flight_requests_and_exits_zero(
    fresh_database_url: str, workdir: Path
):
    daemon = DaemonProcess(fresh_database_url, workdir).start()
    async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
        event = (await client.post("/events", json={
            "name": "Stop", "date": future(), "location": unique_location(),
            "maxAttendees": 1000})).json()
        ids = [uuid.uuid4() for _ in range(200)]
        await trio.to_thread.run_sync(lambda: run_sql(
            fresh_database_url,
            "INSERT INTO attendees (id, name, email) SELECT id, 'x', id || '@e.org'"
            " FROM unnest($1::uuid[]) id", ids))
        answered: list[int] = []

        async def one(attendee_id: uuid.UUID) -> None:
            try:
                r = await client.post("/registrations", json={
                    "eventId": event["id"], "attendeeId": str(attendee_id)})
            except httpx.HTTPError:
                return  # refused: sent after the listener closed
            answered.append(r.status_code)

        async with trio.open_nursery() as nursery:
            for attendee_id in ids:
                nursery.start_soon(one, attendee_id)
            await trio.sleep(0.05)
            code = await trio.to_thread.run_sync(daemon.stop)
    assert code == 0, daemon.log()
    assert answered
    assert set(answered) == {201}, answered
    rows = await trio.to_thread.run_sync(lambda: run_sql(
        fresh_database_url, "SELECT confirmed_count FROM events WHERE id = $1",
        uuid.UUID(event["id"])))
    # Every 201 was committed; nothing was committed without being counted.
    assert rows[0]["confirmed_count"] >= answered.count(201)
    assert "stopped: writer flushed" in daemon.log()


async def test_lost_database_gives_503_then_recovers(
    pg_admin_url: str, fresh_database_url: str, workdir: Path
):
    url = fresh_database_url
    daemon = DaemonProcess(url, workdir, server={"request_timeout_seconds": 3}).start()
    try:
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
            ok = await client.post("/attendees", json={"name": "A", "email": "a@x.org"})
            assert ok.status_code == 201
            name = url.rsplit("/", 1)[1]
            # Refuse new connections to this database and cut the open ones:
            # to the daemon it is a database that went away.
            await trio.to_thread.run_sync(lambda: run_sql(
                pg_admin_url, f"ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
            await trio.to_thread.run_sync(lambda: run_sql(
                pg_admin_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1", name))
            with trio.fail_after(10):
                down = await client.post("/attendees", json={"name": "B", "email": "b@x.org"})
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/problem+json"
            assert down.json()["code"] == "unavailable"
            assert int(down.headers["retry-after"]) >= 1
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json()["status"] == "down"

            await trio.to_thread.run_sync(lambda: run_sql(
                pg_admin_url, f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            for _ in range(150):  # the daemon reconnects by itself
                if (await client.get("/health")).status_code == 200:
                    break
                await trio.sleep(0.1)
            again = await client.post("/attendees", json={"name": "B", "email": "b@x.org"})
            assert again.status_code == 201
    finally:
        assert daemon.stop() == 0, daemon.log()


def test_version_and_migrate_commands(fresh_database_url: str, workdir: Path):
    version = subprocess.run([sys.executable, "-m", "eventd", "--version"],
                             capture_output=True, text=True, check=True)
    assert version.stdout.startswith("eventd ")
    config = workdir / "m.toml"
    config.write_text(f'[database]\nurl = "{fresh_database_url}"\n')
    first = subprocess.run([sys.executable, "-m", "eventd", "migrate", "--config", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "001_init" in first.stdout
    second = subprocess.run([sys.executable, "-m", "eventd", "migrate", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 0
    assert "up to date" in second.stdout


def test_bad_config_stops_the_start_naming_the_key(workdir: Path):
    config = workdir / "bad.toml"
    config.write_text('[server]\nbindd = "127.0.0.1:1"\n')
    result = subprocess.run([sys.executable, "-m", "eventd", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "server.bindd" in result.stderr


def test_a_taken_port_stops_the_start_with_a_clear_message(database_url: str, workdir: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = workdir / "taken.toml"
        config.write_text(f'[server]\nbind = "127.0.0.1:{port}"\n'
                          f'[database]\nurl = "{database_url}"\n')
        result = subprocess.run(
            [sys.executable, "-m", "eventd", "serve", "--config", str(config)],
            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
