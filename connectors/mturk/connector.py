"""``MTurkConnector``: the neutral ``Connector`` protocol over boto3's ``mturk`` client.

Mapping: a batch is a HIT type (and one more per lane), a page is a HIT (HTMLQuestion crowd-form), a pool is a
qualification type, a screening test is a qualification type with Test + AnswerKey (MTurk scores
it), a block is a worker block. Every API call goes through ``_call``: counted in ``calls``, paced
by the account's AIMD rate limiter (``rate`` requests/s, one bucket per endpoint and access key in
the process), retried by the shared tenacity policy (botocore's own retries are off), and a
``ClientError`` becomes a ``ConnectorError`` carrying MTurk's ``TurkErrorCode``. ``max_workers``
threads keep calls in flight so the limiter, not the round trip, sets the pace.

Item keys travel in the HIT's ``RequesterAnnotation`` as ``"{page_id};{key0},{key1},..."`` (the
engine keeps keys short and free of ``;`` and ``,``), so any process can map ``i{k}`` back.

``fetch`` follows HITs: the caller's ``pages`` (a campaign reads only what it published, though
ListHITs shows the whole account) or, without them, the batch's HITs (found by HIT type on the first
poll, then those in the cursor and those this object published). A poll pages through ListHITs
(100 HITs a call, each with its assignment counts) until it has seen every followed HIT, then calls
ListAssignmentsForHIT only for HITs whose ``answer_counts`` moved since the cursor: a new answer,
or an approval or rejection (so a changed state is read again). Idle poll: ceil(HITs listed / 100)
calls, the followed HITs plus any the account lists before them; busy: one more per changed HIT
(more past 100 assignments on one). The counts are read before the assignments, so an answer
submitted in between moves them and the next poll reads it. Cursor (compact JSON): ``{"v": 2,
"open": {HITId: {"c": [answers in, decided], "s": {AssignmentId: "S"|"A"|"R"}, "f": 1 if
finished}}}``; finished (Reviewable) HITs are reported in ``finished_pages`` and kept only while
the caller still passes them, so it is bounded by the open pages. A v1 cursor reads as one whose
HITs were never counted: each is listed once more and its new answers only are returned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import boto3
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from connectors.base import (
    LANE_KEY,
    BatchRef,
    BatchSpec,
    BonusReceipt,
    ConnectorError,
    FetchResult,
    Page,
    PoolRef,
    PoolSpec,
    PublishedPage,
    RawAssignment,
    ScreeningTest,
)
from connectors.mturk import render
from connectors.mturk.answers import AnswerParseError, parse_answer
from connectors.retry import RetryPolicy, account_limiter, call_with_retry

log = logging.getLogger(__name__)

PROVIDER = "mturk"
ENDPOINTS = {
    "local": "http://127.0.0.1:8765",
    "sandbox": "https://mturk-requester-sandbox.us-east-1.amazonaws.com",
    "production": "https://mturk-requester.us-east-1.amazonaws.com",
}
LOCALE_QUALIFICATION = "00000000000000000071"
MAX_QUESTION_BYTES = 65535  # MTurk's limit on a Question document
PAST = datetime(2015, 1, 1, tzinfo=UTC)  # "expire now": MTurk takes any time in the past
THROTTLE_CODES = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
                  "AWS.MechanicalTurk.Throttled", "ServiceUnavailable", "SlowDown"}
RETRYABLE_CODES = THROTTLE_CODES | {"ServiceFault", "AWS.MechanicalTurk.ServiceFault", "InternalFailure",
                                    "InternalError", "ServiceUnavailableException"}
# Requests per second an account may send (the limiter's ceiling), and calls in flight. MTurk's
# guide gives no figure, only that it "limits the velocity of requests" (a 503 or a throttling
# error past it); 5/s is the production figure issue 19 works with, and the AIMD limiter finds the
# real one below it. The local server has no limit of its own: 1000/s never binds there.
RATE = {"local": 1000.0, "sandbox": 5.0, "production": 5.0}
CONCURRENCY = {"local": 32, "sandbox": 8, "production": 8}
_HIT_ID_IN_MESSAGE = re.compile(r"\bHIT(?:\s*Id|\s+with\s+ID)[\s:=\"']*([A-Z0-9]{20,40})\b", re.IGNORECASE)


def request_token(key: str) -> str:
    """A UniqueRequestToken (<= 64 chars) derived deterministically from an idempotency key.
    MTurk remembers tokens for 24 hours; within that window a repeat cannot duplicate work."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def annotation(page: Page) -> str:
    """``"{page_id};{key0},{key1},..."`` for RequesterAnnotation (<= 255 chars)."""
    keys = [item.item_key for item in page.items]
    bad = [k for k in keys if ";" in k or "," in k] + ([page.page_id] if ";" in page.page_id else [])
    if bad:
        raise ConnectorError(PROVIDER, "CreateHITWithHITType", "InvalidItemKey",
                             f"ids must not contain ';' or ',': {bad}", field="item_key")
    text = f"{page.page_id};{','.join(keys)}"
    if len(text) > 255:
        raise ConnectorError(PROVIDER, "CreateHITWithHITType", "AnnotationTooLong",
                             f"page {page.page_id}: RequesterAnnotation would be {len(text)} chars (max 255);"
                             " use shorter item keys or fewer items per page", field="RequesterAnnotation")
    return text


