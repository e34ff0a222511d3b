"""``eventd watch EVENT_ID``: follow one event's stream in the terminal.

Prints the event's snapshot, then one line per change (time, type, seq,
counts, warning); on a terminal a capacity bar stays on the last line. When
the connection drops — the daemon restarting — it reconnects with backoff
and resumes with ``?since=<last seq>``, so nothing in between is missed (or
a fresh snapshot says where things stand), and says so in one line. Exits 0
after ``eventDeleted`` (or when the event is found gone on reconnecting), 1
when the event does not exist or the URL never answered within
``GIVE_UP_SECONDS``, 2 for a bad ``--url``, 130 on Ctrl-C.

Times are shown in the event's own zone with its abbreviation ("Sat 1 Jun
2030, 18:00 – 19:00 CEST"), the start also in UTC as the API gives it.

Needs no configuration and no database: only the daemon's URL.
"""

from __future__ import annotations

import json
import signal
import sys
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
    open_websocket_url,
)

from eventd.timezones import DEFAULT_TIMEZONE, local_span, local_time

DEFAULT_URL = "http://127.0.0.1:3000"
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 10.0
DISCONNECT_TIMEOUT_SECONDS = 2.0
# A URL that has never answered is likely a typo or a daemon not started: stop
# trying after this long. One that answered once is retried for as long as it takes.
GIVE_UP_SECONDS = 30.0
BAR_WIDTH = 30
INTERRUPTED = 130  # the shell's code for a command ended by SIGINT

WARNING_TEXT = {"almostFull": "ALMOST FULL", "full": "FULL"}


class WatchError(Exception):
    """Watching cannot start or go on (bad URL, unknown event); the message says why."""


def stream_url(base: str, event_id: str) -> str:
    """The event's WebSocket URL from the daemon's http(s):// or ws(s):// URL."""
    parts = urllib.parse.urlsplit(base.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise WatchError(f"--url must be an http(s):// or ws(s):// URL, not {base!r}")
    path = parts.path.rstrip("/") + "/ws/events/" + urllib.parse.quote(event_id, safe="")
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))


# --- formatting (pure, so it can be tested without a daemon) -------------------------


def capacity_bar(registered: int, maximum: int, width: int = BAR_WIDTH, held: int = 0) -> str:
    """Confirmed seats as ``#``, held and offered ones after them as ``+``."""
    if maximum <= 0:
        return "[" + "." * width + "]"
    filled = min(width, round(width * registered / maximum))
    holding = min(width - filled, round(width * (registered + held) / maximum) - filled)
    return "[" + "#" * filled + "+" * holding + "." * (width - filled - holding) + "]"


def counts_text(counts: dict[str, Any]) -> str:
    # A daemon from before holds sends no heldCount: it has none.
    held = counts.get("heldCount", 0)
    line = (
        f"{counts['registeredCount']}/{counts['maxAttendees']} registered, "
        + (f"{held} held, " if held else "")
        + f"{counts['availableSpots']} available, {counts['waitlistCount']} waitlisted"
    )
    warning = WARNING_TEXT.get(counts.get("warning") or "")
    return f"{line}  {warning}" if warning else line


def status_line(counts: dict[str, Any]) -> str:
    bar = capacity_bar(counts["registeredCount"], counts["maxAttendees"],
                       held=counts.get("heldCount", 0))
    return f"{bar} {counts_text(counts)}"


