"""zsar.models.chat against a real HTTP server on 127.0.0.1: body, auth, retries,
timeouts, key hygiene."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from helpers.chat_server import ScriptedChatServer, last_text, ok

from zsar.models.chat import (
    ChatClient,
    ChatConfigError,
    ChatEndpoint,
    backoff_delay,
    image_part,
    message_text,
    retry_after_seconds,
    scrub,
)

API_KEY = "sk-zsar-test-7f3a9c1e5b2d"
KEY_ENV = "ZSAR_TEST_CHAT_KEY"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def endpoint(server: ScriptedChatServer, **overrides) -> ChatEndpoint:
    settings = dict(base_url=server.base_url, model="test-model", api_key_env=KEY_ENV,
                    timeout_s=2.0, max_retries=2, backoff_s=0.01, concurrency=4)
    return ChatEndpoint(**{**settings, **overrides})


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)


def test_request_body_auth_and_order():
    # Later conversations answer sooner: results must still come back in request order.
    def script(body, attempt):
        n = int(last_text(body).split()[-1])
        return {**ok(f"echo {n}"), "delay": 0.05 * (4 - n)}

    with ScriptedChatServer(script, last_text) as server:
        client = ChatClient(endpoint(server))
        image = image_part(b"\xff\xd8jpeg-bytes")
        conversations = [[{"role": "user", "content": [image, {"type": "text", "text": f"q {n}"}]}]
                         for n in range(4)]
        results = client.complete_many(conversations, max_tokens=17, temperature=0.0)

    assert [r.text for r in results] == [f"echo {n}" for n in range(4)]
    assert all(r.error is None for r in results)
    headers, body = server.requests[0]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert body["model"] == "test-model"
    assert body["max_tokens"] == 17
    assert body["temperature"] == 0.0
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert server.max_in_flight > 1  # they really ran concurrently


def test_no_authorization_header_without_api_key_env():
    with ScriptedChatServer(lambda body, attempt: ok("hi"), last_text) as server:
        result = ChatClient(endpoint(server, api_key_env=None)).complete(user("x"), max_tokens=4)
    assert result.text == "hi"
    headers, _ = server.requests[0]
    assert "Authorization" not in headers


def test_missing_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ChatConfigError, match=KEY_ENV):
        ChatClient(ChatEndpoint(base_url="http://127.0.0.1:9/v1", model="m", api_key_env=KEY_ENV))


def test_from_entry_takes_endpoint_fields_and_ignores_the_rest():
    entry = {"name": "x", "backend": "openai", "base_url": "http://h/v1", "model": "m",
             "api_key_env": "K", "concurrency": 3, "timeout_s": 5, "description": "d"}
    ep = ChatEndpoint.from_entry(entry)
    assert (ep.base_url, ep.model, ep.api_key_env, ep.concurrency, ep.timeout_s) == (
        "http://h/v1", "m", "K", 3, 5)
    with pytest.raises(ChatConfigError, match="base_url"):
        ChatEndpoint.from_entry({"name": "x", "model": "m"})


def test_retries_500_and_429_then_succeeds():
    statuses = {"a": [500, 200], "b": [429, 503, 200]}

    def script(body, attempt):
        status = statuses[last_text(body)][attempt]
        return ok("fine") if status == 200 else {"status": status, "text": "busy"}

    messages: list[str] = []
    with ScriptedChatServer(script, last_text) as server:
        results = ChatClient(endpoint(server)).complete_many(
            [user("a"), user("b")], max_tokens=4, log=messages.append)
    assert [r.text for r in results] == ["fine", "fine"]
    assert server.attempts == {"a": 2, "b": 3}
    assert any("HTTP 429" in m for m in messages) and any("HTTP 500" in m for m in messages)


def test_gives_up_after_the_retries_with_a_readable_error():
    with ScriptedChatServer(lambda body, attempt: {"status": 500, "text": "boom"},
                            last_text) as server:
        result = ChatClient(endpoint(server, max_retries=3)).complete(user("x"), max_tokens=4)
    assert result.text is None
    assert result.error == "HTTP 500 after 3 retries"
    assert server.attempts["x"] == 4


def test_timeout_is_retried_then_recorded():
    def script(body, attempt):
        if last_text(body) == "slow-then-fast" and attempt > 0:
            return ok("made it")
        return {**ok("too late"), "delay": 1.0}

    with ScriptedChatServer(script, last_text) as server:
        client = ChatClient(endpoint(server, timeout_s=0.25, max_retries=1))
        results = client.complete_many([user("slow-then-fast"), user("always-slow")],
                                       max_tokens=4)
    assert results[0].text == "made it" and results[0].error is None
    assert results[1].text is None
    assert results[1].error.startswith("timeout") and results[1].error.endswith("after 1 retries")
    assert server.attempts["always-slow"] == 2


def test_retry_after_is_honoured():
    def script(body, attempt):
        if attempt == 0:
            return {"status": 429, "text": "slow down", "headers": {"Retry-After": "0.4"}}
        return ok("ok")

    with ScriptedChatServer(script, last_text) as server:
        start = time.monotonic()
        result = ChatClient(endpoint(server, backoff_s=0.001)).complete(user("x"), max_tokens=4)
        elapsed = time.monotonic() - start
    assert result.text == "ok"
    assert elapsed >= 0.4


def test_client_errors_are_not_retried_and_the_key_is_scrubbed():
    # A server that echoes the request's Authorization header back in its error body.
    def script(body, attempt):
        return {"status": 401, "text": f"bad key Bearer {API_KEY}"}

    logged: list[str] = []
    with ScriptedChatServer(script, last_text) as server:
        result = ChatClient(endpoint(server)).complete(user("x"), max_tokens=4, log=logged.append)
    assert server.attempts["x"] == 1
    assert result.error.startswith("HTTP 401")
    assert API_KEY not in result.error and "***" in result.error
    assert all(API_KEY not in m for m in logged)


def test_malformed_response_is_an_error_not_an_exception():
    with ScriptedChatServer(lambda body, attempt: {"status": 200, "json": {"oops": 1}},
                            last_text) as server:
        result = ChatClient(endpoint(server)).complete(user("x"), max_tokens=4)
    assert result.text is None and "malformed response" in result.error


def test_connection_refused_is_retried_then_recorded():
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ep = ChatEndpoint(base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key_env=KEY_ENV,
                      max_retries=2, backoff_s=0.01, timeout_s=1)
    result = ChatClient(ep).complete(user("x"), max_tokens=4)
    assert result.text is None
    assert result.error.startswith("connection error") and result.error.endswith("2 retries")
    assert API_KEY not in result.error


def test_concurrency_is_limited():
    with ScriptedChatServer(lambda body, attempt: {**ok("x"), "delay": 0.1}, last_text) as server:
        ChatClient(endpoint(server, concurrency=2)).complete_many(
            [user(str(i)) for i in range(6)], max_tokens=4)
    assert server.max_in_flight == 2


def test_retry_after_parsing_and_backoff():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("garbage") is None
    assert retry_after_seconds(None) is None
    now = datetime(2030, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=20), usegmt=True)
    assert retry_after_seconds(later, now=now.timestamp()) == pytest.approx(20.0)
    assert 4.0 <= backoff_delay(2, 1.0, 30.0, None) <= 4.4
    assert backoff_delay(10, 1.0, 30.0, None) == 30.0
    assert backoff_delay(0, 1.0, 30.0, 120.0) == 30.0  # Retry-After is capped too
    assert backoff_delay(0, 1.0, 30.0, 2.0) == 2.0


def test_message_text_and_scrub():
    assert message_text({"choices": [{"message": {"content": "hi"}}]}) == "hi"
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert message_text({"choices": [{"message": {"content": parts}}]}) == "ab"
    assert message_text({"choices": [{"message": {"content": None}}]}) == ""
    with pytest.raises(ValueError):
        message_text({"choices": []})
    assert scrub(f"x {API_KEY} y", API_KEY) == "x *** y"
    assert scrub("x", None) == "x"
    assert API_KEY not in repr(ChatClient(ChatEndpoint("http://h/v1", "m", api_key_env=KEY_ENV)))
