"""deploy/nginx.conf keeps each browser on one replica: run by a real nginx in front of three
small HTTP backends standing in for the app replicas (each answers with its own name).

Needs an nginx binary: ``NGINX=/path/to/nginx`` or ``nginx`` on PATH; skipped otherwise (the
static checks in tests/test_deploy.py still run). No root needed, e.g. on Debian:
``apt-get download nginx && dpkg -x nginx_*.deb nginx-root && NGINX=nginx-root/usr/sbin/nginx``.
Two lines of the file are adapted for the test: the backends are listed by address instead
of ``server app-replica:7860 resolve`` (Docker's DNS is not here, and nginx < 1.27.3 lacks
``resolve``), and it listens on a free loopback port.
"""
from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.vllm_fixture import _port_open, free_port

NGINX_CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"
UPSTREAM_LINE = re.compile(r"^\s*server app-replica:7860 resolve;.*$", re.M)
BROWSERS = 30
REQUESTS_PER_BROWSER = 5


def nginx_binary() -> str:
    binary = os.environ.get("NGINX") or shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not binary:
        pytest.skip("no nginx binary (set NGINX=/path/to/nginx); the static checks are in test_deploy.py")
    return binary


def backend(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def proxy(tmp_path):
    binary = nginx_binary()
    replicas = [backend(f"replica{i}") for i in range(3)]
    port = free_port()
    conf = NGINX_CONF.read_text(encoding="utf-8")
    assert UPSTREAM_LINE.search(conf), "the upstream line this test adapts has changed"
    conf = UPSTREAM_LINE.sub("".join(f"        server 127.0.0.1:{r.server_address[1]};\n" for r in replicas), conf)
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    conf = re.sub(r"^\s*resolver .*$", "", conf, flags=re.M)
    # Everything nginx writes goes to tmp_path (no root, no /var).
    conf = conf.replace("worker_processes auto;", f"worker_processes 1;\npid {tmp_path}/nginx.pid;\n"
                        f"error_log {tmp_path}/error.log;")
    conf = conf.replace("http {", "http {\n" + "".join(
        f"    {d}_temp_path {tmp_path}/{d};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + "    access_log off;\n", 1)
    (tmp_path / "nginx.conf").write_text(conf, encoding="utf-8")
    proc = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not _port_open("127.0.0.1", port):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for r in replicas:
            r.shutdown()


def get(url: str, cookie: str | None = None) -> tuple[str, str | None]:
    request = urllib.request.Request(url, headers={"Cookie": f"rag_affinity={cookie}"} if cookie else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        match = re.search(r"rag_affinity=([^;]+)", response.headers.get("Set-Cookie", ""))
        return response.read().decode(), match.group(1) if match else None


def test_each_browser_stays_on_one_replica_and_browsers_spread_over_all(proxy):
    first_replica = collections.Counter()
    for _ in range(BROWSERS):
        replica, cookie = get(proxy + "/")
        assert cookie, "the first answer must set the affinity cookie"
        first_replica[replica] += 1
        for path in ["/queue/join"] * REQUESTS_PER_BROWSER:
            again, echoed = get(proxy + path, cookie)
            assert again == replica, f"a browser moved from {replica} to {again}"
            assert echoed == cookie
    assert set(first_replica) == {"replica0", "replica1", "replica2"}, first_replica
