"""One HTTP request from hypercorn to quart and back, in one task.

quart-trio runs every request as a nursery of two tasks — one reads the body
and then waits for the client to leave, the other handles the request — and
waits for the body under a timeout of its own. eventd's bodies are small JSON
documents (at most ``limits.max_body_bytes``), so :class:`Connection` reads the
body first, in the request's own task, then handles the request, then sends
the answer: one task, no nursery, no cancellation to end it. A response whose
body is in memory (every JSON answer) goes to hypercorn as two ASGI messages,
not three.

What this gives up: quart cancels a handler whose client has gone. Here the
handler runs on, within the request deadline, and its answer is dropped. For a
registration that is the better end: the work a client asked for is not torn
in half by its leaving.

:class:`Request` carries the body as read (:attr:`Request.complete_body`) and
what was wrong with it (:attr:`Request.body_error`), raised by the app's first
``before_request`` hook so the error handlers answer it.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable
from quart.utils import encode_headers
from quart.wrappers.response import DataBody
from quart_trio.asgi import TrioASGIHTTPConnection
from quart_trio.wrappers import TrioRequest
from werkzeug.exceptions import RequestTimeout

from eventd.errors import PayloadTooLarge


class Request(TrioRequest):
    """A request whose body was read whole before it is handled."""

    complete_body: bytes = b""
    body_error: Exception | None = None


class Connection(TrioASGIHTTPConnection):
    """quart-trio's HTTP connection, in the request's own task (see the module docstring)."""

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        request = self._create_request_from_scope(send)
        assert isinstance(request, Request)
        await self._read_body(request, receive)
        response = await self.app.handle_request(request)
        body = getattr(response, "response", None)
        if isinstance(body, DataBody):
            await send({
                "type": "http.response.start",
                "status": response.status_code,
                "headers": encode_headers(response.headers),
            })
            await send({
                "type": "http.response.body",
                "body": body.data[body.begin:body.end],
                "more_body": False,
            })
        else:  # a file or a stream: quart's own way, chunk by chunk
            await self._send_streamed(send, receive, response)

    async def _send_streamed(
        self, send: ASGISendCallable, receive: ASGIReceiveCallable, response: Any
    ) -> None:
        """Send a body chunk by chunk until it ends or the client leaves.

        A stream (an export) may run for seconds: one whose client has gone
        is stopped, and closing its body frees what feeds it, rather than
        reading every row for nobody.
        """
        async with trio.open_nursery() as nursery:

            async def stop_when_gone() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_when_gone)
            await self._send_response(send, response)
            nursery.cancel_scope.cancel()

    async def _read_body(self, request: Request, receive: ASGIReceiveCallable) -> None:
        """Read the body into ``request``: whole, or as far as it is allowed to go.

        hypercorn has often queued all of a small request already; then this
        does not wait. A body over ``MAX_CONTENT_LENGTH`` is read no further
        (the 413 closes the connection); one that does not arrive within the
        request deadline is answered 408.
        """
        limit: int = self.app.config["MAX_CONTENT_LENGTH"]
        # hypercorn hands the app its channel's receive: what is queued is
        # taken without a trip through the scheduler per message.
        queued = getattr(getattr(receive, "__self__", None), "receive_nowait", None)
        deadline = math.inf  # set on the first wait
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Any = None
            if queued is not None:
                with contextlib.suppress(trio.WouldBlock):
                    message = queued()
            if message is None:
                if deadline == math.inf:
                    deadline = trio.current_time() + self.app.config["BODY_TIMEOUT"]
                with trio.move_on_at(deadline):
                    message = await receive()
            if message is None:
                request.body_error = RequestTimeout("The request body did not arrive in time.")
                break
            if message["type"] != "http.request":
                break  # http.disconnect: the client has gone, the answer is dropped
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                request.body_error = PayloadTooLarge(
                    f"The body is over the limit of {limit} bytes."
                )
                break
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        data = b"".join(chunks)
        request.complete_body = data
        request.body.append(data)  # for quart's own readers (request.get_data)
        request.body.set_complete()
