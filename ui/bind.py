"""Where the server may listen: loopback freely, anywhere else only behind a login.

Kept free of Gradio so that `rag serve` refuses a bad configuration at once.
"""
from __future__ import annotations

import errno
import socket

from rag.core.errors import EXIT_USAGE, RagError
from rag.core.settings import LOOPBACK_NAMES, Settings, is_loopback  # noqa: F401 - re-exported


class ServeError(RagError, RuntimeError):
    """The server must not start as configured; the message says why."""

    exit_code = EXIT_USAGE


def check_bind(settings: Settings) -> None:
    """Refuse to listen beyond this machine without a login (raises ServeError)."""
    user, password = (settings.username or "").strip(), (settings.password or "").strip()
    if bool(user) != bool(password):
        raise ServeError("set both RAG_USERNAME and RAG_PASSWORD (a login needs both, neither blank), or neither")
    if is_loopback(settings.host):
        return
    if not (user and password):
        raise ServeError(
            f"refusing to listen on {settings.host or '(empty host)'} without a login: anyone who can reach "
            "this machine could read your notes. Set RAG_USERNAME and RAG_PASSWORD, or bind to 127.0.0.1."
        )


def check_port(settings: Settings) -> None:
    """Refuse at once (ServeError) when the address cannot be listened on: a port in use, a
    port out of range, an address that is not this machine's. Called before the server
    prints its address, so that a person never sees "Notes chat on http://…" and then an error.

    The probe socket is closed before the real server binds, so a race with another
    program is still possible; the server reports that case itself.
    """
    host, port = settings.host, settings.port
    if not 1 <= int(port) <= 65535:
        raise ServeError(f"cannot listen on port {port}: a port is a number from 1 to 65535 (RAG_PORT, --port)")
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host}: not an address of this machine ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    probe = socket.socket(family, kind, proto)
    try:
        # As uvicorn binds: SO_REUSEADDR, so a port left in TIME_WAIT by a previous run is usable.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is already in use (another `rag serve`, or another program): "
                             "stop it, or choose another port with --port or RAG_PORT") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ServeError(f"cannot listen on {host}: not an address of this machine") from None
        if exc.errno == errno.EACCES:
            raise ServeError(f"not allowed to listen on port {port} (ports below 1024 need administrator "
                             "rights): choose another with --port or RAG_PORT") from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        probe.close()


def check_listen(settings: Settings) -> None:
    """Everything ``rag serve`` checks before it starts: the login rule, then the port."""
    check_bind(settings)
    check_port(settings)
