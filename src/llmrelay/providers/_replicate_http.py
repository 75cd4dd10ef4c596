"""Replicate's HTTP plumbing: key scoping, redirects, problem+json errors, predictions.

Shared by the chat stream (``replicate.py``) and image generation
(``_replicate_images.py``). The API token is sent only to the origins a prediction
allows (the API base URL's, and the ``urls.stream`` origin Replicate named); a redirect
is followed by hand, and the ``Authorization`` header is dropped whenever the target's
origin is not one of them. Error bodies are RFC 7807 ``application/problem+json``:
``{"title"?, "detail", "status", "invalid_fields"?: [{"type", "field", "description"}]}``
(https://replicate.com/docs/topics/predictions/create-a-prediction, replicate-python
``replicate/exceptions.py``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from .. import errors
from .._http import (
    MAX_BODY,
    error_for_status,
    read_bounded,
    read_json,
    retry_after_seconds,
    upstream_text,
)

__all__ = [
    "CANCEL_TIMEOUT",
    "MAX_REDIRECTS",
    "Prediction",
    "Session",
    "api_error",
    "origin",
    "parse_prediction",
    "prediction_route",
]

log = logging.getLogger("llmrelay.providers.replicate")

MAX_REDIRECTS = 5
"""Redirects followed for one GET before giving up with ``ProtocolError``."""
CANCEL_TIMEOUT = 3.0
"""Seconds a best-effort ``POST urls.cancel`` may take (it runs shielded on close)."""


_MODEL = re.compile(
    r"([A-Za-z0-9][\w.-]*)/([A-Za-z0-9][\w.-]*)(?::([A-Za-z0-9][\w.-]*))?", re.ASCII
)


def prediction_route(base_url: str, model: str) -> tuple[str, dict[str, Any]]:
    """The creation URL and the body fields that select ``model``.

    ``owner/name`` -> ``({base}/models/owner/name/predictions, {})``;
    ``owner/name:version`` -> ``({base}/predictions, {"version": version})``.

    Raises:
        llmrelay.errors.ConfigError: ``model`` is not ``owner/name[:version]`` (letters,
            digits, ``_``, ``.``, ``-``), so nothing can escape the URL path.
    """
    match = _MODEL.fullmatch(model)
    if match is None:
        raise errors.ConfigError(
            f"replicate: model ids are 'owner/name' or 'owner/name:version'; got {model!r}"
        )
    owner, name, version = match.groups()
    if version:
        return f"{base_url}/predictions", {"version": version}
    return f"{base_url}/models/{owner}/{name}/predictions", {}


def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, the port made explicit for http and https."""
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host, port


@dataclass(frozen=True, slots=True)
class Prediction:
    """The parts of a prediction object llmrelay uses.

    Attributes:
        id: the prediction id.
        status: ``starting``, ``processing``, ``succeeded``, ``failed`` or ``canceled``.
        output: the ``output`` value (``None``, a string, a list ...).
        error: the ``error`` value (``None`` or a message).
        stream: ``urls.stream`` (absolute URL) or ``None``.
        get: ``urls.get`` or ``None``.
        cancel: ``urls.cancel`` or ``None``.
    """

    id: str
    status: str
    output: Any
    error: Any
    stream: str | None
    get: str | None
    cancel: str | None


