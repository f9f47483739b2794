"""Stand-ins for faults that a real server cannot be made to show on demand. Each is named
as a fake where it is used; everything else in the tests is real."""
from __future__ import annotations

import socket
import threading


class SilentServer:
    """A hung or overloaded LLM server: it accepts connections but never answers.
    ``conns`` shows whether anybody called it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()
