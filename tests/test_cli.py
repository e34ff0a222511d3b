"""The ``eventd`` command as a newcomer meets it: ``eventd --config PATH``, and
the start-up log that says where the configuration came from and who may
use the admin routes.

Rules of this file: loopback only, ports picked free; the daemon runs as a
subprocess with no EVENTD_* variables but those a test sets; its database
URL carries a password and its config an admin token, and neither may reach
the log; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from eventd.cli.main import main
from tests.support import free_port

PASSWORD = "pw-Qx7-never-logged"
TOKEN = "tok-Vb3-never-logged"
START_SECONDS = 30.0


def with_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0] or "postgres"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{PASSWORD}@{hosts}"))


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], port: int, cwd: Path) -> Iterator[Path]:
    """``python -m eventd *args`` until it serves on ``port``; SIGTERM after; yields its log."""
    log_path = cwd / "eventd.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTD_")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "eventd", *args], stdout=log,
                                   stderr=subprocess.STDOUT, env=clean | env, cwd=cwd)
    try:
        deadline = time.monotonic() + START_SECONDS
        while b"eventd: listening on" not in log_path.read_bytes():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        yield log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    assert code == 0, log_path.read_text()


def test_config_without_a_command_serves_from_that_file(database_url: str, tmp_path: Path):
    port = free_port()
    config = tmp_path / "eventd.toml"
    config.write_text(f'[server]\nbind = "127.0.0.1:{port}"\n[auth]\nadmin_tokens = ["{TOKEN}"]\n')
    env = {"EVENTD_DATABASE_URL": with_password(database_url), "EVENTD_EMAIL_TRANSPORT": "none"}
    with running(["--config", str(config)], env, port, tmp_path) as log_path:
        pass
    log = log_path.read_text()
    assert f"config: {config}; overridden by EVENTD_DATABASE_URL, EVENTD_EMAIL_TRANSPORT" in log
    assert "admin routes: token-guarded" in log
    assert PASSWORD not in log
    assert TOKEN not in log


def test_defaults_and_open_admin_routes_are_said_at_start(database_url: str, tmp_path: Path):
    port = free_port()
    env = {"EVENTD_DATABASE_URL": with_password(database_url),
           "EVENTD_SERVER_BIND": f"127.0.0.1:{port}"}
    with running([], env, port, tmp_path) as log_path:
        pass
    log = log_path.read_text()
    assert "config: defaults (no config file); overridden by EVENTD_DATABASE_URL," in log
    assert "admin routes: open, to this machine only" in log
    assert PASSWORD not in log


@pytest.mark.parametrize("before", [True, False])
def test_config_goes_before_or_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], before: bool
):
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nbindd = "127.0.0.1:1"\n')
    args = ["--config", str(config), "serve"] if before else ["serve", "--config", str(config)]
    assert main(args) == 2
    assert "configuration error: unknown config key server.bindd" in capsys.readouterr().err


def test_config_alone_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nbindd = "127.0.0.1:1"\n')
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "server.bindd" in err
    assert "invalid choice" not in err
