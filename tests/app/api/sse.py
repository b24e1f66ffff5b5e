"""A small reader of Server-Sent Events for the tests (what a browser's parser does)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx


@dataclass
class Event:
    event: str
    data: str
    at: float  # time.monotonic() when it arrived

    def json(self):
        return json.loads(self.data)


def events(response: httpx.Response) -> Iterator[Event]:
    name, data = "message", []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield Event(name, "\n".join(data), time.monotonic())
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        yield Event(name, "\n".join(data), time.monotonic())


def read_stream(client: httpx.Client, url: str, **kw) -> list[Event]:
    with client.stream("GET", url, **kw) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(events(response))
