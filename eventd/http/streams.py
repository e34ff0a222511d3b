"""WebSocket streams: every event's changes (/ws, /), or one event's (/ws/events/{id}).

A per-event stream starts with a ``snapshot`` — or, with ``?since=SEQ``, with
the changes after SEQ from the event actor's replay buffer — taken in the
same step as the subscription, so nothing falls between them; an event with
an admission queue then gets its latest ``queueUpdate``. While Redis is
away the actor may have missed other daemons' changes: the snapshot is then
the event's row when that is newer, and a resume gets a snapshot too. The
hub fills each connection's outbox without waiting; the fan-out
(:mod:`eventd.http.fanout`) writes it to the socket.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask.sansio.blueprints import BlueprintSetupState
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, WebsocketScope
from quart import Blueprint, Response, current_app, websocket
from quart.asgi import ASGIWebsocketConnection
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIWebsocketConnection

from eventd.errors import EventdError, FieldError, NotFound, ValidationFailed
from eventd.http import problems
from eventd.http.context import parse_id, services
from eventd.http.fanout import Fanout, Stream
from eventd.http.raw_websocket import claim_raw_websocket
from eventd.realtime.changes import Change
from eventd.realtime.outbox import TRY_AGAIN_LATER

log = logging.getLogger(__name__)

blueprint = Blueprint("streams", __name__)

_FANOUT = "eventd.fanout"


class _NothingToReceive:
    async def receive(self) -> str | bytes:
        raise RuntimeError("eventd's websocket streams never read: clients' messages are dropped")


class StreamingWebsocketConnection(TrioASGIWebsocketConnection):
    """quart-trio's ASGI websocket connection without its nursery and receiving task.

    quart-trio runs each websocket view beside a task that feeds it the
    client's messages and cancels it on disconnect. The stream views read
    nothing (what clients send is dropped, see
    :func:`~eventd.http.raw_websocket.claim_raw_websocket`) and learn of a disconnect
    from their :class:`~eventd.http.raw_websocket.RawWebsocket`, so the view runs in
    the ASGI task itself: two tasks and a nursery fewer for every connection
    held open, which is most of an idle connection's memory.
    """

    def __init__(self, app: QuartTrio, scope: WebsocketScope) -> None:  # no message channel
        self.app = app
        self.scope = scope
        self._accepted = False
        self._closed = False
        self.receive_channel = _NothingToReceive()  # type: ignore[assignment]

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        websocket = self._create_websocket_from_scope(send)
        await ASGIWebsocketConnection.handle_websocket(self, websocket, send)


for _name in ("_create_websocket_from_scope", "handle_websocket"):  # what the class relies on
    if not callable(getattr(TrioASGIWebsocketConnection, _name, None)):
        raise RuntimeError(f"this quart-trio has no TrioASGIWebsocketConnection.{_name}")


@blueprint.record_once
def _run_websockets_lean(state: BlueprintSetupState) -> None:
    # Every websocket route of the app is in this blueprint.
    app: Any = state.app
    app.asgi_websocket_class = StreamingWebsocketConnection


@blueprint.before_app_serving
async def _start_fanout() -> None:
    fanout = Fanout(services().config.websocket.ping_interval_seconds)
    current_app.extensions[_FANOUT] = fanout
    await current_app.nursery.start(fanout.run)  # type: ignore[attr-defined]


@blueprint.websocket("/ws")
@blueprint.websocket("/")
async def every_event() -> Response | None:
    try:
        stream = _subscribed_stream(None, [])
    except EventdError as error:
        return _refusal(error)
    await _serve(stream)
    return None


@blueprint.websocket("/ws/events/<event_id>")
async def one_event(event_id: str) -> Response | None:
    try:
        stream = await _event_stream(event_id)
    except EventdError as error:
        return _refusal(error)
    await _serve(stream)
    return None


async def _event_stream(event_id: str) -> Stream:
    """One event's stream, holding its snapshot or replay, subscribed.

    A function of its own so that nothing the stream has sent stays referenced
    by the view for as long as the connection is open.
    """
    eid = parse_id(event_id, "Event")
    since = _since(websocket.args.get("since"))
    s = services()
    # While Redis is away the actor may lack other daemons' changes: the row has them.
    row = await s.reads.row_if_out_of_touch(eid)
    actor = await s.supervisor.watch(eid)
    if actor.deleted:
        raise NotFound(f"Event {eid} does not exist.")
    # No checkpoint from here to the subscription: the snapshot (or replay)
    # and the live changes after it meet without a gap or an overlap.
    if row is not None:  # a replay would miss those changes: a snapshot, the newer one
        first = [Change.snapshot(row if row.version > actor.state.version else actor.state)]
    else:
        replay = actor.changes_since(since) if since is not None else None
        first = replay if replay is not None else [Change.snapshot(actor.state)]
    stream = _subscribed_stream(eid, first)
    stream.outbox.floor = first[-1].seq if first else actor.state.version
    queue = s.hub.current_state(eid)
    if queue is not None:  # the queue where it stands, right after the snapshot or replay
        stream.outbox.put_state_nowait(queue)
    return stream


def _subscribed_stream(event_id: uuid.UUID | None, first: list[Change]) -> Stream:
    """A stream of every change (``event_id`` None) or one event's, ``first`` queued first."""
    raw = claim_raw_websocket()
    if raw is None:
        raise ValidationFailed([FieldError("protocol", "streams are served over HTTP/1.1")])
    s = services()
    stream = Stream(
        current_app.extensions[_FANOUT],
        raw,
        # Room for a replay on top of the usual bound: resuming must not overflow.
        s.config.websocket.queue_size + len(first),
        s.config.websocket.almost_full_ratio,
        close_after_delete=event_id is not None,
    )
    for change in first:
        stream.outbox.put_nowait(change)
    s.hub.add_subscriber(stream.outbox, event_id)
    return stream


def _refusal(error: EventdError) -> Response:
    refusal = problems.from_error(error)  # the handshake is refused with this response
    refusal.headers["Connection"] = "close"  # hypercorn ends the connection after it
    return refusal


def _since(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ValidationFailed([FieldError("since", "must be a whole number ≥ 0")])
    return int(text)


async def _serve(stream: Stream) -> None:
    """Feed the client until its stream is to close, then close it; unsubscribe.

    What the client sends is ignored.
    """
    hub = services().hub
    try:
        await websocket.accept()
        code = await stream.serve()
    finally:
        hub.unsubscribe(stream.outbox)
    if code is None:
        return  # the client has gone
    if code == TRY_AGAIN_LATER:
        log.info("closing a websocket that cannot keep up (1013)")
    # The close frame waits behind what the socket still holds: a slow client
    # reads it eventually; a dead one is dropped by hypercorn's read timeout
    # (no pong for three ping intervals) or the kernel's TCP_USER_TIMEOUT.
    await websocket.close(code)
