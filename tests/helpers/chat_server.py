"""A chat-completions server on 127.0.0.1 whose answers follow a script (tests, benchmarks)."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def ok(text: str) -> dict:
    return {"status": 200, "json": {"choices": [{"message": {"role": "assistant",
                                                             "content": text}}]}}


class ScriptedChatServer:
    """A chat-completions server whose answers follow a script, recording every request.

    `script(body, attempt)` returns an action for the attempt-th request (0-based) of the
    conversation `key(body)`: {"status", "json"|"text", "headers", "delay", "reason"} (the
    reason phrase of the status line). With
    `api_key`, a request without `Authorization: Bearer <api_key>` gets a 401 and never
    reaches the script.
    """

    def __init__(
        self,
        script: Callable[[dict, int], dict],
        key: Callable[[dict], str],
        api_key: str | None = None,
    ):
        self.script = script
        self.key = key
        self.api_key = api_key
        self.requests: list[tuple[dict, dict]] = []  # (headers, body)
        self.attempts: dict[str, int] = defaultdict(int)
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                expected = f"Bearer {server.api_key}"
                if server.api_key and self.headers.get("Authorization") != expected:
                    self._reply({"status": 401, "json": {"error": "bad key"}})
                    return
                with server._lock:
                    server.requests.append((dict(self.headers), body))
                    k = server.key(body)
                    attempt = server.attempts[k]
                    server.attempts[k] += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    action = server.script(body, attempt)
                    time.sleep(action.get("delay", 0))
                    if self.path != "/v1/chat/completions":
                        action = {"status": 404, "text": "not found"}
                finally:
                    # Out of flight before the reply goes out: a client that has its reply
                    # may send its next request at once, and that one must not find this
                    # one still counted (seen as 3 in flight under a limit of 2).
                    with server._lock:
                        server.in_flight -= 1
                try:
                    self._reply(action)
                except OSError:
                    pass  # the client timed out and hung up

            def _reply(self, action: dict) -> None:
                payload = (json.dumps(action["json"]) if "json" in action
                           else action.get("text", "")).encode()
                self.send_response(action["status"], action.get("reason"))
                for name, value in action.get("headers", {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def last_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return [p["text"] for p in content if p["type"] == "text"][-1]


