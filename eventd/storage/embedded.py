"""The embedded PostgreSQL behind ``database.url = "embedded"``.

pgserver ships a PostgreSQL build in a wheel; it keeps its cluster under
``database.data_dir`` and stops it when the last process using it exits.
Starting it is blocking work (initdb, pg_ctl), so it runs in a thread.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import trio

DATABASE_NAME = "eventd"


def _start(data_dir_setting: str) -> tuple[Any, str]:
    # pgserver asks platformdirs for a runtime directory it does not need here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", module="platformdirs")
    import pgserver  # imported here: only the embedded mode pays for it

    data_dir = Path(data_dir_setting).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return server, server.get_uri(DATABASE_NAME)


async def start_embedded(data_dir: str) -> tuple[Any, str]:
    """Start (or join) the embedded server; returns it and a URL to its database."""
    return await trio.to_thread.run_sync(_start, data_dir)