def _moment(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def when_text(event: dict[str, Any]) -> str:
    """When the event is, in its own zone: "Sat 1 Jun 2030, 18:00 – 19:00 CEST".

    A daemon from before time zones sends none: its events are read in UTC.
    Times that are not RFC 3339 are shown as they came.
    """
    zone = str(event.get("timezone") or DEFAULT_TIMEZONE)
    start, end = _moment(event.get("date")), _moment(event.get("endsAt"))
    if start is None:
        return f"{event.get('date')} (until {event.get('endsAt')})"
    if end is None:
        return local_time(start, zone)
    return local_span(start, end, zone)


def snapshot_lines(message: dict[str, Any]) -> list[str]:
    """The header printed once, from the first snapshot: what the event is."""
    event = message["data"]
    zone = event.get("timezone") or DEFAULT_TIMEZONE
    when = when_text(event)
    if _moment(event.get("date")) is not None:
        when += f" ({zone}; starts {event['date']})"
    return [
        f"{event['name']}",
        f"  when:     {when}",
        f"  where:    {event['location']}",
        f"  event:    {event['id']}",
        f"  capacity: {status_line(event)}",
    ]


def log_line(message: dict[str, Any]) -> str:
    """One message as one line: time, type, seq, then what it says."""
    at = str(message.get("at", ""))
    clock = at.partition("T")[2] or at
    kind = str(message.get("type", "?"))
    data = message.get("data") or {}
    if kind == "eventDeleted":
        detail = "the event was deleted"
    elif kind == "eventUpdated":
        detail = f"{data['name']} | {when_text(data)} | {data['location']} | {counts_text(data)}"
    elif "registeredCount" in data:
        detail = counts_text(data)
    else:
        detail = json.dumps(data, separators=(",", ":"))
    return f"{clock:<13} {kind:<19} seq {message.get('seq')}  {detail}"


# --- the terminal ------------------------------------------------------------------------


class Screen:
    """Lines scroll; on a terminal the newest capacity bar stays on the last line.

    Not a terminal (a pipe, a file, a test): plain lines only, no escape codes.
    """

    CLEAR_LINE = "\r\x1b[2K"

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.live = out.isatty()
        self.status = ""

    def line(self, text: str) -> None:
        self._write(self.out, text)

    def notice(self, text: str) -> None:
        """Connection news, on stderr: the stream on stdout stays only the event's."""
        self._write(self.err, f"eventd watch: {text}")

    def set_status(self, text: str) -> None:
        self.status = text
        if self.live:
            self.out.write(self.CLEAR_LINE + text)
            self.out.flush()

    def finish(self) -> None:
        if self.live and self.status:
            self.out.write("\n")
            self.out.flush()
            self.status = ""

    def _write(self, stream: TextIO, text: str) -> None:
        if self.live:
            self.out.write(self.CLEAR_LINE)
            self.out.flush()
        stream.write(text + "\n")
        stream.flush()
        if self.live and self.status:
            self.out.write(self.status)
            self.out.flush()


# --- following the stream ---------------------------------------------------------------


@dataclass
class Follower:
    """What has been seen of one event's stream, and how to show the next message."""

    screen: Screen
    last_seq: int | None = None
    deleted: bool = False

    def url(self, base_url: str) -> str:
        return base_url if self.last_seq is None else f"{base_url}?since={self.last_seq}"

    def receive(self, message: dict[str, Any]) -> None:
        kind, seq = message.get("type"), message.get("seq")
        if not isinstance(seq, int):
            return
        if kind != "snapshot" and self.last_seq is not None and seq <= self.last_seq:
            return  # already shown before a reconnect
        first = self.last_seq is None
        self.last_seq = seq
        if kind == "snapshot" and first:
            for text in snapshot_lines(message):
                self.screen.line(text)
        else:
            self.screen.line(log_line(message))
        if kind == "eventDeleted":
            self.deleted = True
            self.screen.set_status("")
            return
        data = message.get("data") or {}
        if "registeredCount" in data:
            self.screen.set_status(status_line(data))


async def follow(
    base_url: str, screen: Screen, *, give_up_seconds: float = GIVE_UP_SECONDS
) -> None:
    """Follow the stream until the event is deleted; reconnect whenever it drops.

    Raises :class:`WatchError` if ``base_url`` has not answered once within
    ``give_up_seconds``.
    """
    follower = Follower(screen)
    delay = RECONNECT_FIRST_SECONDS
    give_up_at = trio.current_time() + give_up_seconds
    connected = dropped = False
    while not follower.deleted:
        url = follower.url(base_url)
        try:
            async with open_websocket_url(
                url,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                disconnect_timeout=DISCONNECT_TIMEOUT_SECONDS,
            ) as ws:
                if dropped:
                    after = "" if follower.last_seq is None else f" after seq {follower.last_seq}"
                    screen.notice(f"reconnected; resuming{after}")
                connected, dropped = True, False
                while not follower.deleted:
                    follower.receive(json.loads(await ws.get_message()))
                    delay = RECONNECT_FIRST_SECONDS  # a working connection earns a fast retry
        except ConnectionRejected as rejected:
            if rejected.status_code == 404 and follower.last_seq is not None:
                # Deleted while we were away: its eventDeleted went to nobody.
                screen.notice("the event no longer exists; it was deleted while disconnected")
                return
            detail = _detail(rejected) or "the daemon refused the stream."
            raise WatchError(f"{detail} (HTTP {rejected.status_code} from {url})") from None
        except HandshakeError as exc:  # also a close that timed out, once deleted: done
            if not follower.deleted:
                dropped = dropped or connected
                if not connected and trio.current_time() >= give_up_at:
                    raise WatchError(
                        f"{url} has not answered in {give_up_seconds:g}s ({_reason(exc)});"
                        " giving up: is the daemon running, and is --url right?"
                    ) from None
                screen.notice(f"cannot reach {url} ({_reason(exc)}); retrying in {delay:g}s")
        except ConnectionClosed as closed:
            dropped = True
            why = f"{closed.reason.code} {closed.reason.name}" if closed.reason else "dropped"
            screen.notice(f"connection closed ({why}); reconnecting in {delay:g}s")
        if not follower.deleted:
            await trio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)


def _reason(exc: HandshakeError) -> str:
    if isinstance(exc, ConnectionTimeout):
        return "timed out"
    cause = exc.__cause__
    return (cause.strerror or str(cause)) if isinstance(cause, OSError) else str(exc)


def _detail(rejected: ConnectionRejected) -> str:
    """The problem+json ``detail`` of a refused handshake, e.g. "Event … does not exist."."""
    try:
        problem = json.loads(rejected.body or b"{}")
    except ValueError:
        return ""
    return str(problem.get("detail") or "") if isinstance(problem, dict) else ""


async def _watch_until_done(base_url: str, screen: Screen) -> int:
    """Follow the stream; SIGINT ends it quietly with 130."""
    status = INTERRUPTED
    with trio.open_signal_receiver(signal.SIGINT) as interrupts:
        async with trio.open_nursery() as nursery:

            async def stop_on_interrupt() -> None:
                async for _ in interrupts:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_interrupt)
            try:
                await follow(base_url, screen)
                status = 0
            except WatchError as exc:
                screen.finish()
                screen.notice(str(exc))
                status = 1
            nursery.cancel_scope.cancel()
    return status


def main(event_id: str, url: str | None = None) -> int:
    screen = Screen(sys.stdout, sys.stderr)
    try:
        return trio.run(_watch_until_done, stream_url(url or DEFAULT_URL, event_id), screen)
    except WatchError as exc:  # a bad --url
        print(f"eventd watch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before or after the signal receiver was in place
        return INTERRUPTED
    finally:
        screen.finish()
