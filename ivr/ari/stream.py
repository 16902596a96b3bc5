"""The ARI events WebSocket, reconnected for as long as the controller runs.

`connections()` is an async iterator in the style of `websockets.connect`: each item is one
live connection; when it drops, the loop backs off (jittered, capped) and yields the next one.
The caller resyncs after every connection, because events sent while we were away are lost.

Retryable: connection refused, a clean close by Asterisk (restart), a dead peer detected by the
heartbeat, 5xx. Fatal: 401/403 (credentials are a configuration error) and ApplicationReplaced
(another controller took our app name — two controllers would fight over every call).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator

import aiohttp
import structlog

from ivr.ari import events
from ivr.ari.client import AriClient
from ivr.errors import AppReplaced, AriAuthError, AriError

log = structlog.get_logger("ivr.ari")


def backoff(initial: float = 0.2, factor: float = 2.0, cap: float = 5.0) -> Iterator[float]:
    """Full-jitter exponential delays: 0..0.2, 0..0.4, ... capped at `cap` seconds."""
    delay = initial
    while True:
        yield random.uniform(delay / 2, delay)
        delay = min(cap, delay * factor)


class Connection:
    """One live events WebSocket. Iterate it for parsed events; ends when the socket closes."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def __aiter__(self) -> AsyncIterator[events.Event]:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    raw = json.loads(msg.data)
                except ValueError:
                    log.warning("ari_event_undecodable", size=len(msg.data))
                    continue
                event = events.parse(raw)
                if isinstance(event, events.ApplicationReplaced):
                    raise AppReplaced("another controller registered this Stasis app")
                yield event
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break

    async def close(self) -> None:
        await self.ws.close()


async def _filter_events(client: AriClient) -> None:
    """Only the event types we act on (events.SUBSCRIBED): less for Asterisk to serialise and
    send, less for our loop to decode. Without it everything still works, at a higher cost."""
    try:
        app = await client.filter_events(events.SUBSCRIBED)
    except AriError as exc:
        log.warning("ari_event_filter_failed", error=str(exc))
        return
    # Asterisk answers with the application as it now stands: say what it will send us.
    log.info("ari_event_filter", allowed=len(app.get("events_allowed") or []))


async def connections(client: AriClient, *, heartbeat: float = 5.0) -> AsyncIterator[Connection]:
    """Yield a fresh Connection each time the previous one ended; raise only on fatal errors."""
    url = client.base.replace("http://", "ws://").replace("https://", "wss://") + "/events"
    # subscribeAll=false: only channels/bridges our app owns reach us, which keeps the event
    # traffic proportional to our own calls.
    params = {"app": client.settings.app, "subscribeAll": "false"}
    delays = backoff()
    attempt = 0
    while True:
        attempt += 1
        try:
            ws = await client.session.ws_connect(
                url,
                params=params,
                heartbeat=heartbeat,
                headers={"Authorization": client.auth_header},
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                raise AriAuthError(
                    f"ARI rejected the credentials for user {client.settings.username!r}", status=exc.status
                ) from exc
            wait = next(delays)
            log.warning("ari_connect_failed", status=exc.status, retry_in=round(wait, 2), attempt=attempt)
            await asyncio.sleep(wait)
            continue
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            wait = next(delays)
            log.warning("ari_connect_failed", error=type(exc).__name__, retry_in=round(wait, 2), attempt=attempt)
            await asyncio.sleep(wait)
            continue
        await _filter_events(client)
        log.info("ari_connected", attempt=attempt)
        delays = backoff()  # a success resets the backoff
        attempt = 0
        try:
            yield Connection(ws)
        finally:
            if not ws.closed:
                await ws.close()
        log.warning("ari_disconnected", close_code=ws.close_code)
