"""A small typed client for the parts of Asterisk's REST Interface the hotline uses.

Why our own: the Python 3 ARI libraries each failed a need of a long-running controller
(reconnect, per-channel event order, credentials with '&' or '#'; see README "Why our own ARI
client"). This one is deliberately narrow: one aiohttp session, the Authorization header
built once, a timeout on every request (Asterisk can leave /channels calls hanging under
load), and HTTP failures mapped once, here, into ivr.errors.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from ivr.errors import AriAuthError, AriConflict, AriError, AriNotFound, AriUnavailable

# REST connections kept open to Asterisk: the pool grows with concurrent calls up to the limit
# (well under http.conf's sessionlimit, which the events WebSocket shares) and a connection idle
# for KEEPALIVE_S is closed — the same as Asterisk's session_keep_alive, so neither side keeps a
# connection the other has given up.
POOL_LIMIT = 64
KEEPALIVE_S = 15.0


@dataclass(frozen=True)
class AriSettings:
    url: str  # e.g. http://127.0.0.1:8088/ari
    username: str
    password: str
    app: str = "hotline"
    request_timeout: float = 5.0


class AriClient:
    """REST calls; `events()` in ivr.ari.stream gives the event WebSocket on the same session."""

    def __init__(self, settings: AriSettings, session: aiohttp.ClientSession | None = None) -> None:
        self.settings = settings
        self.base = settings.url.rstrip("/")
        self._own_session = session is None
        self._session = session
        # Built once; aiohttp.BasicAuth on requests is deprecated in 3.14 and URL-embedded
        # credentials break on '&' and '#'.
        self.auth_header = aiohttp.encode_basic_auth(settings.username, settings.password)
        # Per request only on a session we were given; our own carries it as a default header. Both
        # this and the timeout built once save a few percent of the CPU a request costs us (~0.16 ms).
        self._headers = None if self._own_session else {"Authorization": self.auth_header}
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        # Requests sent, by (method, resource: the path's first segment): a dict increment per request,
        # read by /metrics at scrape time (ivr.metrics), since every request is work Asterisk does for us.
        self.sent: dict[tuple[str, str], int] = {}
        # Response times of the latest requests: the controller's admission reads Asterisk's load from them.
        self.latencies: deque[float] = deque(maxlen=1024)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": self.auth_header},
                connector=aiohttp.TCPConnector(limit=POOL_LIMIT, keepalive_timeout=KEEPALIVE_S),
            )
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the one place HTTP happens -------------------------------------------------------
    async def request(
        self, method: str, path: str, params: Mapping[str, str | int] | None = None, body: Any = None
    ) -> Any:
        key = (method, path.split("/", 2)[1])
        self.sent[key] = self.sent.get(key, 0) + 1
        url = f"{self.base}{path}"
        started = time.monotonic()
        try:
            async with self.session.request(
                method, url, params=params, json=body, timeout=self._timeout, headers=self._headers
            ) as resp:
                data = await resp.read()  # JSON is UTF-8: no charset to work out, as text() would
                if resp.status < 300:
                    return json.loads(data) if data else None
                message = _error_message(data.decode(errors="replace")) or resp.reason or ""
                what = f"{method} {path}: {resp.status} {message}"
                if resp.status == 404:
                    raise AriNotFound(what, status=404)
                if resp.status in (409, 412, 422):
                    raise AriConflict(what, status=resp.status)
                if resp.status in (401, 403):
                    raise AriAuthError(what, status=resp.status)
                if resp.status >= 500:
                    raise AriUnavailable(what, status=resp.status)
                raise AriError(what, status=resp.status)
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise AriUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            self.latencies.append(time.monotonic() - started)

    # -- channels ---------------------------------------------------------------------------
    async def answer(self, channel: str) -> None:
        await self.request("POST", f"/channels/{channel}/answer")

    async def hangup(self, channel: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"/channels/{channel}", {"reason": reason})

    async def play(self, channel: str, playback_id: str, media: list[str], lang: str = "zh") -> None:
        # Several media in one request play back to back with one PlaybackFinished at the end.
        await self.request("POST", f"/channels/{channel}/play/{playback_id}", {"media": ",".join(media), "lang": lang})

    async def record(self, channel: str, name: str, max_seconds: int, max_silence_seconds: int) -> None:
        """Record what the caller says into Asterisk's recording spool as NAME.wav."""
        await self.request(
            "POST",
            f"/channels/{channel}/record",
            {
                "name": name,
                "format": "wav",
                "maxDurationSeconds": max_seconds,
                "maxSilenceSeconds": max_silence_seconds,
                "ifExists": "overwrite",
                "beep": "true",
                "terminateOn": "#",
            },
        )

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{playback_id}")

    async def start_moh(self, channel: str, moh_class: str) -> None:
        await self.request("POST", f"/channels/{channel}/moh", {"mohClass": moh_class})

    async def stop_moh(self, channel: str) -> None:
        await self.request("DELETE", f"/channels/{channel}/moh")

    async def create_channel(
        self, channel_id: str, endpoint: str, app_args: str, originator: str, variables: Mapping[str, str] | None = None
    ) -> None:
        """Create an outbound channel in our app, not yet dialled: we own it before it rings."""
        params: dict[str, str] = {
            "endpoint": endpoint,
            "app": self.settings.app,
            "appArgs": app_args,
            "channelId": channel_id,
            "originator": originator,
        }
        body = {"variables": dict(variables)} if variables else None
        await self.request("POST", "/channels/create", params, body)

    async def dial(self, channel: str, caller: str, timeout: int) -> None:
        await self.request("POST", f"/channels/{channel}/dial", {"caller": caller, "timeout": timeout})

    async def set_variable(self, channel: str, name: str, value: str) -> None:
        await self.request("POST", f"/channels/{channel}/variable", {"variable": name, "value": value})

    async def set_global(self, name: str, value: str) -> None:
        """A global dialplan variable (${GLOBAL(name)}), as `Set(GLOBAL(name)=value)` would."""
        await self.request("POST", "/asterisk/variable", {"variable": name, "value": value})

    async def get_global(self, name: str) -> str:
        """A global dialplan variable's value ("" when unset)."""
        data = await self.request("GET", "/asterisk/variable", {"variable": name})
        return str((data or {}).get("value", ""))

    async def get_variable(self, channel: str, name: str) -> str:
        data = await self.request("GET", f"/channels/{channel}/variable", {"variable": name})
        return str((data or {}).get("value", ""))

    async def continue_in_dialplan(self, channel: str, context: str, extension: str, priority: int = 1) -> None:
        await self.request(
            "POST", f"/channels/{channel}/continue", {"context": context, "extension": extension, "priority": priority}
        )

    async def channel(self, channel: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/channels/{channel}"))

    async def list_channels(self) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/channels") or [])

    # -- bridges ----------------------------------------------------------------------------
    async def create_bridge(self, bridge_id: str, name: str = "", *, dtmf_events: bool = False) -> None:
        # dtmf_events: never bridged natively (RTP forwarded below the core), so every key a member
        # presses reaches us as ChannelDtmfReceived.
        kind = "mixing,dtmf_events" if dtmf_events else "mixing"
        await self.request("POST", f"/bridges/{bridge_id}", {"type": kind, "name": name or bridge_id})

    async def add_to_bridge(self, bridge_id: str, channels: list[str], *, absorb_dtmf: bool = False) -> None:
        params: dict[str, str | int] = {"channel": ",".join(channels)}
        if absorb_dtmf:  # the channel's keys reach us (events) but not the bridge's other members
            params["absorbDTMF"] = "true"
        await self.request("POST", f"/bridges/{bridge_id}/addChannel", params)

    async def remove_from_bridge(self, bridge_id: str, channel: str) -> None:
        await self.request("POST", f"/bridges/{bridge_id}/removeChannel", {"channel": channel})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{bridge_id}")

    async def list_bridges(self) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/bridges") or [])

    # -- application ------------------------------------------------------------------------
    async def application(self) -> dict[str, Any]:
        return dict(await self.request("GET", f"/applications/{quote(self.settings.app)}"))

    async def subscribe(self, event_source: str) -> None:
        """Subscribe our app to `event_source` (e.g. channel:ID): its events keep coming after StasisEnd."""
        await self.request("POST", f"/applications/{self.settings.app}/subscription", {"eventSource": event_source})

    async def filter_events(self, allowed: Iterable[str]) -> dict[str, Any]:
        """Ask Asterisk to send our app only these event types (the rest is never serialised)."""
        body = {"allowed": [{"type": t} for t in sorted(allowed)]}
        return dict(await self.request("PUT", f"/applications/{quote(self.settings.app)}/eventFilter", body=body))

    async def asterisk_info(self) -> dict[str, Any]:
        return dict(await self.request("GET", "/asterisk/info"))


def _error_message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    return str(data.get("message", "")) if isinstance(data, dict) else ""
