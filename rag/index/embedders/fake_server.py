"""The test double of an embedding server: a fake OpenAI-compatible ``/v1/embeddings`` endpoint
for the faults a real vLLM cannot be made to show on demand (overload, restart, a different
model behind the same name). Named as a fake wherever it is used; the other tests of the
server client run against a real vLLM.
"""
from __future__ import annotations

import threading


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
