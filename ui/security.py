"""What the login gate adds to Gradio's: a back-off on repeated wrong passwords, and no
unauthenticated use of the session heartbeat.

Checked against gradio 6 with a login configured: ``/config``, ``/gradio_api/info`` and
``/gradio_api/openapi.json`` answer 401 to a stranger, but

- FastAPI's own ``/openapi.json`` listed every route of the server (closed by
  ``app_kwargs={"openapi_url": None}`` in ``ui.app``), and
- ``/gradio_api/heartbeat/<session>`` answered anyone; when such a connection closes Gradio
  runs the page's unload handlers for that session and marks its state for deletion, so a
  stranger who learned a session id could end someone's chat. ``AuthGuard`` answers it 401
  unless the request carries a login token.

Everything else a stranger reaches was checked and reveals nothing of the notes: the login
page and its static assets, ``/gradio_api/app_id`` (a random number), ``/gradio_api/runs``
(the page shell), ``startup-events``, and ``token``/``user`` (null without a login).

Wrong passwords: after ``FREE_ATTEMPTS`` failures from one client address within
``WINDOW_S``, each further login attempt from it waits ``2 ** k`` seconds (capped at
``MAX_DELAY_S``) before it is checked; each such wait is logged. A success clears the count.
"""
from __future__ import annotations

import asyncio
import logging
import time
from http.cookies import SimpleCookie

__all__ = ["AuthGuard", "LoginThrottle"]

log = logging.getLogger(__name__)

FREE_ATTEMPTS = 3  # wrong passwords from one address before logins from it slow down
WINDOW_S = 600.0  # failures older than this are forgotten
MAX_DELAY_S = 16.0  # the longest wait before an attempt is checked
MAX_CLIENTS = 10_000  # addresses remembered at most (oldest forgotten first)
LOGIN_PATHS = ("/login", "/login/")
HEARTBEAT_PREFIX = "/gradio_api/heartbeat/"


class LoginThrottle:
    """Failed-login counts per client address."""

    def __init__(self) -> None:
        self._fails: dict[str, tuple[int, float]] = {}

    def delay(self, client: str) -> float:
        count, last = self._fails.get(client, (0, 0.0))
        if not count or time.monotonic() - last > WINDOW_S:
            return 0.0
        over = count - FREE_ATTEMPTS
        return 0.0 if over < 0 else min(MAX_DELAY_S, float(2 ** over))

    def failed(self, client: str) -> int:
        count, last = self._fails.get(client, (0, 0.0))
        if time.monotonic() - last > WINDOW_S:
            count = 0
        self._fails.pop(client, None)
        self._fails[client] = (count + 1, time.monotonic())
        while len(self._fails) > MAX_CLIENTS:
            self._fails.pop(next(iter(self._fails)))
        return count + 1

    def succeeded(self, client: str) -> None:
        self._fails.pop(client, None)


def _token_user(scope, app) -> str | None:
    headers = dict(scope.get("headers") or [])
    raw = headers.get(b"cookie", b"").decode("latin-1")
    if not raw:
        return None
    cookie = SimpleCookie()
    try:
        cookie.load(raw)
    except Exception:  # noqa: BLE001 - a malformed cookie is no login
        return None
    cookie_id = getattr(app, "cookie_id", "")
    tokens = getattr(app, "tokens", {}) or {}
    for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        if name in cookie and cookie[name].value in tokens:
            return tokens[cookie[name].value]
    return None


class AuthGuard:
    """ASGI middleware for the Gradio app (passed through ``launch(app_kwargs=...)``)."""

    def __init__(self, app, throttle: LoginThrottle | None = None) -> None:
        self.app = app
        self.throttle = throttle or LoginThrottle()

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        gradio_app = scope.get("app")
        if getattr(gradio_app, "auth", None) is None:  # no login configured: nothing to guard
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.startswith(HEARTBEAT_PREFIX) and _token_user(scope, gradio_app) is None:
            return await _deny(send)
        if path in LOGIN_PATHS and scope.get("method") == "POST":
            return await self._login(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _login(self, scope, receive, send):
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.throttle.delay(client)
        if wait:
            log.warning("login: repeated wrong passwords from %s; waiting %.0f s before checking", client, wait)
            await asyncio.sleep(wait)
        status: dict[str, int] = {}

        async def watch(message):
            if message.get("type") == "http.response.start":
                status["code"] = message.get("status", 0)
            await send(message)

        await self.app(scope, receive, watch)
        code = status.get("code", 0)
        if code == 200:
            self.throttle.succeeded(client)
        elif code in (400, 401):
            count = self.throttle.failed(client)
            log.warning("login: wrong username or password from %s (%d in a row)", client, count)


async def _deny(send) -> None:
    body = b'{"detail":"Not authenticated"}'
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
