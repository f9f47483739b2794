"""Stand-ins for faults that a real server cannot be made to show on demand. Each is named
as a fake where it is used; everything else in the tests is real."""
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


class ScriptedChatModel:
    """A fake ChatModel (like simonw/llm's MockModel) that streams exactly the deltas it is
    given, for faults a real model cannot be made to show on demand: a model looping on one
    sentence, one that cites nothing, a slow writer. ``calls`` records every request;
    ``closed`` whether the reader stopped the stream before its end; ``peak`` the most
    answers it was writing at the same time. ``delay_s`` is slept before each delta."""

    backend = "openai"  # behaves as a served model: no rewrite quirks of the embedded one

    def __init__(self, deltas, name: str = "fake:scripted", context_tokens: int = 4096,
                 delay_s: float = 0.0) -> None:
        self.deltas = list(deltas)
        self.name = name
        self._context_tokens = context_tokens
        self.delay_s = delay_s
        self.calls: list[dict] = []
        self.yielded = 0
        self.closed = False
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    @property
    def context_tokens(self) -> int:
        return self._context_tokens

    def count_tokens(self, text: str) -> int:
        from rag.answer.llm import estimate_tokens

        return estimate_tokens(text)

    def stream(self, messages, *, max_tokens: int, temperature: float, cancel=None):
        with self._lock:
            self.calls.append({"messages": list(messages), "max_tokens": max_tokens})
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            for delta in self.deltas[:max_tokens]:
                if self.delay_s:
                    time.sleep(self.delay_s)
                if cancel is not None and cancel.is_set():
                    return
                self.yielded += 1
                yield delta
        except GeneratorExit:
            self.closed = True
            raise
        finally:
            with self._lock:
                self.running -= 1

    def health(self, timeout_s: float = 2.0):
        from rag.answer.llm import Health

        return Health(True, f"{self.name}, scripted")


class FakeEmbeddingServer:
    """A fake OpenAI-compatible ``/v1/embeddings`` server, for the faults a real vLLM cannot be
    made to show on demand: answers ``fail_with`` statuses first (429/503: overload, restart),
    and vectors of a chosen size (a different model behind the same name). Each vector is noise
    seeded by its text, so the same text always gets the same vector (order can be checked);
    nothing else about them means anything. ``requests`` records each request body."""

    def __init__(self, dim: int = 384, fail_with: tuple[int, ...] = (), retry_after: str | None = None) -> None:
        import json
        import zlib
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import numpy as np

        self.dim = dim
        self.fail_with = list(fail_with)
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet test output
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                if fake.fail_with:
                    status = fake.fail_with.pop(0)
                    payload = json.dumps({"error": {"message": f"fake failure {status}"}}).encode()
                    self.send_response(status)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                else:
                    rows = [np.random.default_rng(zlib.crc32(text.encode())).standard_normal(fake.dim).tolist()
                            for text in body["input"]]
                    payload = json.dumps({"object": "list", "model": body["model"], "data": [
                        {"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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
