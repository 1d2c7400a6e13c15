"""An OpenAI-compatible chat-completions client, shared by the captions and descriptors stages.

It talks to anything that serves `POST {base_url}/chat/completions`: vLLM, Ollama, hosted
APIs. Requests run concurrently up to a limit; 429, 5xx, timeouts and connection errors
are retried with exponential backoff (a server's Retry-After is honoured, capped); a
request that still fails comes back as a `ChatResult` with an error, never as an
exception, so one bad video or class never stops a run.

The API key is read only from the environment variable the registry entry names. It is
sent in the Authorization header and nowhere else. A server's words (error bodies, replies,
transport errors) are masked of it the moment they are read, before any cut or parse can
split it, so no piece of it can reach a log, a failures table or a report (SECURITY.md).
A response body is read up to `max_response_bytes`, never whole.
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

logger = logging.getLogger(__name__)

# Status codes worth retrying: rate limits, and server-side trouble that is often transient.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
SCRUBBED = "***"
# Any run of this many characters of the key is masked, not just the whole key: a server
# may echo a key cut short, or a cut in our text may split it.
SECRET_PIECE = 8
# How much of an error body is kept in a message, counted after masking.
ERROR_SNIPPET_CHARS = 200
# Far above any chat answer (a few KB), far below what could exhaust a job's memory.
MAX_RESPONSE_BYTES = 4 * 2**20
# httpx and httpcore log status lines and response headers verbatim: server words that
# this module cannot mask, so they may say only warnings.
SERVER_ECHOING_LOGGERS = ("httpx", "httpcore")

Log = logging.Logger | Callable[[str], Any] | None


class ChatConfigError(ValueError):
    """An endpoint that cannot be used as configured (e.g. its API key variable is unset)."""


@dataclass
class ChatEndpoint:
    base_url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = 60
    max_retries: int = 4
    backoff_s: float = 1.0
    concurrency: int = 8
    # Upper bound on any single wait, including one a server asks for with Retry-After.
    max_backoff_s: float = 30.0
    max_response_bytes: int = MAX_RESPONSE_BYTES

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> ChatEndpoint:
        """The endpoint of a registry entry; keys that are not endpoint fields are ignored."""
        missing = [k for k in ("base_url", "model") if not entry.get(k)]
        if missing:
            name = entry.get("name", "?")
            raise ChatConfigError(f"model entry '{name}': openai backend needs {missing}")
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in entry.items() if k in fields})

    def read_api_key(self) -> str | None:
        """The key from the named environment variable; an unset variable is an error."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ChatConfigError(
                f"environment variable {self.api_key_env} (api_key_env of the endpoint "
                f"{self.base_url}) is not set"
            )
        return key


@dataclass
class ChatResult:
    text: str | None
    error: str | None


def image_part(jpeg: bytes) -> dict[str, Any]:
    """An OpenAI content part carrying one JPEG as a base64 data URL."""
    data = base64.b64encode(jpeg).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _secret_spans(text: str, secret: str) -> list[tuple[int, int]]:
    """Merged (start, end) spans of `text` covered by pieces of `secret`."""
    width = min(SECRET_PIECE, len(secret))
    covered: list[tuple[int, int]] = []
    # str.find per piece keeps this linear in the text (one C scan per piece of the key).
    for piece in {secret[i : i + width] for i in range(len(secret) - width + 1)}:
        start = text.find(piece)
        while start != -1:
            covered.append((start, start + width))
            start = text.find(piece, start + 1)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(covered):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def scrub(text: str, secret: str | None) -> str:
    """`text` with the secret masked: every run of it `SECRET_PIECE` characters or longer."""
    if not secret or not text:
        return text
    parts, last = [], 0
    for start, end in _secret_spans(text, secret):
        parts += [text[last:start], SCRUBBED]
        last = end
    return "".join([*parts, text[last:]])


def _emit(log: Log, message: str) -> None:
    if log is None:
        logger.warning(message)
    elif isinstance(log, logging.Logger):
        log.warning(message)
    else:
        log(message)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), if parseable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base_s: float, cap_s: float, retry_after: float | None) -> float:
    """Exponential backoff for retry number `attempt` (0-based), or the server's wish; capped."""
    if retry_after is not None:
        return min(retry_after, cap_s)
    delay = base_s * (2**attempt)
    # A little jitter so concurrent requests that were refused together do not return together.
    return min(delay * (1 + 0.1 * random.random()), cap_s)


def message_text(payload: Any) -> str:
    """The assistant text of a chat-completions response body; ValueError if malformed."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f"malformed response: no choices[0].message.content ({err!r})") from err
    if content is None:
        return ""
    if isinstance(content, list):  # some servers return content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def quiet_server_echoing_loggers() -> None:
    """Warnings only from the HTTP libraries that log a server's words unmasked."""
    for name in SERVER_ECHOING_LOGGERS:
        log = logging.getLogger(name)
        log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))


