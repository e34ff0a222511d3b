"""WebSocket streams: every event's changes (/ws, /), or one event's (/ws/events/{id}).

A per-event stream starts with a ``snapshot`` — or, with ``?since=SEQ``, with
the changes after SEQ from the event actor's replay buffer — taken in the
same step as the subscription, so nothing falls between them. Each
connection's task writes from its own :class:`~eventd.realtime.outbox.Outbox`;
the hub fills it without waiting.
"""

from __future__ import annotations

import logging

import trio
from quart import Blueprint, Response, websocket

from eventd.errors import EventdError, FieldError, NotFound, ValidationFailed
from eventd.http import problems
from eventd.http.context import parse_id, services
from eventd.realtime.hub import Change
from eventd.realtime.outbox import TRY_AGAIN_LATER, Closing, Outbox

log = logging.getLogger(__name__)

blueprint = Blueprint("streams", __name__)

NORMAL_CLOSURE = 1000


@blueprint.websocket("/ws")
@blueprint.websocket("/")
async def every_event() -> None:
    s = services()
    outbox = Outbox(s.config.websocket.queue_size)
    with s.hub.subscribe(outbox):
        await _pump(outbox, close_after_delete=False)


@blueprint.websocket("/ws/events/<event_id>")
async def one_event(event_id: str) -> Response | None:
    s = services()
    try:
        eid = parse_id(event_id, "Event")
        since = _since(websocket.args.get("since"))
        actor = await s.supervisor.watch(eid)
        if actor.deleted:
            raise NotFound(f"Event {event_id} does not exist.")
    except EventdError as error:
        refusal = problems.from_error(error)  # the handshake is refused with this response
        refusal.headers["Connection"] = "close"  # hypercorn ends the connection after it
        return refusal
    # No checkpoint from here to the subscription: the snapshot (or replay)
    # and the live changes after it meet without a gap or an overlap.
    replay = actor.changes_since(since) if since is not None else None
    first = replay if replay is not None else [Change.snapshot(actor.state)]
    # Room for the replay on top of the usual bound: resuming must not overflow.
    outbox = Outbox(s.config.websocket.queue_size + len(first))
    for change in first:
        outbox.put_nowait(change)
    with s.hub.subscribe(outbox, eid):
        await _pump(outbox, close_after_delete=True)
    return None


def _since(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ValidationFailed([FieldError("since", "must be a whole number ≥ 0")])
    return int(text)


async def _pump(outbox: Outbox, *, close_after_delete: bool) -> None:
    """Accept, then send what the outbox gives until a close; ignore what the client sends."""
    s = services()
    ratio = s.config.websocket.almost_full_ratio
    await websocket.accept()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_discard_incoming)
        try:
            while True:
                change = await outbox.get()
                await websocket.send(change.encode(ratio))
                if close_after_delete and change.type == "eventDeleted":
                    raise Closing(NORMAL_CLOSURE)
        except Closing as closing:
            s.hub.unsubscribe(outbox)
            if closing.code == TRY_AGAIN_LATER:
                log.info("closing a websocket that cannot keep up (1013)")
            # The close frame waits behind what the socket still holds: a slow
            # client reads it eventually; a dead one is dropped by hypercorn's
            # read timeout (no pong for three ping intervals).
            await websocket.close(closing.code)
        nursery.cancel_scope.cancel()


async def _discard_incoming() -> None:
    # Clients have nothing to say on these streams; reading keeps close
    # frames flowing, and whatever else arrives is dropped unread.
    while True:
        await websocket.receive()
