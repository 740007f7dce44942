"""A small ``httpx`` client of Prolific's REST API (``/api/v1``), with the shared retry policy.

Prolific has no official Python SDK. Every call goes through ``call``: ``Authorization: Token
…`` (the token lives only in the client's headers, never in a repr, log or error), retries on 429,
5xx and network failures with backoff and jitter (``connectors.retry``), and Prolific's error body
(``{"error": {"status", "error_code", "title", "detail"}}``) becomes a ``ConnectorError``. A call
that must never be repeated (the bonus ``pay``) passes ``once=True``: one attempt, and a failure
whose outcome is unknown comes back as a retryable ``ConnectorError`` for the ledger to settle.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from connectors.base import ConnectorError
from connectors.retry import RetryPolicy, call_with_retry

PROVIDER = "prolific"


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: float | None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


class ProlificClient:
    def __init__(self, base_url: str, token: str, retry: RetryPolicy, timeout: float | None = None):
        self.base_url = base_url.rstrip("/")
        self.retry = RetryPolicy(**{**retry.__dict__, "endpoint": self.base_url})
        self.calls: Counter = Counter()
        read = timeout or self.retry.read_timeout_s
        self._http = httpx.Client(base_url=self.base_url + "/api/v1", headers={"Authorization": f"Token {token}"},
                                  timeout=httpx.Timeout(read, connect=self.retry.connect_timeout_s))

    def __repr__(self) -> str:
        return f"ProlificClient({self.base_url!r})"

    @staticmethod
    def _classify(exc: BaseException) -> tuple[bool, float | None]:
        if isinstance(exc, Refused):
            return exc.status == 429 or exc.status >= 500, exc.retry_after
        return isinstance(exc, httpx.TransportError), None

    def call(self, operation: str, method: str, path: str, *, body: Any = None, params: Any = None,
             once: bool = False) -> Any:
        def attempt() -> Any:
            self.calls[operation] += 1
            resp = self._http.request(method, path, json=body, params=params)
            if resp.status_code >= 400:
                raise refusal(resp)
            if not resp.content:
                return None
            try:
                return resp.json()
            except ValueError:
                return resp.text

        if once:
            try:
                return attempt()
            except Refused as exc:
                retryable, _ = self._classify(exc)
                raise ConnectorError(PROVIDER, operation, exc.code, exc.message, retryable=retryable) from None
            except httpx.TransportError as exc:
                raise ConnectorError(PROVIDER, operation, "OutcomeUnknown",
                                     f"no answer from Prolific ({type(exc).__name__}); not repeated",
                                     retryable=True) from None
        try:
            return call_with_retry(attempt, classify=self._classify, policy=self.retry, provider=PROVIDER,
                                   operation=operation)
        except Refused as exc:
            raise ConnectorError(PROVIDER, operation, exc.code, exc.message) from None

    def pages(self, operation: str, path: str, params: dict, page_size: int) -> list[dict]:
        """Every result of a paged list (``page`` / ``page_size``), read to the end: a short or
        empty page ends it (Prolific does not say how many pages there are)."""
        out: list[dict] = []
        page = 1
        while True:
            try:
                got = self.call(operation, "GET", path, params={**params, "page": page, "page_size": page_size})
            except ConnectorError as exc:
                if page > 1 and exc.code in ("NotFound", "404"):
                    break  # past the last page
                raise
            rows = got.get("results", []) if isinstance(got, dict) else []
            out += rows
            if len(rows) < page_size:
                break
            page += 1
        return out

    def close(self) -> None:
        self._http.close()


def refusal(resp: httpx.Response) -> Refused:
    status = resp.status_code
    try:
        err = resp.json()
        err = err.get("error", err) if isinstance(err, dict) else {}
        detail = err.get("detail", "")
        if isinstance(detail, list):
            detail = "; ".join(map(str, detail))
        elif isinstance(detail, dict):
            detail = "; ".join(f"{k}: {v}" for k, v in detail.items())
        code = str(err.get("title") or err.get("error_code") or f"HTTP{status}")
        message = str(detail or err.get("title") or resp.reason_phrase)
    except ValueError:
        code, message = f"HTTP{status}", resp.text[:200] or resp.reason_phrase
    if status in (401, 403):
        code, message = "Unauthorized", f"Prolific refused the API token (HTTP {status}): {message}"
    elif status == 404:
        code = "NotFound"
    hint = resp.headers.get("Retry-After")
    try:
        retry_after = float(hint) if hint else None
    except ValueError:
        retry_after = None
    return Refused(status, code, message, retry_after)
