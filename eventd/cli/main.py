"""The ``eventd`` command: serve (the default), migrate, watch, --version."""

from __future__ import annotations

import argparse
import sys

import trio

from eventd import __version__
from eventd.config import ConfigError, load_config
from eventd.errors import Unavailable
from eventd.http.server import CannotListen
from eventd.logs import configure_logging
from eventd.storage.database import CannotConnect


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventd", description="A real-time event-registration daemon."
    )
    parser.add_argument("--version", action="version", version=f"eventd {__version__}")
    # `eventd --config PATH` is `eventd serve --config PATH`, serve being the default.
    parser.add_argument("--config", metavar="PATH", help="TOML config file (or $EVENTD_CONFIG)")
    commands = parser.add_subparsers(dest="command")
    for name, help_text in (
        ("serve", "run the daemon (the default); migrates on start"),
        ("migrate", "apply sql/ migrations, then exit"),
    ):
        sub = commands.add_parser(name, help=help_text)
        # SUPPRESS: an absent --config after the command keeps one given before it.
        sub.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                         help="TOML config file (or $EVENTD_CONFIG)")
        if name == "serve":  # worker N of server.workers processes, started by eventd.workers
            sub.add_argument("--worker", type=int, metavar="N", help=argparse.SUPPRESS)
    watch = commands.add_parser("watch", help="follow one event's stream live in the terminal")
    watch.add_argument("event_id", metavar="EVENT_ID")
    watch.add_argument("--url", help="the daemon, http(s):// or ws(s):// (http://127.0.0.1:3000)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    if command == "watch":  # a client of a running daemon: no config, no database
        from eventd.cli import watch

        return watch.main(args.event_id, args.url)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"eventd: configuration error: {exc}", file=sys.stderr)
        return 2
    worker: int | None = getattr(args, "worker", None)
    configure_logging(config.log, worker)
    from eventd import daemon  # after logging, so import-time logs are formatted

    status = 0
    try:
        if command == "migrate":
            applied = trio.run(daemon.migrate, config)
            print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
        elif config.server.workers > 1 and worker is None:
            from eventd.workers import run_workers

            status = trio.run(run_workers, config, args.config)
        else:
            trio.run(daemon.run_until_signalled, config)
    except* Unavailable as group:
        error = group.exceptions[0]
        if isinstance(error, CannotConnect):  # it says where and why
            print(f"eventd: {error}", file=sys.stderr)
        else:
            cause = error.__cause__ or error
            print(f"eventd: the database cannot be reached: {cause}", file=sys.stderr)
        status = 1
    except* ConfigError as group:  # found at start: the ticket key file, say
        print(f"eventd: configuration error: {group.exceptions[0]}", file=sys.stderr)
        status = 2
    except* CannotListen as group:
        print(f"eventd: {group.exceptions[0]}", file=sys.stderr)
        status = 1
    except* KeyboardInterrupt:
        status = 130
    return status


if __name__ == "__main__":
    sys.exit(main())
