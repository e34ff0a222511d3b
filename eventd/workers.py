"""``server.workers = N``: N daemon processes on one port, so a rush can use every core.

The parent starts the embedded PostgreSQL if there is one and applies the
migrations, once; then it runs ``eventd serve --worker K`` for K = 1…N, and
each worker marks its log lines with its K (``[worker 2]``). Each
worker is a whole daemon — actors, writer, mailer, streams — bound to the
same address with SO_REUSEPORT, so the kernel spreads connections across
them. They share the database, where the invariant already holds across
daemons, and Redis, when configured, for streams that see every worker's
changes. Without Redis, a stream only hears changes made through its own
worker; the parent says so at start.

The parent forwards SIGTERM/SIGINT to the workers and exits 0 once they
all have. A worker killed by a signal, or that dies after it was up, is
started again; one that exits with an error at start stops the rest (a bad
config or a taken port would only fail again).
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import trio

from eventd import __version__, daemon
from eventd.config import Config

log = logging.getLogger("eventd")

# A worker that ran at least this long before dying is restarted; sooner, it failed to start.
STARTED_AFTER_SECONDS = 10.0
RESTART_DELAY_SECONDS = 1.0


async def run_workers(config: Config, config_path: str | None) -> int:
    """Run ``server.workers`` worker processes until a signal; the exit status to return."""
    log.info(
        "eventd %s starting %d workers; config: %s",
        __version__, config.server.workers, config.describe_source(),
    )
    url = await daemon.database_url(config)
    applied = await daemon.migrate_url(url)
    log.info("migrations applied: %s", ", ".join(applied) if applied else "none needed")
    if not config.redis.url:
        log.warning(
            "server.workers = %d without redis.url: a websocket stream only sees changes"
            " made through its own worker", config.server.workers,
        )
    env = dict(os.environ)
    if url != config.database.url:  # the parent's embedded server: the workers' too
        env["EVENTD_DATABASE_URL"] = url
    config_args = ["--config", config_path] if config_path else []
    status = 0
    stopping = False
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            processes: list[trio.Process] = []

            async def worker(number: int) -> None:
                nonlocal status
                command = [sys.executable, "-m", "eventd", "serve", "--worker", str(number),
                           *config_args]
                while True:
                    started = trio.current_time()
                    process = await trio.lowlevel.open_process(command, env=env)
                    processes.append(process)
                    log.info("worker %d running (pid %d)", number, process.pid)
                    code = await process.wait()
                    processes.remove(process)
                    if stopping:
                        status = status or (0 if code == 0 else code)
                        return
                    killed = code < 0  # by a signal (OOM killer, kill -9): not its own doing
                    if not killed and trio.current_time() - started < STARTED_AFTER_SECONDS:
                        log.error("worker %d failed at start (exit %d); stopping", number, code)
                        status = code or 1
                        stop_all()
                        return
                    log.error("worker %d died (exit %d); starting it again", number, code)
                    await trio.sleep(RESTART_DELAY_SECONDS)

            def stop_all() -> None:
                nonlocal stopping
                stopping = True
                for process in processes:
                    if process.returncode is None:
                        process.send_signal(signal.SIGTERM)

            async def forward_signals() -> None:
                async for signum in signals:
                    if stopping:  # a second signal: stop now
                        for process in processes:
                            process.kill()
                    else:
                        log.info("received %s; stopping the workers", signal.Signals(signum).name)
                        stop_all()

            async with trio.open_nursery() as workers:
                for number in range(1, config.server.workers + 1):
                    workers.start_soon(worker, number)
                nursery.start_soon(forward_signals)
            nursery.cancel_scope.cancel()
    log.info("all workers stopped")
    return status