def split_annotation(text: str | None) -> tuple[str | None, list[str]]:
    if not text or ";" not in text:
        return (text or None), []
    page_id, _, keys = text.partition(";")
    return page_id, [k for k in keys.split(",") if k]


FINISHED_STATUSES = {"Reviewable", "Reviewing", "Disposed"}  # nothing left to hand out or to come in


def answer_counts(hit: dict[str, Any]) -> tuple[int, int]:
    """(answers in, answers decided) from a HIT's counts. Answers in (submitted, approved or
    rejected) = MaxAssignments - Available - Pending, which every submission raises whether a
    server counts submitted ones in NumberOfAssignmentsCompleted or not; accepting and returning
    leave it alone. Decided = NumberOfAssignmentsCompleted (approved or rejected, on MTurk)."""
    total = int(hit.get("MaxAssignments", 0))
    waiting = int(hit.get("NumberOfAssignmentsAvailable", 0)) + int(hit.get("NumberOfAssignmentsPending", 0))
    return max(0, total - waiting), int(hit.get("NumberOfAssignmentsCompleted", 0))


def money(amount: Decimal, operation: str) -> str:
    """USD amount as MTurk's "0.00" string; refuses fractions of a cent rather than rounding."""
    try:
        cents = Decimal(amount).quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise ConnectorError(PROVIDER, operation, "InvalidAmount", f"not an amount: {amount!r}") from exc
    if cents != amount or cents < 0:
        raise ConnectorError(PROVIDER, operation, "InvalidAmount",
                             f"{amount} is not a non-negative whole number of cents")
    return f"{cents:.2f}"


@dataclass
class _Hit:
    """What fetch knows of one HIT it follows (also its cursor entry): the answer counts ListHITs
    showed when its assignments were last read, and the status of every assignment read."""

    annotation: str | None = None
    multi: list[str] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # AssignmentId -> "S"|"A"|"R" as read ("?": not known)
    counts: tuple[int, int] | None = None  # (answers in, answers decided) at the last read; None: never read
    done: bool = False  # MTurk has nothing left to hand out (Reviewable)

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"s": self.seen}
        if self.counts is not None:
            out["c"] = list(self.counts)
        if self.done:
            out["f"] = 1
        return out

    @classmethod
    def load(cls, d: dict[str, Any]) -> _Hit:
        seen = d.get("s", {})
        if isinstance(seen, list):  # a v1 cursor kept ids only
            seen = dict.fromkeys(seen, "?")
        counts = (int(d["c"][0]), int(d["c"][1])) if "c" in d else None
        return cls(d.get("a"), list(d.get("m", [])), dict(seen), counts, bool(d.get("f")))


class _Listing:
    """One pass over ListHITs, read as far as the fetches of a round need it (``fetch_round``)."""

    def __init__(self, hits: Iterator[dict[str, Any]]) -> None:
        self._hits = hits
        self.seen: dict[str, dict[str, Any]] = {}  # in listing order

    def find(self, follow: set[str] | None, hit_types: Sequence[str]) -> dict[str, dict[str, Any]]:
        need = None if follow is None else set(follow) - set(self.seen)
        if need is None or need:
            for hit in self._hits:
                self.seen[hit["HITId"]] = hit
                if need is not None:
                    need.discard(hit["HITId"])
                    if not need:
                        break
        if follow is None:
            return {h: hit for h, hit in self.seen.items() if hit.get("HITTypeId") in hit_types}
        return {h: hit for h, hit in self.seen.items() if h in follow}