def _http_url(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        return None
    return value if url.scheme in ("http", "https") and url.host else None


def parse_prediction(payload: Any, *, provider: str, model: str) -> Prediction:
    """Validate a prediction JSON object (creation or ``urls.get`` answer).

    Raises:
        llmrelay.errors.ProtocolError: not an object, no string ``id``, or ``urls`` not
            an object of absolute http(s) URLs.
    """
    if not isinstance(payload, Mapping):
        raise errors.ProtocolError(
            f"the prediction is not a JSON object (a JSON {type(payload).__name__})",
            provider=provider,
            model=model,
            body=_dump(payload),
        )
    pid = payload.get("id")
    if not isinstance(pid, str) or not pid:
        raise errors.ProtocolError(
            "the prediction has no id", provider=provider, model=model, body=_dump(payload)
        )
    urls = payload.get("urls") or {}
    if not isinstance(urls, Mapping):
        raise errors.ProtocolError(
            "the prediction's urls is not an object",
            provider=provider,
            model=model,
            body=_dump(payload),
        )
    for key in ("stream", "get", "cancel"):
        if urls.get(key) is not None and _http_url(urls.get(key)) is None:
            raise errors.ProtocolError(
                f"the prediction's urls.{key} is not an absolute http(s) URL",
                provider=provider,
                model=model,
                body=_dump(payload),
            )
    status = payload.get("status")
    return Prediction(
        id=pid,
        status=status if isinstance(status, str) else "",
        output=payload.get("output"),
        error=payload.get("error"),
        stream=_http_url(urls.get("stream")),
        get=_http_url(urls.get("get")),
        cancel=_http_url(urls.get("cancel")),
    )


def _dump(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False)[:2000]


def api_error(
    status: int, body: str, *, provider: str, model: str, what: str, retry_after: float | None
) -> errors.ProviderError:
    """The typed error for a Replicate error response (problem+json or anything else).

    401/403 -> ``AuthenticationError``, 404 -> ``ModelNotFoundError``, 422 (and other
    4xx) -> ``InvalidRequestError`` whose message lists ``invalid_fields``, 429 ->
    ``RateLimitError`` with ``retry_after``, 5xx -> ``ProviderUnavailable``.
    """
    fields = _invalid_fields(body)
    if fields and 400 <= status < 500 and status not in (401, 403, 404, 408, 429):
        title = upstream_text(_problem_field(body, "title"), 100) or "invalid request"
        return errors.InvalidRequestError(
            f"{what} failed: HTTP {status}: {title}: {'; '.join(fields)}",
            provider=provider,
            model=model,
            status_code=status,
            body=body,
        )
    return error_for_status(
        status, body, provider=provider, model=model, what=what, retry_after=retry_after
    )


def _problem(body: str) -> Mapping[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return payload if isinstance(payload, Mapping) else {}


def _problem_field(body: str, key: str) -> str | None:
    value = _problem(body).get(key)
    return value if isinstance(value, str) and value else None


def _invalid_fields(body: str) -> list[str]:
    """``invalid_fields`` as ``"<field>: <description>"`` (or the description alone)."""
    items = _problem(body).get("invalid_fields")
    if not isinstance(items, list):
        return []
    out = []
    for item in items[:20]:
        if not isinstance(item, Mapping):
            continue
        field = upstream_text(item.get("field"), 100)
        text = upstream_text(item.get("description")) or upstream_text(item.get("type"), 100)
        text = text or "invalid"
        out.append(f"{field}: {text}" if field else text)
    return out


class Session:
    """HTTP calls of one provider instance: scoped key, manual redirects, typed errors.

    Args:
        http: the client's shared ``httpx.AsyncClient``.
        api_key: the Replicate API token.
        base_url: the API base URL (its origin always gets the key).
        provider: registry name, for errors.
    """

    def __init__(self, http: httpx.AsyncClient, api_key: str | None, base_url: str, provider: str):
        self.http = http
        self._key = api_key
        self.api_origin = origin(base_url)
        self.provider = provider

    def auth_for(
        self, url: str | httpx.URL, allowed: frozenset[tuple[str, str, int | None]] = frozenset()
    ) -> dict[str, str]:
        """``Authorization`` for ``url`` when its origin is the API's or in ``allowed``."""
        if not self._key:
            return {}
        where = origin(url)
        if where == self.api_origin or where in allowed:
            return {"authorization": f"Bearer {self._key}"}
        return {}

    def stream_origins(self, stream_url: str) -> frozenset[tuple[str, str, int | None]]:
        """The stream URL's origin, unless it would downgrade an https API to http."""
        where = origin(stream_url)
        if self.api_origin[0] == "https" and where[0] != "https":
            return frozenset()
        return frozenset({where})

    async def post_json(
        self,
        url: str,
        body: Mapping[str, Any] | None,
        *,
        model: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        http_timeout: httpx.Timeout | None = None,
    ) -> tuple[int, Any]:
        """POST ``body`` as JSON to an API URL; return ``(status, parsed JSON)``.

        Raises:
            llmrelay.errors.ProviderError: an HTTP error (``api_error``), a redirect
                (``ProtocolError``: a POST is never re-sent elsewhere), or a body that
                is too large or not JSON (``ProtocolError``).
        """
        request = self.http.build_request(
            "POST",
            url,
            json=body,
            headers={**(headers or {}), **self.auth_for(url)},
            timeout=http_timeout if http_timeout is not None else self.http.timeout,
        )
        response = await self.http.send(request, stream=True)
        try:
            await self._check(response, model=model, what=what)
            payload = await read_json(response, provider=self.provider, model=model, what=what)
        finally:
            await response.aclose()
        return response.status_code, payload

    async def _check(self, response: httpx.Response, *, model: str, what: str) -> None:
        """Raise for anything but a 2xx.

        A 3xx (with or without ``Location``) is a ``ProtocolError`` here, never an
        empty success.
        """
        if response.status_code >= 300:
            body = await read_bounded(
                response, provider=self.provider, model=model, what=f"{what} error body"
            )
            raise api_error(
                response.status_code,
                body.decode("utf-8", "replace"),
                provider=self.provider,
                model=model,
                what=what,
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )

    @asynccontextmanager
    async def get(
        self,
        url: str,
        *,
        model: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        allowed: frozenset[tuple[str, str, int | None]] = frozenset(),
        model_404: bool = True,
    ) -> AsyncIterator[httpx.Response]:
        """GET ``url`` as a streamed response, following up to ``MAX_REDIRECTS`` redirects.

        The key goes only to the API origin and ``allowed`` origins, on each hop; only
        http(s) targets are followed. HTTP errors are raised (``api_error``) after the
        error body is read (bounded); the yielded response is a 2xx.

        Args:
            url: the absolute URL.
            model: the model id, for errors.
            what: what is fetched, for errors.
            headers: extra request headers.
            allowed: origins besides the API's that may receive the key.
            model_404: a 404 means the model does not exist (``ModelNotFoundError``);
                ``False`` for a prediction's own URLs (its stream, ``urls.get``), whose
                404 says nothing about the model (``ProtocolError``).

        Raises:
            llmrelay.errors.ProviderError: HTTP error, bad or too many redirects.
        """
        for hop in range(MAX_REDIRECTS + 1):
            request = self.http.build_request(
                "GET", url, headers={**(headers or {}), **self.auth_for(url, allowed)}
            )
            response = await self.http.send(request, stream=True)
            try:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    target = response.url.join(location)
                    if target.scheme not in ("http", "https") or not target.host:
                        await self._check(response, model=model, what=what)
                    url = str(target)
                    continue
                try:
                    await self._check(response, model=model, what=what)
                except errors.ModelNotFoundError as exc:
                    if model_404:
                        raise
                    after = " after a redirect" if hop else ""
                    raise errors.ProtocolError(
                        f"{what}: the prediction's URL answered HTTP 404{after}",
                        provider=self.provider,
                        model=model,
                        status_code=404,
                        body=exc.body,
                    ) from None
                yield response
                return
            finally:
                await response.aclose()
        raise errors.ProtocolError(
            f"{what}: more than {MAX_REDIRECTS} redirects", provider=self.provider, model=model
        )

    async def get_json(
        self, url: str, *, model: str, what: str, limit: int = MAX_BODY, model_404: bool = True
    ) -> Any:
        """GET an API URL and parse its JSON body (bounded by ``limit``; see ``get``)."""
        async with self.get(url, model=model, what=what, model_404=model_404) as response:
            return await read_json(
                response, provider=self.provider, model=model, limit=limit, what=what
            )

    async def cancel(self, url: str | None, model: str) -> None:
        """Best-effort ``POST urls.cancel``: shielded, bounded by ``CANCEL_TIMEOUT``.

        Runs even while the calling task is being cancelled; never raises (a failure
        is logged at debug level).
        """
        if not url:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_TIMEOUT) as scope:
            try:
                response = await self.http.post(url, headers=self.auth_for(url))
                log.debug("cancel %s: HTTP %s", model, response.status_code)
            except httpx.HTTPError as exc:
                log.debug("cancel %s failed: %r", model, exc)
        if scope.cancelled_caught:
            log.debug("cancel %s: no answer within %ss", model, CANCEL_TIMEOUT)
