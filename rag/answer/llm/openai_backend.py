"""An OpenAI-compatible server (vLLM, llama.cpp server, Ollama) through langchain-openai."""
from __future__ import annotations

import logging
import threading
import time
from typing import Iterator, Sequence

import httpx

from rag.answer.llm.base import Health, LLMError, LLMUnavailable, PromptMessage, estimate_tokens, with_deadlines

log = logging.getLogger(__name__)

# Re-asking a server for its window / tokenizer after a failure, at most this often.
_REPROBE_S = 30.0


class OpenAIChatModel:
    backend = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "EMPTY",
        timeout_s: float = 60.0,
        first_token_s: float = 60.0,
        total_s: float = 300.0,
        fallback_context_tokens: int = 2048,
        http_client: httpx.Client | None = None,
    ) -> None:
        from langchain_openai import ChatOpenAI

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        self.timeout_s = timeout_s
        self.first_token_s, self.total_s = first_token_s, total_s
        self._api_key = api_key
        self._fallback_context = fallback_context_tokens
        self._max_model_len: int | None = None
        self._tokenize_ok: bool | None = None  # None: not tried yet
        self._tokenize_failed_at = -_REPROBE_S
        self._probed_at = 0.0
        self._probe_lock = threading.Lock()
        # A refused or black-holed connect should fail fast even when generation may be slow.
        # (connect, read, write, pool) as a tuple, not an httpx.Timeout: openai 3 builds its
        # client on httpx2, and httpx2 2.17 refuses another library's Timeout (`rag serve`
        # stopped with a TypeError on a fresh install).
        timeout = (min(timeout_s, 5.0), timeout_s, timeout_s, timeout_s)
        self._chat = ChatOpenAI(
            base_url=self.base_url,
            model=model,
            api_key=api_key,
            streaming=True,
            timeout=timeout,
            max_retries=0,  # a retry would double the wait before the retrieval-only fallback
            http_client=http_client,
        )

    # --- window and tokens -------------------------------------------------------------
    def _root_url(self) -> str:
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    @property
    def context_tokens(self) -> int:
        if self._max_model_len is None and time.monotonic() - self._probed_at > _REPROBE_S:
            self.health(timeout_s=1.0)
        return self._max_model_len or self._fallback_context

    def count_tokens(self, text: str) -> int:
        down_recently = time.monotonic() - self._tokenize_failed_at < _REPROBE_S
        if self._tokenize_ok is not False and not down_recently:
            try:
                # vLLM's own endpoint: exact counts for whatever tokenizer the server runs.
                resp = httpx.post(
                    f"{self._root_url()}/tokenize",
                    json={"model": self.model, "prompt": text, "add_special_tokens": False},
                    headers=self._headers(),
                    timeout=2.0,
                )
                if resp.status_code == 200 and "count" in resp.json():
                    self._tokenize_ok = True
                    return int(resp.json()["count"])
                self._tokenize_ok = False  # not vLLM: llama.cpp server, Ollama, a proxy
            except (httpx.HTTPError, ValueError):
                # Down or hung: estimate, and do not wait on it again for every passage.
                self._tokenize_failed_at = time.monotonic()
        return estimate_tokens(text)

    def health(self, timeout_s: float = 2.0) -> Health:
        url = f"{self.base_url}/models"
        with self._probe_lock:
            self._probed_at = time.monotonic()
            try:
                resp = httpx.get(url, headers=self._headers(), timeout=timeout_s)
                resp.raise_for_status()
                data = resp.json().get("data") or []
            except httpx.TimeoutException:
                return Health(False, f"LLM server at {self.base_url} did not answer within {timeout_s:g}s")
            except httpx.HTTPStatusError as exc:
                return Health(False, f"LLM server at {self.base_url} answered HTTP {exc.response.status_code}")
            except (httpx.HTTPError, ValueError) as exc:
                return Health(False, f"LLM server at {self.base_url} is unreachable ({_short(exc)})")
            ids = [str(m.get("id")) for m in data if isinstance(m, dict)]
            served = next((m for m in data if isinstance(m, dict) and m.get("id") == self.model), None)
            if ids and served is None:
                return Health(False, f"LLM server at {self.base_url} serves {', '.join(ids)}, not {self.model}")
            if served and isinstance(served.get("max_model_len"), int):
                self._max_model_len = served["max_model_len"]  # vLLM reports its window here
            return Health(True, f"LLM server at {self.base_url} serves {self.model}")

    # --- generation ----------------------------------------------------------------------
    def stream(self, messages: Sequence[PromptMessage], *, max_tokens: int, temperature: float,
               cancel: threading.Event | None = None) -> Iterator[str]:
        """Text deltas within the first-token and total deadlines; every failure is one LLMError,
        logged as one line (with its traceback only when debugging)."""
        deltas = self._deltas(messages, max_tokens=max_tokens, temperature=temperature, cancel=cancel)
        try:
            yield from with_deadlines(deltas, first_token_s=self.first_token_s, total_s=self.total_s,
                                      what=f"LLM server at {self.base_url}", cancel=cancel)
        except LLMError as exc:
            log.warning("LLM generation failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            raise

    def _deltas(self, messages: Sequence[PromptMessage], *, max_tokens: int, temperature: float,
                cancel: threading.Event | None = None) -> Iterator[str]:
        import openai

        extra_body = {
            # Qwen3 would otherwise spend the token budget on <think>; other templates ignore it.
            "chat_template_kwargs": {"enable_thinking": False},
            # langchain-openai sends only max_completion_tokens; older vLLM, llama.cpp
            # server and Ollama read max_tokens.
            "max_tokens": max_tokens,
        }
        lc_messages = [(m.role, m.content) for m in messages]
        chunks = self._chat.stream(lc_messages, max_tokens=max_tokens, temperature=temperature, extra_body=extra_body)
        started = False  # a timeout before the first chunk and one mid-answer read differently
        said = False
        try:
            for chunk in chunks:
                started = True
                if cancel is not None and cancel.is_set():
                    break
                text = chunk.content if isinstance(chunk.content, str) else ""
                if text:
                    said = True
                    yield text
                if cancel is not None and cancel.is_set():
                    break
            if not said and not (cancel is not None and cancel.is_set()):
                # {"choices": []} and the like: a stream that ended without one word
                raise LLMError(f"LLM server at {self.base_url} ended its answer without any text")
        except (openai.APITimeoutError, httpx.TimeoutException) as exc:
            if started:
                raise LLMUnavailable(
                    f"LLM server at {self.base_url} stopped answering (nothing for {self.timeout_s:g}s)"
                ) from exc
            raise LLMUnavailable(f"LLM server at {self.base_url} did not answer within {self.timeout_s:g}s") from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(f"LLM server at {self.base_url} is unreachable ({_short(exc)})") from exc
        except openai.APIStatusError as exc:
            raise LLMError(f"LLM server at {self.base_url} refused the request: HTTP {exc.status_code} {_short(exc)}") from exc
        except httpx.HTTPError as exc:
            raise LLMUnavailable(f"LLM server at {self.base_url} dropped the connection ({_short(exc)})") from exc
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, openai.OpenAIError) as exc:
            # A body that is not an OpenAI stream: an HTML error page, broken JSON mid-stream.
            raise LLMError(f"LLM server at {self.base_url} sent something that is not an OpenAI-compatible "
                           f"answer ({type(exc).__name__}: {_short(exc)})") from exc
        finally:
            # Closing the generator closes the HTTP response, and vLLM aborts a request
            # whose client went away: this is what stops generation on the server.
            chunks.close()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