class _Attempt:
    """Outcome of one HTTP attempt: a result, or a retryable/final error description."""

    __slots__ = ("result", "retryable", "error", "retry_after")

    def __init__(self, result=None, retryable=False, error=None, retry_after=None):
        self.result = result
        self.retryable = retryable
        self.error = error
        self.retry_after = retry_after


class ChatClient:
    """Sends many chat requests to one endpoint concurrently; results come back in order."""

    def __init__(self, endpoint: ChatEndpoint):
        self.endpoint = endpoint
        # Read now so that a missing variable fails before any request is sent.
        self._api_key = endpoint.read_api_key()
        quiet_server_echoing_loggers()

    def __repr__(self) -> str:  # never show the key
        return f"ChatClient({self.endpoint!r})"

    @property
    def url(self) -> str:
        return self.endpoint.base_url.rstrip("/") + "/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def complete_many(
        self,
        list_of_messages: Sequence[list[dict[str, Any]]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        log: Log = None,
    ) -> list[ChatResult]:
        """One ChatResult per conversation, in the same order; never raises for one request."""
        if not list_of_messages:
            return []
        ep = self.endpoint
        workers = max(1, min(int(ep.concurrency), len(list_of_messages)))
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        lock = threading.Lock()

        def locked_log(message: str) -> None:
            with lock:
                _emit(log, scrub(message, self._api_key))

        with httpx.Client(
            timeout=httpx.Timeout(ep.timeout_s), limits=limits, headers=self._headers()
        ) as http:

            def run_one(index_messages):
                index, messages = index_messages
                body = {
                    "model": ep.model,
                    "messages": messages,
                    "max_tokens": int(max_tokens),
                    "temperature": float(temperature),
                }
                return self._complete_with_retries(http, body, index, locked_log)

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zsar-chat") as pool:
                return list(pool.map(run_one, enumerate(list_of_messages)))

    def complete(
        self, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float = 0.0,
        log: Log = None,
    ) -> ChatResult:
        return self.complete_many([messages], max_tokens=max_tokens,
                                  temperature=temperature, log=log)[0]

    def _complete_with_retries(
        self, http: httpx.Client, body: dict, index: int, log: Callable[[str], None]
    ) -> ChatResult:
        ep = self.endpoint
        retries = max(0, int(ep.max_retries))
        attempt = _Attempt(error="no attempt made")
        for n in range(retries + 1):
            attempt = self._attempt(http, body)
            if attempt.result is not None:
                return attempt.result
            if not attempt.retryable:
                return ChatResult(text=None, error=scrub(attempt.error, self._api_key))
            if n == retries:
                break
            delay = backoff_delay(n, ep.backoff_s, ep.max_backoff_s, attempt.retry_after)
            log(f"chat request {index}: {attempt.error}; retry {n + 1}/{retries} in {delay:.2f}s")
            time.sleep(delay)
        error = f"{attempt.error} after {retries} retries"
        log(f"chat request {index}: giving up: {error}")
        return ChatResult(text=None, error=scrub(error, self._api_key))

    def _attempt(self, http: httpx.Client, body: dict) -> _Attempt:
        try:
            with http.stream("POST", self.url, json=body) as response:
                return self._outcome(response)
        except httpx.TimeoutException:
            return _Attempt(retryable=True, error=f"timeout ({self.endpoint.timeout_s:g}s)")
        except httpx.TransportError as err:
            detail = scrub(str(err) or type(err).__name__, self._api_key)
            return _Attempt(retryable=True, error=f"connection error ({detail})")

    def _outcome(self, response: httpx.Response) -> _Attempt:
        """What one response means; its body, if read at all, read capped and masked."""
        status = response.status_code
        if status in RETRYABLE_STATUS:
            return _Attempt(
                retryable=True,
                error=f"HTTP {status}",
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        limit = int(self.endpoint.max_response_bytes)
        data, complete = read_capped(response, limit)
        if status >= 400:
            # Other client errors (bad request, auth, unknown model) will not heal on retry.
            # Masked first, cut after: a cut must never split the key into unmaskable halves.
            text = scrub(decode_body(data, response), self._api_key).strip()
            snippet = " ".join(text.split())[:ERROR_SNIPPET_CHARS]
            return _Attempt(error=f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}")
        if not complete:
            return _Attempt(error=f"response body over the limit of {limit} bytes "
                                  "(max_response_bytes)")
        try:
            text = message_text(json.loads(data))
        except (ValueError, RecursionError) as err:  # JSON decode errors, absurd nesting
            return _Attempt(error=scrub(str(err), self._api_key)[:300])
        return _Attempt(result=ChatResult(text=scrub(text, self._api_key), error=None))


def read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """(up to `limit` bytes of the body, whether that was all of it)."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], False
    return b"".join(chunks), True


def decode_body(data: bytes, response: httpx.Response) -> str:
    """A body's text in the charset it declares (UTF-8 if none or an unknown one)."""
    try:
        return data.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")
