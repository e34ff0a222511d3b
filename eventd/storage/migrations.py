"""Schema migrations: the tables' history, then every function's current definition.

``sql/NNN_name.sql`` are forward-only: applied in order, each once, in its
own transaction, recorded in ``schema_migrations``. ``sql/functions/*.sql``
hold each function's current definition: all of them are applied after the
numbered files on every run, in one transaction, so a changed function file
takes effect without a numbered file (``sql/README.md`` has the rules).
Everything runs under a session advisory lock, so that two daemons starting
together apply each numbered file once and never replace a function at the
same moment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from eventd.storage.database import Connection, Database

# Any fixed 64-bit number works; this one spells "eventd" in ASCII.
MIGRATION_LOCK_ID = 0x657665_6E7464
FUNCTIONS_DIR = "functions"
_FILE_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_FUNCTION_FILE_NAME = re.compile(r"^[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class FunctionFile:
    name: str
    sql: str


def migrations_dir() -> Path:
    """``sql/`` inside an installed wheel, else the source tree's ``sql/``."""
    packaged = Path(str(resources.files("eventd"))) / "sql"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "sql"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or migrations_dir()
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file name {path.name!r} is not NNN_name.sql")
        found.append(Migration(int(match[1]), path.stem, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a number in {directory}")
    return found


def load_functions(directory: Path | None = None) -> list[FunctionFile]:
    """``functions/*.sql`` under ``directory``, in the order they are applied (by name)."""
    found = []
    for path in sorted(((directory or migrations_dir()) / FUNCTIONS_DIR).glob("*.sql")):
        if not _FUNCTION_FILE_NAME.match(path.name):
            raise ValueError(f"function file name {path.name!r} is not name.sql")
        found.append(FunctionFile(path.stem, path.read_text(encoding="utf-8")))
    return found


async def apply_migrations(db: Database, directory: Path | None = None) -> list[str]:
    """Apply the numbered files not applied yet, then every function file.

    Returns the names of the numbered files applied now: the function files
    are applied on every run, whether anything changed or not.
    """
    migrations = load_migrations(directory)
    functions = load_functions(directory)
    applied_now: list[str] = []
    async with db.connection() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for migration in migrations:
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await _execute_file(conn, migration.sql, f"{migration.name}.sql")
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
                applied_now.append(migration.name)
            async with conn.transaction():
                for function in functions:
                    await _execute_file(
                        conn, function.sql, f"{FUNCTIONS_DIR}/{function.name}.sql")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now


async def _execute_file(conn: Connection, sql: str, name: str) -> None:
    """Run one file's statements; a failure names the file it came from."""
    try:
        await conn.execute(sql)
    except Exception as exc:
        exc.add_note(f"while applying sql/{name}")
        raise
