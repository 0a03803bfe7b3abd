"""The ASGI app: `/v1/…` Stripe API, `/_emulator/…` control plane, and the hosted pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from stripe_emulator import control, hosted
from stripe_emulator.emulator import DEFAULT_WEBHOOK_SECRET, Emulator, Request, Response
from stripe_emulator.ids import new_id
from stripe_emulator.store import Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class App:
    """ASGI entry point: `/v1/…` API, `/_emulator/…` control plane, hosted pages."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = await _read(scope, receive)
        host = request.headers.get("host")
        if host:
            self.emulator.state.base_url = f"{scope.get('scheme', 'http')}://{host}"
        try:
            response = await self.dispatch(request)
        finally:
            # API calls, control calls and hosted pages all change state: keep it.
            self.emulator.commit()
        response.headers.setdefault("Request-Id", new_id("req"))
        headers = [(b"content-type", response.content_type.encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def dispatch(self, request: Request) -> Response:
        if request.path.startswith("/v1/"):
            return await self.emulator.handle_api(request)
        if request.path.startswith("/_emulator/"):
            return await control.handle(self.emulator, request)
        return hosted.handle(self.emulator.state, request)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.emulator.webhooks.resume()  # deliveries queued before a restart
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.emulator.webhooks.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read(scope: Scope, receive: Receive) -> Request:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return Request(
        method=scope["method"].upper(),
        path=unquote(scope["path"]),
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=b"".join(chunks),
    )


def create_app(
    webhook_url: str | None = None,
    webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
    *,
    check_shapes: bool = False,
    data_dir: Path | None = None,
    reset: bool = False,
    webhook_time_scale: float = 1.0,
) -> App:
    """The emulator app; with `data_dir` its state lives in a SQLite file there.

    `reset` forgets what the data dir holds (the documented reset, like `POST /_emulator/reset`).
    """
    store = Store.in_dir(data_dir) if data_dir is not None else None
    if store is not None and reset:
        store.reset()
    emulator = Emulator(
        webhook_url,
        webhook_secret,
        check_shapes=check_shapes,
        store=store,
        webhook_time_scale=webhook_time_scale,
    )
    return App(emulator)
