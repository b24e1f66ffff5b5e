"""A local fake of GitHub's issues REST surface, served over loopback HTTP, issues in memory.

Answers what ``ops.incident`` calls, the way GitHub does: ``POST /repos/O/R/issues`` (labels as
names -> label objects), ``GET``/``PATCH /repos/O/R/issues/N``, ``POST .../issues/N/comments``,
``GET /repos/O/R/issues?labels=a,b&state=open&per_page=&page=`` (every label must match), with
401 for a wrong token and 404 for another repository or an unknown issue.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class FakeGitHub:
    repo: str
    token: str
    url: str = ""
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, number: int) -> dict[str, Any]:
        return self.issues[number]

    def labels(self, number: int) -> set[str]:
        return {label["name"] for label in self.issues[number]["labels"]}


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    base = f"/repos/{fake.repo}/issues"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                return self._send(401, {"message": "Bad credentials"})
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            match = re.fullmatch(re.escape(base) + r"(?:/(\d+))?(/comments)?", parts.path)
            if not match:
                return self._send(404, {"message": "Not Found"})
            number = int(match.group(1)) if match.group(1) else None
            with fake.lock:
                if number is not None and number not in fake.issues:
                    return self._send(404, {"message": "Not Found"})
                if number is None and method == "POST":
                    if not body.get("title"):
                        return self._send(422, {"message": "Validation Failed"})
                    new = len(fake.issues) + 1
                    fake.issues[new] = {
                        "number": new,
                        "title": body["title"],
                        "body": body.get("body", ""),
                        "labels": [{"name": n} for n in body.get("labels", [])],
                        "state": "open",
                        "state_reason": None,
                        "html_url": f"https://github.com/{fake.repo}/issues/{new}",
                    }
                    return self._send(201, fake.issues[new])
                if number is None and method == "GET":
                    query = parse_qs(parts.query)
                    wanted = set(filter(None, query.get("labels", [""])[0].split(",")))
                    state = query.get("state", ["open"])[0]
                    per_page = int(query.get("per_page", ["30"])[0])
                    page = int(query.get("page", ["1"])[0])
                    found = [
                        i
                        for i in sorted(fake.issues.values(), key=lambda i: -i["number"])
                        if wanted <= {lb["name"] for lb in i["labels"]}
                        and (state == "all" or i["state"] == state)
                    ]
                    return self._send(200, found[(page - 1) * per_page : page * per_page])
                assert number is not None
                if match.group(2) and method == "POST":
                    fake.comments.setdefault(number, []).append(body["body"])
                    return self._send(201, {"body": body["body"]})
                if method == "GET":
                    return self._send(200, fake.issues[number])
                if method == "PATCH":
                    issue = fake.issues[number]
                    for key in ("title", "body", "state", "state_reason"):
                        if key in body:
                            issue[key] = body[key]
                    if "labels" in body:
                        issue["labels"] = [{"name": n} for n in body["labels"]]
                    return self._send(200, issue)
            return self._send(405, {"message": "Method Not Allowed"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PATCH(self) -> None:
            self._route("PATCH")

    return Handler


@contextmanager
def serve(repo: str = "flowchat/ops-log", token: str = "test-token") -> Iterator[FakeGitHub]:
    fake = FakeGitHub(repo=repo, token=token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