class MTurkConnector:
    """Amazon Mechanical Turk through boto3, against production, the sandbox or the local server."""

    provider = PROVIDER

    def __init__(self, environment: str = "local", endpoint_url: str | None = None, *,
                 region: str = "us-east-1", max_workers: int | None = None, rate: float | None = None,
                 retry: RetryPolicy | None = None, session: boto3.Session | None = None):
        """``rate``: requests per second for the account (the ceiling of its AIMD limiter);
        ``max_workers``: calls in flight at once (publishing, polling, closing). Defaults per
        environment in ``RATE`` and ``CONCURRENCY``."""
        if environment not in ENDPOINTS:
            raise ValueError(f"unknown environment {environment!r}; expected one of {', '.join(ENDPOINTS)}")
        self.environment = environment
        self.endpoint_url = endpoint_url or ENDPOINTS[environment]
        self.max_workers = max(1, max_workers or CONCURRENCY[environment])
        self.rate = float(rate or RATE[environment])
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.retry = dataclasses.replace(retry or RetryPolicy(), endpoint=self.endpoint_url)
        self.calls: Counter = Counter()
        # enough pages per publish call to keep every thread busy between the engine's store writes
        self.publish_chunk = max(25, 8 * self.max_workers)
        session = session or boto3.Session()
        keys: dict[str, str] = {}
        if environment == "local" and session.get_credentials() is None:
            # the local server ignores credentials; botocore still needs some to sign with
            keys = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
        self.client = session.client(
            "mturk", endpoint_url=self.endpoint_url, region_name=region,
            # total_max_attempts=1: no botocore retries at all (its max_attempts counts *re*tries)
            # and the policy's timeouts (botocore's own: 60 s to read, which a hanging endpoint used in full)
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                          connect_timeout=self.retry.connect_timeout_s, read_timeout=self.retry.read_timeout_s,
                          max_pool_connections=max(10, self.max_workers * 2)),
            **keys)
        credentials = session.get_credentials()
        account = keys.get("aws_access_key_id") or (credentials.access_key if credentials else None)
        self.limiter = account_limiter((PROVIDER, self.endpoint_url, account), self.rate,
                                       min_rate=min(self.rate, max(0.5, self.rate / 100)),
                                       burst=max(1.0, self.rate))
        self._lock = threading.Lock()
        self._round: _Listing | None = None  # a fetch_round's shared pass over ListHITs
        # HITTypeId -> HITId -> info for HITs this object published or extended, until a fetch carries them
        self._hits: dict[str, dict[str, _Hit]] = {}

    def __repr__(self) -> str:  # never shows credentials
        return f"MTurkConnector(environment={self.environment!r}, endpoint_url={self.endpoint_url!r})"

    # ------------------------------------------------------------------ plumbing
    def _error(self, operation: str, exc: Exception) -> ConnectorError:
        if isinstance(exc, ClientError):
            resp = exc.response
            err = resp.get("Error", {})
            code = resp.get("TurkErrorCode") or err.get("TurkErrorCode") or err.get("Code") or "Unknown"
            status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            retryable = (err.get("Code") in RETRYABLE_CODES or code in RETRYABLE_CODES
                         or "throttl" in str(code).lower() or status == 429 or status >= 500)
            message = err.get("Message") or resp.get("Message") or str(exc)
            return ConnectorError(PROVIDER, operation, code, message, retryable=retryable)
        # connection refused/reset, timeouts, truncated responses: worth another try
        return ConnectorError(PROVIDER, operation, type(exc).__name__, str(exc), retryable=True)

    @staticmethod
    def _classify(exc: BaseException) -> tuple[bool, float | None]:
        if not isinstance(exc, ConnectorError) or not exc.retryable:
            return False, None
        cause = exc.__cause__
        if isinstance(cause, ClientError):
            headers = cause.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            try:
                return True, float(headers["retry-after"])
            except (KeyError, ValueError):
                pass
        return True, None

    @staticmethod
    def _is_throttle(exc: ConnectorError) -> bool:
        return (exc.code in THROTTLE_CODES or "throttl" in exc.code.lower()
                or "rate exceeded" in exc.message.lower())

    def _call(self, operation: str, *, paced: bool = True, **params: Any) -> dict[str, Any]:
        """One MTurk operation with counting, pacing and retries. Every call (and every retry)
        takes a token from the account's limiter: MTurk counts all of an account's requests."""
        method = getattr(self.client, xform_name(operation))

        def attempt() -> dict[str, Any]:
            generation = self.limiter.acquire() if paced else None
            with self._lock:
                self.calls[operation] += 1
            try:
                result = method(**params)
            except (ClientError, BotoConnectionError, HTTPClientError) as exc:
                error = self._error(operation, exc)
                if paced and error.retryable and self._is_throttle(error):
                    self.limiter.on_throttle(generation)
                elif paced and isinstance(exc, ClientError):
                    self.limiter.on_success()  # an answer, if a refusal: the pace was fine
                raise error from exc
            except BotoCoreError as exc:  # parameter validation etc.: our bug or bad input, not retried
                raise ConnectorError(PROVIDER, operation, type(exc).__name__, str(exc)) from exc
            if paced:
                self.limiter.on_success()
            return result

        def note(exc: BaseException, wait: float) -> None:
            log.info("mturk %s failed (%s), retrying in %.2fs", operation, getattr(exc, "code", exc), wait)

        return call_with_retry(attempt, classify=self._classify, policy=self.retry, provider=PROVIDER,
                               operation=operation, on_retry=note)

    def _pages(self, operation: str, key: str, *, enough: int | None = None,
               **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a NextToken-paginated listing, 100 per call; with ``enough``, no page is
        asked for once that many items came (MTurk hands a NextToken with every non-empty page,
        so the call after the last one would only bring an empty page)."""
        token, count = None, 0
        while True:
            page = self._call(operation, MaxResults=100, **params, **({"NextToken": token} if token else {}))
            yield from page.get(key, [])
            count += len(page.get(key, []))
            token = page.get("NextToken")
            if not token or not page.get(key) or (enough is not None and count >= enough):
                return

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``fn`` over ``items`` on at most ``max_workers`` threads; the first failure is raised
        after all calls finished (the rest are idempotent, so a retry of the whole is safe)."""
        if len(items) <= 1 or self.max_workers == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="mturk") as pool:
            futures = [pool.submit(fn, x) for x in items]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
        return [f.result() for f in futures]

    # ------------------------------------------------------------------ pools and screening
    def _find_qualification(self, name: str) -> dict[str, Any] | None:
        for qt in self._pages("ListQualificationTypes", "QualificationTypes", Query=name,
                              MustBeRequestable=False, MustBeOwnedByCaller=True):
            if qt.get("Name") == name:
                return qt
        return None

    def _ensure_qualification(self, name: str, **create: Any) -> PoolRef:
        existing = self._find_qualification(name)
        if existing is None:
            try:
                existing = self._call("CreateQualificationType", Name=name, QualificationTypeStatus="Active",
                                      **create)["QualificationType"]
            except ConnectorError:
                existing = self._find_qualification(name)  # created meanwhile by another process?
                if existing is None:
                    raise
        return PoolRef(provider=PROVIDER, ref=existing["QualificationTypeId"], name=name)

    def ensure_pool(self, spec: PoolSpec) -> PoolRef:
        """A qualification type named ``spec.name`` (found by name, else created; no test)."""
        return self._ensure_qualification(spec.name, Description=spec.description or spec.name)

    def ensure_screening(self, test: ScreeningTest) -> PoolRef:
        """A qualification type with a Test and an AnswerKey: MTurk grades it and grants the
        percentage of correct answers as the score. An existing type of that name is reused as is."""
        extra: dict[str, Any] = {"Test": render.question_form(test), "AnswerKey": render.answer_key(test),
                                 "TestDurationInSeconds": test.duration_s}
        if test.retry_delay_s is not None:
            extra["RetryDelayInSeconds"] = test.retry_delay_s
        return self._ensure_qualification(test.name, Description=test.description, **extra)

    def grant(self, pool: PoolRef, worker_id: str, score: int = 1) -> None:
        self._call("AssociateQualificationWithWorker", QualificationTypeId=pool.ref, WorkerId=worker_id,
                   IntegerValue=score, SendNotification=False)

    def revoke(self, pool: PoolRef, worker_id: str, reason: str = "") -> None:
        self._call("DisassociateQualificationFromWorker", QualificationTypeId=pool.ref, WorkerId=worker_id,
                   **({"Reason": reason} if reason else {}))

    def block(self, worker_id: str, reason: str) -> None:
        self._call("CreateWorkerBlock", WorkerId=worker_id, Reason=reason)

    def unblock(self, worker_id: str, reason: str = "") -> None:
        self._call("DeleteWorkerBlock", WorkerId=worker_id, **({"Reason": reason} if reason else {}))

    def pool_scores(self, pool: PoolRef) -> dict[str, int]:
        """Every worker holding the qualification, with its value (a screening test's score)."""
        return {q["WorkerId"]: int(q.get("IntegerValue", 0))
                for q in self._pages("ListWorkersWithQualificationType", "Qualifications",
                                     QualificationTypeId=pool.ref, Status="Granted")}

    # ------------------------------------------------------------------ batches and pages
    @staticmethod
    def _requirements(spec: BatchSpec, lane: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for req in spec.requirements + (spec.lanes[lane] if lane else []):
            if req.exclude:
                out.append({"QualificationTypeId": req.pool.ref, "Comparator": "DoesNotExist"})
            elif req.min_score is None:
                out.append({"QualificationTypeId": req.pool.ref, "Comparator": "Exists"})
            else:
                out.append({"QualificationTypeId": req.pool.ref, "Comparator": "GreaterThanOrEqualTo",
                            "IntegerValues": [req.min_score]})
        if spec.locales:
            out.append({"QualificationTypeId": LOCALE_QUALIFICATION, "Comparator": "In",
                        "LocaleValues": [{"Country": c.upper()} for c in spec.locales]})
        return out

    def _hit_type(self, spec: BatchSpec, lane: str | None = None) -> str:
        return self._call(
            "CreateHITType", Title=spec.title, Description=spec.description,
            Keywords=",".join(spec.keywords), Reward=money(spec.reward, "CreateHITType"),
            AssignmentDurationInSeconds=spec.assignment_duration_s,
            AutoApprovalDelayInSeconds=spec.auto_approval_delay_s,
            QualificationRequirements=self._requirements(spec, lane))["HITTypeId"]

    def create_batch(self, spec: BatchSpec) -> BatchRef:
        """One HIT type per batch, and one per lane with that lane's requirements added (MTurk
        returns the same HITTypeId for the same properties, so this is safe to repeat)."""
        extra = {"lifetime_s": str(spec.lifetime_s), "assignments": str(spec.assignments_per_page)}
        for name in spec.lanes:
            extra[LANE_KEY + name] = self._hit_type(spec, name)
        return BatchRef(provider=PROVIDER, batch_id=spec.batch_id, ref=self._hit_type(spec), extra=extra)

    def _remember(self, hit_type: str, hit_id: str, info: _Hit) -> None:
        with self._lock:
            self._hits.setdefault(hit_type, {}).setdefault(hit_id, info)

    def _find_hit(self, hit_type: str, note: str) -> str | None:
        for hit in self._pages("ListHITs", "HITs"):
            if hit.get("HITTypeId") == hit_type and hit.get("RequesterAnnotation") == note:
                return hit["HITId"]
        return None

    @staticmethod
    def _question(page: Page, spec: BatchSpec) -> str:
        question = render.html_question(page, spec.instructions)
        if len(question.encode("utf-8")) > MAX_QUESTION_BYTES:
            raise ConnectorError(PROVIDER, "CreateHITWithHITType", "QuestionTooLarge",
                                 f"page {page.page_id} renders to more than {MAX_QUESTION_BYTES} bytes;"
                                 " put fewer items on a page", field="Question")
        return question

    def _publish_one(self, batch: BatchRef, spec: BatchSpec, page: Page) -> PublishedPage:
        note = annotation(page)
        assignments = page.assignments or spec.assignments_per_page
        hit_type = batch.lane(page)
        params = dict(HITTypeId=hit_type, MaxAssignments=assignments, LifetimeInSeconds=spec.lifetime_s,
                      Question=self._question(page, spec), RequesterAnnotation=note,
                      UniqueRequestToken=request_token(page.idempotency_key))
        try:
            hit_id, created = self._call("CreateHITWithHITType", **params)["HIT"]["HITId"], True
        except ConnectorError as exc:
            if "HitAlreadyExists" not in exc.code:
                raise
            found = _HIT_ID_IN_MESSAGE.search(exc.message)
            hit_id = found.group(1) if found else self._find_hit(hit_type, note)
            if hit_id is None:
                raise ConnectorError(
                    PROVIDER, "CreateHITWithHITType", exc.code,
                    f"page {page.page_id} exists but its HIT was not found: {exc.message}") from exc
            created = False
        self._remember(hit_type, hit_id, _Hit(note, render.multi_choice_fields(page)))
        return PublishedPage(page_id=page.page_id, provider_ref=hit_id, created=created,
                             assignments=assignments)

    def publish(self, batch: BatchRef, spec: BatchSpec, pages: Sequence[Page]) -> list[PublishedPage]:
        """One HIT per page, ``max_workers`` at a time under the account's rate limiter. Safe to
        repeat, and to kill at any point: the same page (idempotency key, hence UniqueRequestToken)
        returns its existing HIT with ``created=False``; past the token's 24 hours ``published``
        finds it by its annotation."""
        for page in pages:  # fail on bad input before anything is published
            annotation(page)
            self._question(page, spec)
            batch.lane(page)
        return self._map(lambda page: self._publish_one(batch, spec, page), list(pages))

    def published(self, batch: BatchRef, pages: Sequence[Page]) -> list[PublishedPage]:
        """The pages already on MTurk as HITs of the batch, matched by RequesterAnnotation over
        every ListHITs page: unlike a UniqueRequestToken, which MTurk forgets after 24 hours, a
        HIT's annotation stays, so an interrupted publish resumed any time later finds its HITs."""
        wanted = {annotation(p): p for p in pages}
        found: dict[str, PublishedPage] = {}
        for hit in self._pages("ListHITs", "HITs"):
            page = wanted.get(hit.get("RequesterAnnotation"))
            if page is not None and hit.get("HITTypeId") == batch.lane(page) and page.page_id not in found:
                found[page.page_id] = PublishedPage(page_id=page.page_id, provider_ref=hit["HITId"], created=False,
                                                    assignments=int(hit.get("MaxAssignments", 0)))
                self._remember(hit["HITTypeId"], hit["HITId"], _Hit(annotation(page), render.multi_choice_fields(page)))
        return list(found.values())

    # ------------------------------------------------------------------ fetching answers
    @contextmanager
    def fetch_round(self) -> Iterator[None]:
        """Fetches inside share one pass over ListHITs. The listing is the whole account's, so the
        shards of a stage (``campaigns.stages.shards``), each fetched with its own pages, would
        otherwise page through it once each: n shards, n times the idle poll's calls. What a fetch
        inside reads of the listing is as old as the round's first read of that page, so the caller
        reads what it compares the listing with (its open pages) before it enters."""
        self._round = _Listing(self._pages("ListHITs", "HITs"))
        try:
            yield
        finally:
            self._round = None

    def _listing(self, follow: set[str] | None, hit_types: Sequence[str]) -> dict[str, dict[str, Any]]:
        """ListHITs entries (each with its assignment counts) of the HITs in ``follow``, paging
        only until every one was seen; ``follow`` None: every HIT of ``hit_types`` (all pages).
        ListHITs shows the whole account, so anything else on it is skipped, never read further."""
        found: dict[str, dict[str, Any]] = {}
        if follow is not None and not follow:
            return found
        if self._round is not None:
            return self._round.find(follow, hit_types)
        for hit in self._pages("ListHITs", "HITs"):
            if (hit["HITId"] in follow) if follow is not None else (hit.get("HITTypeId") in hit_types):
                found[hit["HITId"]] = hit
                if follow is not None and len(found) == len(follow):
                    break
        return found

    def _hit_alone(self, hit_id: str) -> dict[str, Any] | None:
        """A followed HIT that ListHITs did not show (deleted, or not listed yet): GetHIT, None if gone."""
        try:
            return self._call("GetHIT", HITId=hit_id)["HIT"]
        except ConnectorError as exc:
            if "HITDoesNotExist" in exc.code:
                return None
            raise

    def _raw(self, a: dict[str, Any], info: _Hit) -> RawAssignment:
        page_id, keys = split_annotation(info.annotation)
        raw = a.get("Answer") or ""
        answers, error = {}, None
        try:
            answers = parse_answer(raw, keys, info.multi)
        except AnswerParseError as exc:
            error = str(exc)
        except Exception as exc:  # a payload must never break a poll
            error = f"{type(exc).__name__}: {exc}"
        return RawAssignment(
            provider=PROVIDER, assignment_id=a["AssignmentId"], page_ref=a["HITId"], page_id=page_id,
            worker_id=a["WorkerId"], status=a.get("AssignmentStatus", "Submitted").lower(),
            accepted_at=a.get("AcceptTime"), submitted_at=a.get("SubmitTime"), raw=raw, answers=answers,
            parse_error=error)

    def _read_hit(self, hit_id: str, info: _Hit) -> list[RawAssignment]:
        """The HIT's assignments not read before, or read in another state (approved, rejected).
        Paging stops once the answers the counts promised are in (more than that are answers
        submitted since: the next poll's counts show them)."""
        new = []
        for a in self._pages("ListAssignmentsForHIT", "Assignments", HITId=hit_id,
                             AssignmentStatuses=["Submitted", "Approved", "Rejected"],
                             enough=info.counts[0] if info.counts else None):
            status = str(a.get("AssignmentStatus", "Submitted"))[:1]
            before = info.seen.get(a["AssignmentId"])
            info.seen[a["AssignmentId"]] = status
            if before is None or before not in ("?", status):
                new.append(self._raw(a, info))
        return new

    def fetch(self, batch: BatchRef, cursor: str | None, pages: Sequence[str] | None = None) -> FetchResult:
        """New assignments of the batch since ``cursor`` (see the module docstring for its cost).
        With ``pages``, exactly those HITs are read: a HIT type is shared by every HIT with the
        same properties, so the HIT type alone would hand another campaign's work to this one."""
        try:
            state = json.loads(cursor) if cursor else {"open": {}}
            follow = {h: _Hit.load(d) for h, d in state["open"].items()}
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ConnectorError(PROVIDER, "fetch", "InvalidCursor", f"unreadable cursor: {exc}") from exc
        with self._lock:
            mine = {(lane, h): info for lane in batch.lanes for h, info in self._hits.get(lane, {}).items()}
        if pages is not None:
            follow = {h: follow.get(h) or _Hit() for h in dict.fromkeys(pages)}
        else:
            for (_, hit_id), info in mine.items():
                follow.setdefault(hit_id, _Hit(info.annotation, list(info.multi)))
        # The counts are read *before* the assignments: an answer submitted after this moves its
        # HIT's counts, so the next poll reads it even when the listing below already missed it.
        hits = self._listing(set(follow) if cursor or pages is not None else None, batch.lanes)
        for hit_id in hits:
            follow.setdefault(hit_id, _Hit())
        for hit_id in sorted(set(follow) - set(hits)):
            hit = self._hit_alone(hit_id)
            if hit is not None:
                hits[hit_id] = hit
        changed = []
        for hit_id, info in follow.items():
            hit = hits.get(hit_id)
            if hit is None:
                continue
            counts = answer_counts(hit)
            if counts != info.counts and (info.counts is not None or counts[0] > 0):
                changed.append(hit_id)
                info.annotation = hit.get("RequesterAnnotation", info.annotation)
                info.multi = render.multi_choice_fields_from_html(hit.get("Question", "")) or info.multi
            info.counts, info.done = counts, hit.get("HITStatus") in FINISHED_STATUSES
        # Answers come back in MTurk's listing order (the order the HITs were created), never in the
        # order of their ids: ids are random, and what is ingested first decides trust and overlap.
        order = {h: n for n, h in enumerate(hits)}
        changed.sort(key=lambda h: order.get(h, len(order)))
        results = self._map(lambda h: self._read_hit(h, follow[h]), changed)
        assignments = [a for batch_of in results for a in batch_of]
        finished = sorted((h for h, info in follow.items() if info.done or h not in hits),
                          key=lambda h: order.get(h, len(order)))
        for hit_id in finished:
            # a HIT gone from MTurk is dropped; a finished one stays while the caller still waits on it
            if pages is None or hit_id not in hits:
                del follow[hit_id]
        with self._lock:  # now carried by the cursor
            for lane, hit_id in mine:
                self._hits.get(lane, {}).pop(hit_id, None)
        state = {"v": 2, "open": {h: info.dump() for h, info in sorted(follow.items())}}
        return FetchResult(assignments=assignments, cursor=json.dumps(state, separators=(",", ":")),
                           finished_pages=finished)

    # ------------------------------------------------------------------ review, money, lifecycle
    def approve(self, assignment_id: str, message: str | None = None) -> None:
        self._call("ApproveAssignment", AssignmentId=assignment_id,
                   **({"RequesterFeedback": message} if message else {}))

    def reject(self, assignment_id: str, message: str) -> None:
        self._call("RejectAssignment", AssignmentId=assignment_id, RequesterFeedback=message)

    def assignment_status(self, assignment_id: str) -> str:
        """'submitted' | 'approved' | 'rejected' as MTurk has it now (GetAssignment), so a replay
        after a crash can tell which approvals and rejections already happened."""
        assignment = self._call("GetAssignment", AssignmentId=assignment_id)["Assignment"]
        return str(assignment["AssignmentStatus"]).lower()

    def pay_bonus(self, worker_id: str, assignment_id: str, amount: Decimal, reason: str,
                  idempotency_key: str) -> BonusReceipt:
        """SendBonus with a UniqueRequestToken from ``idempotency_key``: a repeat is refused by MTurk
        and reported here as ``created=False`` (nothing paid twice)."""
        if amount <= 0:
            raise ConnectorError(PROVIDER, "SendBonus", "InvalidAmount",
                                 f"bonus must be positive, got {amount}")
        token = request_token(idempotency_key)
        try:
            self._call("SendBonus", WorkerId=worker_id, AssignmentId=assignment_id,
                       BonusAmount=money(amount, "SendBonus"), Reason=reason, UniqueRequestToken=token)
            created = True
        except ConnectorError as exc:
            text = f"{exc.code} {exc.message}".lower()
            duplicate = "uniquerequesttoken" in text or "duplicate" in text
            if exc.retryable or not duplicate:
                raise
            created = False
        return BonusReceipt(worker_id=worker_id, assignment_id=assignment_id, amount=amount,
                            idempotency_key=idempotency_key, provider_ref=token, created=created)

    def list_bonuses(self, *, assignment_id: str | None = None,
                     hit_id: str | None = None) -> list[dict[str, Any]]:
        """Bonuses MTurk has paid for an assignment or a HIT (for reconciling the ledger):
        ``[{"worker_id", "assignment_id", "amount": Decimal, "reason", "granted_at"}]``."""
        if (assignment_id is None) == (hit_id is None):
            raise ValueError("give exactly one of assignment_id or hit_id")
        where = {"AssignmentId": assignment_id} if assignment_id else {"HITId": hit_id}
        return [{"worker_id": b["WorkerId"], "assignment_id": b["AssignmentId"],
                 "amount": Decimal(b["BonusAmount"]), "reason": b.get("Reason", ""),
                 "granted_at": b.get("GrantTime")}
                for b in self._pages("ListBonusPayments", "BonusPayments", **where)]

    def extend(self, page_ref: str, extra_assignments: int) -> None:
        """More assignments for a HIT. MTurk's fee rises from 20% to 40% at 10 assignments and a
        HIT created with fewer than 10 can never reach 10, so that case is refused up front."""
        if extra_assignments < 1:
            raise ConnectorError(PROVIDER, "CreateAdditionalAssignmentsForHIT", "InvalidCount",
                                 f"extra assignments must be >= 1, got {extra_assignments}")
        hit = self._call("GetHIT", HITId=page_ref)["HIT"]
        current = int(hit.get("MaxAssignments", 0))
        if current < 10 <= current + extra_assignments:
            raise ConnectorError(
                PROVIDER, "CreateAdditionalAssignmentsForHIT", "TenAssignmentLimit",
                f"HIT {page_ref} has {current} assignments; MTurk cannot extend a HIT created with fewer"
                f" than 10 to 10 or more (asked {current + extra_assignments}); publish a new page instead")
        # The token names the target (this HIT from ``current`` to ``current + extra``), so a retry
        # whose first response was lost is refused as a duplicate instead of extending again.
        token = request_token(f"extend:{page_ref}:{current}+{extra_assignments}")
        try:
            self._call("CreateAdditionalAssignmentsForHIT", HITId=page_ref,
                       NumberOfAdditionalAssignments=extra_assignments, UniqueRequestToken=token)
        except ConnectorError as exc:
            if "DuplicateRequest" not in exc.code:
                raise
        multi = render.multi_choice_fields_from_html(hit.get("Question", ""))
        self._remember(hit["HITTypeId"], page_ref, _Hit(hit.get("RequesterAnnotation"), multi))

    def page_assignments(self, page_ref: str) -> int:
        """How many assignments the HIT allows now (to make an extension idempotent)."""
        return int(self._call("GetHIT", HITId=page_ref)["HIT"].get("MaxAssignments", 0))

    def watch(self, cursor: str | None, page_refs: Sequence[str]) -> str | None:
        """``cursor`` made to follow these HITs again: an extension reopens a HIT that ``fetch``
        had dropped as finished. Its assignments are listed afresh (the store keeps one copy)."""
        if not cursor:
            return cursor  # a first fetch discovers every HIT of the type anyway
        state = json.loads(cursor)
        for hit_id in page_refs:
            state["open"].setdefault(hit_id, _Hit().dump())
        return json.dumps(state, separators=(",", ":"))

    def _expire(self, hit_id: str) -> None:
        self._call("UpdateExpirationForHIT", HITId=hit_id, ExpireAt=PAST)

    def stop(self, page_ref: str) -> None:
        """Expire the HIT: no new worker takes it, work already accepted may still be submitted,
        and it turns Reviewable (``fetch``: finished) once none is pending."""
        self._expire(page_ref)

    def close(self, batch: BatchRef, pages: Sequence[str] | None = None) -> None:
        """Expire the given HITs, or None: every HIT of the batch's HIT types, in every lane (found
        via ListHITs; that includes other campaigns' HITs of an identical type)."""
        hit_ids = list(pages) if pages is not None else [
            h["HITId"] for h in self._pages("ListHITs", "HITs") if h.get("HITTypeId") in batch.lanes]
        self._map(self._expire, hit_ids)

    def balance(self) -> Decimal:
        return Decimal(self._call("GetAccountBalance")["AvailableBalance"])
