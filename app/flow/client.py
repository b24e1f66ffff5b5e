"""Synchronous client of the CI&T Flow gateway (used inside RQ worker processes).

- The API-key token is cached (thread-safe, one fetch at a time) and renewed when less than
  ``max(30 s, 10 %)`` of its lifetime remains (at most half of the lifetime, so short-lived tokens
  are still reused), and once on a 401 from chat completions.
- 5xx, 429 (``Retry-After`` honoured, capped by ``backoff_max``), timeouts and connection errors are
  retried at most ``max_retries`` times with bounded exponential backoff and jitter; then a typed
  :class:`~app.flow.errors.FlowError` says what happened.
- The agent secret and the token never appear in logs, exception messages or reprs.

This file is over 500 lines and stays one: the token cache, the retry loop and the stream
reader share one HTTP connection pool, one lock and one cached token in :class:`FlowClient`, and
each path (a 401 renews the token inside the retry loop, a stream retries only before its first
byte) crosses the others; split apart they would be mixins reaching into each other's state.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry.trace import SpanKind
from pydantic import SecretStr, ValidationError

from app.core.closing import ClosedOnExit
from app.flow.errors import (
    FlowAuthError,
    FlowBadResponseError,
    FlowError,
    FlowRateLimitedError,
    FlowStreamError,
    FlowTimeoutError,
    FlowUnavailableError,
)
from app.flow.models import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ResponseMessage,
    TokenRequest,
    TokenResponse,
    Usage,
)
from app.observability.tracing import traced, usage_attributes

if TYPE_CHECKING:
    from app.core.settings import Settings

logger = logging.getLogger(__name__)

TOKEN_PATH = "/auth-engine-api/v1/api-key/token"
CHAT_PATH = "/ai-orchestration-api/v1/openai/chat/completions"

RENEW_MIN_SECONDS = 30.0
RENEW_FRACTION = 0.10
EXCERPT_CHARS = 160
_REDACTED = "***"
_NUMBER_WORDS = ("zero", "once", "twice", "three", "four", "five", "six", "seven", "eight", "nine")

OnRequest = Callable[[str, float], None]
OnDelta = Callable[[str], None]


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)  # the bearer token never shows in a repr
    lifetime: float
    expires_at: float  # on the client's clock

    def fresh(self, now: float) -> bool:
        margin = min(max(RENEW_MIN_SECONDS, RENEW_FRACTION * self.lifetime), self.lifetime / 2)
        return self.expires_at - now > margin


@dataclass(frozen=True)
class _Failure:
    label: str  # "503", "429", "timeout", "error"
    detail: str  # short, redacted excerpt of the body or the transport error
    retry_after: float | None = None


def _times(n: int) -> str:
    if n < len(_NUMBER_WORDS) and n > 2:
        return f"{_NUMBER_WORDS[n]} times"
    if n in (1, 2):
        return _NUMBER_WORDS[n]
    return f"{n} times"


def _parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (a number or an HTTP date), or None when absent/unparseable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class FlowClient(ClosedOnExit):
    """Talks to Flow's token and chat-completions endpoints; see the module docstring."""

    def __init__(
        self,
        *,
        base_url: str,
        tenant: str,
        agent: str,
        agent_secret: str | SecretStr,
        app_to_access: str = "llm-api",
        model: str = "gpt-4o-mini",
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        transport: httpx.BaseTransport | None = None,
        on_request: OnRequest | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if timeout <= 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("timeout must be > 0 and backoff values >= 0")
        self._base_url = base_url.rstrip("/")
        self._tenant = tenant
        self._agent = agent
        self._secret = (
            agent_secret if isinstance(agent_secret, SecretStr) else SecretStr(agent_secret)
        )
        self._app_to_access = app_to_access
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._on_request = on_request
        self._clock = clock
        self._sleep = sleep
        self._rng = random.Random()
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self._base_url, timeout=httpx.Timeout(timeout), transport=transport
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> FlowClient:
        """A client configured from the service settings; keyword arguments override them."""
        params: dict[str, Any] = {
            "base_url": settings.FLOW_BASE_URL,
            "tenant": settings.FLOW_TENANT,
            "agent": settings.FLOW_AGENT,
            "agent_secret": settings.FLOW_AGENT_SECRET,
            "app_to_access": settings.FLOW_APP_TO_ACCESS,
            "model": settings.FLOW_MODEL,
            "timeout": settings.FLOW_TIMEOUT_SECONDS,
            "max_retries": settings.FLOW_MAX_RETRIES,
            "backoff_max": settings.FLOW_BACKOFF_MAX_SECONDS,
        }
        params.update(kw)
        return cls(**params)

    # --- public API ---------------------------------------------------------------------------

    @traced("flow chat", kind=SpanKind.CLIENT, on_result=usage_attributes)
    def chat(
        self,
        messages: Sequence[dict[str, str]] | Sequence[ChatMessage],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> ChatCompletion:
        """One chat completion. Raises a :class:`FlowError` subclass when Flow cannot answer."""
        request = self._request(messages, temperature=temperature, max_tokens=max_tokens)
        body = request.model_dump(mode="json", exclude_none=True, exclude={"stream"})

        renewed = False
        while True:
            token = self._get_token()
            headers = self._headers(token)
            response = self._post_with_retries(
                "chat completions", CHAT_PATH, body, headers, self.max_retries, observe=True
            )
            if response.status_code == 401 and not renewed:
                logger.info("Flow refused the cached token (401); renewing it once")
                self._invalidate(token)
                renewed = True
                continue
            return self._parse_completion(response, renewed)

    @traced("flow chat", kind=SpanKind.CLIENT, on_result=usage_attributes)  # usage: last chunk
    def chat_stream(
        self,
        messages: Sequence[dict[str, str]] | Sequence[ChatMessage],
        on_delta: OnDelta,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> ChatCompletion:
        """A chat completion streamed from Flow (``stream: true``, OpenAI's SSE chunks):
        ``on_delta`` gets each piece of text as it arrives; the whole completion (with Flow's
        ``usage`` when it sends one) is returned at the end.

        Failures before the first byte of the answer are retried like :meth:`chat`; a stream
        that breaks off afterwards raises :class:`FlowStreamError`. A gateway that answers a
        streaming request with a plain JSON completion is accepted: its text is one delta.
        """
        request = self._request(
            messages,
            temperature=temperature,
            max_tokens=max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
        body = request.model_dump(mode="json", exclude_none=True)
        renewed = False
        while True:
            token = self._get_token()
            headers = {**self._headers(token), "Accept": "text/event-stream"}
            response = self._post_with_retries(
                "chat completions",
                CHAT_PATH,
                body,
                headers,
                self.max_retries,
                observe=True,
                stream=True,
            )
            try:
                if response.status_code == 401 and not renewed:
                    response.read()
                    logger.info("Flow refused the cached token (401); renewing it once")
                    self._invalidate(token)
                    renewed = True
                    continue
                content_type = response.headers.get("content-type", "")
                if response.status_code != 200 or "text/event-stream" not in content_type:
                    response.read()
                    completion = self._parse_completion(response, renewed)
                    on_delta(completion.content)  # the gateway did not stream: one chunk
                    return completion
                return self._read_stream(response, on_delta)
            finally:
                response.close()

    def _request(
        self, messages: Sequence[dict[str, str]] | Sequence[ChatMessage], **fields: Any
    ) -> ChatCompletionRequest:
        """The validated chat request (a ValueError that names no content when it is invalid)."""
        try:
            return ChatCompletionRequest(
                model=self.model,
                messages=[ChatMessage.model_validate(m) for m in messages],
                **fields,
            )
        except ValidationError as exc:
            raise ValueError(f"invalid chat request: {exc.error_count()} error(s)") from None

    def _headers(self, token: _Token) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token.value}",
            "FlowTenant": self._tenant,
            "FlowAgent": self._agent,
        }

    def _chunk(self, data: str) -> ChatCompletionChunk:
        """One ``data:`` event as a chunk, or the :class:`FlowStreamError` that says why not.

        An answer is one event per word or so: the usual event (valid, no ``"error"`` key) is
        parsed and validated by pydantic in one pass (~40 % less CPU than ``json.loads`` then
        validating); anything else takes the slow path, which tells the reasons apart."""
        if '"error"' not in data:
            with contextlib.suppress(ValidationError):
                return ChatCompletionChunk.model_validate_json(data)
        try:
            payload = json.loads(data)
        except ValueError:
            raise FlowStreamError(
                "Flow sent an unreadable event in the middle of the answer"
            ) from None
        if isinstance(payload, dict) and payload.get("error"):
            inner = payload["error"]
            message = inner.get("message") if isinstance(inner, dict) else inner
            raise FlowStreamError(
                "Flow broke off the answer with an error: "
                f"{self._excerpt(str(message or 'no reason given'))}"
            )
        try:
            return ChatCompletionChunk.model_validate(payload)
        except ValidationError:
            raise FlowStreamError(
                "Flow sent an unusable chunk in the middle of the answer"
            ) from None

    def _read_stream(self, response: httpx.Response, on_delta: OnDelta) -> ChatCompletion:
        parts: list[str] = []
        usage: Usage | None = None
        finish_reason: str | None = None
        first: ChatCompletionChunk | None = None
        finished = False
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # comments, event names, blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    finished = True
                    break
                chunk = self._chunk(data)
                first = first or chunk
                usage = chunk.usage or usage
                for choice in chunk.choices[:1]:
                    finish_reason = choice.finish_reason or finish_reason
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        on_delta(choice.delta.content)
        except httpx.TimeoutException:
            raise FlowStreamError(
                f"Flow stopped sending the answer (no data for {self.timeout:g} s)"
            ) from None
        except httpx.TransportError as exc:
            raise FlowStreamError(
                f"the connection to Flow broke in the middle of the answer ({type(exc).__name__})"
            ) from None
        if not finished and finish_reason is None:
            raise FlowStreamError("Flow ended the answer's stream before it was complete")
        return ChatCompletion(
            id=first.id if first and first.id else "chatcmpl-stream",
            created=first.created if first and first.created else int(time.time()),
            model=first.model if first and first.model else self.model,
            choices=[
                Choice(message=ResponseMessage(content="".join(parts)), finish_reason=finish_reason)
            ],
            usage=usage,
        )

    def check(self) -> None:
        """Readiness: make sure a token can be obtained (cached when still fresh).

        A single attempt, no retries, so a readiness probe answers promptly.
        """
        self._get_token(max_retries=0)

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return (
            f"FlowClient(base_url={self._base_url!r}, model={self.model!r}, "
            f"token_cached={self._token is not None})"
        )

    # --- token --------------------------------------------------------------------------------

    def _get_token(self, max_retries: int | None = None) -> _Token:
        with self._token_lock:
            token = self._token
            if token is not None and token.fresh(self._clock()):
                return token
            self._token = self._fetch_token(
                self.max_retries if max_retries is None else max_retries
            )
            return self._token

    def _invalidate(self, token: _Token) -> None:
        with self._token_lock:
            if self._token is token:  # another thread may already have renewed it
                self._token = None

    def _fetch_token(self, max_retries: int) -> _Token:
        missing = [
            name
            for name, value in (
                ("FLOW_TENANT", self._tenant),
                ("FLOW_AGENT", self._agent),
                ("FLOW_AGENT_SECRET", self._secret.get_secret_value()),
            )
            if not value
        ]
        if missing:
            raise FlowAuthError(f"Flow credentials are not set: {', '.join(missing)} is empty")
        body = TokenRequest(
            client_id=self._agent, client_secret=self._secret, app_to_access=self._app_to_access
        ).wire()
        started = self._clock()
        response = self._post_with_retries(
            "token endpoint",
            TOKEN_PATH,
            body,
            {"FlowTenant": self._tenant},
            max_retries,
            observe=False,
        )
        status = response.status_code
        if status in (401, 403):
            raise FlowAuthError(
                f"Flow refused the agent credentials (HTTP {status} from the token endpoint); "
                "check FLOW_TENANT, FLOW_AGENT and FLOW_AGENT_SECRET",
                status=status,
            )
        if status != 200:
            raise FlowBadResponseError(
                f"Flow token endpoint answered HTTP {status} (body: {self._summary(response)})",
                status=status,
            )
        try:
            parsed = TokenResponse.model_validate_json(response.content)
        except ValidationError:
            raise FlowBadResponseError(
                "Flow token endpoint answered 200 without a usable access_token/expires_in",
                status=status,
            ) from None
        logger.debug("obtained a Flow token valid for %.0f s", parsed.expires_in)
        return _Token(
            value=parsed.access_token.get_secret_value(),
            lifetime=parsed.expires_in,
            expires_at=started + parsed.expires_in,
        )

    # --- HTTP with retries --------------------------------------------------------------------

    def _post_with_retries(
        self,
        what: str,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        max_retries: int,
        *,
        observe: bool,
        stream: bool = False,
    ) -> httpx.Response:
        """POST until a non-retryable answer arrives; raise a typed error after the last failure.

        With ``stream`` the returned response's body is not read yet (the caller closes it)."""
        failures: list[_Failure] = []
        for attempt in range(max_retries + 1):
            started = time.perf_counter()
            failure: _Failure
            try:
                response = self._http.send(
                    self._http.build_request("POST", path, json=body, headers=headers),
                    stream=stream,
                )
            except httpx.TimeoutException as exc:
                failure = _Failure("timeout", type(exc).__name__)
            except httpx.TransportError as exc:
                failure = _Failure("error", f"{type(exc).__name__}: {self._excerpt(str(exc))}")
            else:
                status = response.status_code
                if status < 500 and status != 429:
                    self._observe(observe, str(status), time.perf_counter() - started)
                    logger.debug("Flow %s -> %s (attempt %d)", what, status, attempt + 1)
                    return response
                if stream:
                    with contextlib.suppress(httpx.HTTPError):
                        response.read()
                    response.close()
                failure = _Failure(
                    str(status),
                    self._summary(response),
                    _parse_retry_after(response.headers.get("Retry-After")),
                )
            self._observe(observe, failure.label, time.perf_counter() - started)
            failures.append(failure)
            if attempt == max_retries:
                break
            delay = self._delay(attempt, failure.retry_after)
            logger.warning(
                "Flow %s failed (%s, attempt %d of %d); retrying in %.2f s",
                what,
                failure.label,
                attempt + 1,
                max_retries + 1,
                delay,
            )
            self._sleep(delay)
        raise self._give_up(what, failures)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return self._rng.uniform(ceiling / 2, ceiling)

    def _give_up(self, what: str, failures: list[_Failure]) -> FlowError:
        last = failures[-1]
        n = len(failures)
        labels = [f.label for f in failures]
        if last.label == "timeout":
            what_happened = f"timed out (after {self.timeout:g} s)"
        elif last.label == "error":
            what_happened = "could not be reached"
        else:
            what_happened = f"returned {last.label}"
        if n == 1:
            reason = f"Flow {what} {what_happened}"
        elif len(set(labels)) == 1:
            reason = f"Flow {what} {what_happened} {_times(n)} in a row"
        else:
            reason = f"Flow {what} failed {_times(n)} in a row ({', '.join(labels)})"
        if last.detail:
            reason += f" (last: {last.detail})"
        status = int(last.label) if last.label.isdigit() else None
        error_type: type[FlowError]
        if last.label == "timeout":
            error_type = FlowTimeoutError
        elif last.label == "429":
            error_type = FlowRateLimitedError
        else:
            error_type = FlowUnavailableError
        logger.error("%s", reason)
        return error_type(reason, status=status, attempts=n)

    def _observe(self, enabled: bool, label: str, seconds: float) -> None:
        if not enabled or self._on_request is None:
            return
        try:
            self._on_request(label, seconds)
        except Exception:  # a metrics hook must never break a chat
            logger.exception("on_request hook failed")

    # --- responses ----------------------------------------------------------------------------

    def _parse_completion(self, response: httpx.Response, renewed: bool) -> ChatCompletion:
        status = response.status_code
        if status in (401, 403):
            detail = "after renewing the token" if renewed else "(forbidden)"
            raise FlowAuthError(
                f"Flow refused the chat request with HTTP {status} {detail}; "
                "check FLOW_TENANT, FLOW_AGENT and FLOW_AGENT_SECRET "
                f"(body: {self._summary(response)})",
                status=status,
            )
        if status != 200:
            raise FlowBadResponseError(
                f"Flow chat completions answered HTTP {status} (body: {self._summary(response)})",
                status=status,
            )
        try:
            return ChatCompletion.model_validate_json(response.content)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors()[:3]
            )
            raise FlowBadResponseError(
                f"Flow chat completions answered 200 with an unusable body ({problems})",
                status=status,
            ) from None

    def _summary(self, response: httpx.Response) -> str:
        """The error message of a JSON error body when there is one, else the body itself."""
        text = response.text
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            inner = data.get("error")
            message = inner.get("message") if isinstance(inner, dict) else inner
            message = message or data.get("message") or data.get("detail")
            if isinstance(message, str) and message:
                text = message
        return self._excerpt(text)

    def _excerpt(self, text: str) -> str:
        """A short single-line excerpt with any credential or token blanked out."""
        text = " ".join(text.split())
        secrets = [self._secret.get_secret_value()]
        token = self._token
        if token is not None:
            secrets.append(token.value)
        for secret in secrets:
            if secret:
                text = text.replace(secret, _REDACTED)
        if len(text) > EXCERPT_CHARS:
            text = text[: EXCERPT_CHARS - 1] + "…"
        return text or "<empty body>"
