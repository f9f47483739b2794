"""Where the server may listen: loopback freely, anywhere else only behind a login.

Kept free of Gradio so that `rag serve` refuses a bad configuration at once.
"""
from __future__ import annotations

import ipaddress

from rag.settings import Settings

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class ServeError(RuntimeError):
    """The server must not start as configured; the message says why."""


def is_loopback(host: str) -> bool:
    host = (host or "").strip().strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK_NAMES


def check_bind(settings: Settings) -> None:
    """Refuse to listen beyond this machine without a login (raises ServeError)."""
    if bool(settings.username) != bool(settings.password):
        raise ServeError("set both RAG_USERNAME and RAG_PASSWORD (a login needs both), or neither")
    if is_loopback(settings.host):
        return
    if not (settings.username and settings.password):
        raise ServeError(
            f"refusing to listen on {settings.host or '(empty host)'} without a login: anyone who can reach "
            "this machine could read your notes. Set RAG_USERNAME and RAG_PASSWORD, or bind to 127.0.0.1."
        )
