"""Real HTTP servers on 127.0.0.1 that misbehave on purpose, the test doubles of an LLM server:
one that accepts connections and never answers (hung, overloaded), and one that answers chat
completions badly (slow, silent, garbage, empty, cut in half). No real server can be made to
show these faults on demand; each is named as a fake wherever it is used.
"""
from __future__ import annotations

import socket
import threading
import time


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


class MisbehavingLLMServer:
    """A real HTTP server on 127.0.0.1 that answers chat completions badly on purpose, as a
    broken proxy or an overloaded model server does (no real model can be made to on demand).

    ``mode``: "slow" streams ``deltas`` one every ``delay_s``; "silent" sends only SSE
    keep-alive comments (no text) every ``delay_s``; "garbage" an HTML error page with status
    200; "empty" ``{"choices": []}``; "broken" one good chunk, then JSON cut in half. Other
    paths (the window and tokenizer probes) get 404, as from a server without them."""

    def __init__(self, mode: str, deltas=("One ", "token ", "at ", "a ", "time ", "[1]."), delay_s: float = 1.0):
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.mode, self.deltas, self.delay_s = mode, list(deltas), delay_s
        fake = self

        def chunk(text: str) -> bytes:
            body = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                    "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
            return b"data: " + json.dumps(body).encode() + b"\n\n"

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                self.send_error(404)

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if fake.mode == "garbage" else "text/event-stream")
                self.end_headers()
                try:
                    self._answer()
                except OSError:  # the client went away (a deadline): what a real server sees too
                    pass

            def _answer(self) -> None:
                write = self.wfile.write
                if fake.mode == "garbage":
                    write(b"<html><body><h1>502 Bad Gateway</h1></body></html>\n")
                elif fake.mode == "empty":
                    write(b'data: {"choices": []}\n\ndata: [DONE]\n\n')
                elif fake.mode == "broken":
                    write(chunk(fake.deltas[0]) + b'data: {"choices": [{"delta": {"cont\n\n')
                elif fake.mode == "silent":
                    for _ in range(600):
                        write(b": keep-alive\n\n")
                        self.wfile.flush()
                        time.sleep(fake.delay_s)
                else:  # slow
                    for delta in fake.deltas:
                        write(chunk(delta))
                        self.wfile.flush()
                        time.sleep(fake.delay_s)
                    write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
