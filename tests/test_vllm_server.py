"""vLLM's real OpenAI-compatible server on the CPU (SmolLM2-135M-Instruct).

Slow: the session fixture starts the server once (minutes). Needs
``bash scripts/setup_vllm_cpu.sh`` first.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.vllm_fixture import SETUP_HINT, VLLMServer, check_setup, vllm_server  # noqa: F401

MESSAGES = [{"role": "user", "content": "Write a long story about a cat who learns to sail."}]


def stream_chat(server: VLLMServer, max_tokens: int, **extra) -> tuple[list[str], list[dict], float | None]:
    """POST a streamed chat completion; return (content deltas, all chunks, seconds to first token)."""
    body = {
        "model": server.model,
        "messages": MESSAGES,
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream_options": {"include_usage": True},
        **extra,
    }
    deltas: list[str] = []
    chunks: list[dict] = []
    first: float | None = None
    done = False
    t0 = time.monotonic()
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body, timeout=120) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[len("data: "):]
            if data == "[DONE]":
                done = True
                break
            chunk = json.loads(data)
            chunks.append(chunk)
            for choice in chunk.get("choices", []):
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    if first is None:
                        first = time.monotonic() - t0
                    deltas.append(piece)
    assert done, "stream ended without data: [DONE]"
    return deltas, chunks, first


@pytest.mark.slow
def test_models_endpoint_lists_served_name(vllm_server: VLLMServer):
    resp = httpx.get(f"{vllm_server.base_url}/models", timeout=30)
    assert resp.status_code == 200
    assert vllm_server.model in [m["id"] for m in resp.json()["data"]]


@pytest.mark.slow
def test_streamed_chat_completion(vllm_server: VLLMServer):
    deltas, chunks, first = stream_chat(vllm_server, max_tokens=32)
    assert len(deltas) >= 2, f"expected several streamed tokens, got {deltas!r}"
    text = "".join(deltas)
    assert text.strip(), "empty completion"
    assert "<|im_start|>" not in text and "<|im_end|>" not in text
    finish = [c["finish_reason"] for ch in chunks for c in ch.get("choices", []) if c.get("finish_reason")]
    assert finish and finish[-1] in ("stop", "length")
    print(f"\nfirst token after {first:.2f}s; text: {text!r}")


@pytest.mark.slow
def test_max_tokens_is_honoured(vllm_server: VLLMServer):
    # ignore_eos (a vLLM extension) makes the model run into the limit.
    deltas, chunks, _ = stream_chat(vllm_server, max_tokens=5, ignore_eos=True)
    usage = [ch["usage"] for ch in chunks if ch.get("usage")]
    assert usage and usage[-1]["completion_tokens"] == 5, usage
    finish = [c["finish_reason"] for ch in chunks for c in ch.get("choices", []) if c.get("finish_reason")]
    assert finish[-1] == "length"
    assert 1 <= len(deltas) <= 5

    # Non-streamed too, without ignore_eos: never more than asked for.
    resp = httpx.post(
        f"{vllm_server.base_url}/chat/completions",
        json={"model": vllm_server.model, "messages": MESSAGES, "max_tokens": 3, "temperature": 0},
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["usage"]["completion_tokens"] <= 3
    assert body["choices"][0]["finish_reason"] in ("length", "stop")


@pytest.mark.slow
def test_server_down_then_up(vllm_server: VLLMServer):
    """stop() makes the server unreachable (connection refused); start() brings it back."""
    with vllm_server.stopped():
        assert not vllm_server.is_running()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{vllm_server.base_url}/models", timeout=5)
    assert vllm_server.is_healthy()
    print(f"\nrestart took {vllm_server.startup_seconds:.1f}s")
    deltas, _, _ = stream_chat(vllm_server, max_tokens=4)
    assert deltas


def test_missing_setup_fails_with_hint(tmp_path: Path):
    with pytest.raises(pytest.fail.Exception, match=SETUP_HINT):
        check_setup(tmp_path / "no-venv" / "bin" / "python", tmp_path / "no-model")


def _fake_python(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\n" + body + "\n", encoding="utf-8")
    script.chmod(0o755)
    return script


def test_startup_failure_reports_log_tail(tmp_path: Path):
    server = VLLMServer(_fake_python(tmp_path, "echo boom-startup-failure; exit 3"),
                        tmp_path, tmp_path / "server.log", startup_timeout=30)
    with pytest.raises(RuntimeError, match=r"(?s)exited with code 3.*boom-startup-failure"):
        server.start()
    assert not server.is_running()


def test_startup_timeout_kills_process_group(tmp_path: Path):
    # The fake server forks a child (like vLLM's engine workers) and never becomes healthy.
    pidfile = tmp_path / "child.pid"
    server = VLLMServer(_fake_python(tmp_path, f"sleep 300 & echo $! > {pidfile}; wait"),
                        tmp_path, tmp_path / "server.log", startup_timeout=3)
    with pytest.raises(RuntimeError, match="not healthy after 3s"):
        server.start()
    assert not server.is_running()
    child = int(pidfile.read_text())
    # The child was in the server's process group and must be gone (or a zombie) within moments:
    # the signal is delivered at once, but the kernel may still show it running right after.
    state = "R"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/stat", encoding="utf-8") as fh:
                state = fh.read().split(")")[-1].split()[0]
        except FileNotFoundError:
            state = "gone"
        if state in ("Z", "gone"):
            break
        time.sleep(0.05)
    assert state in ("Z", "gone"), state
