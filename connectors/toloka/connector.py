"""``TolokaConnector``: the neutral ``Connector`` protocol over toloka-kit 1.2.3.

Mapping: a stage+kind is a project (input/output spec and Template Builder view from the
widgets, see ``forms``), a batch is a pool (and one more per lane), a page is a **task
suite** of the page's items, a worker pool is a skill, a screening test is an exam pool of golden
tasks whose quality control sets a skill to the percentage answered correctly, a block is an
all-projects restriction.

Why task suites rather than loose tasks and the mixer: a page must be exactly what one worker
sees (the engine designed it, golden items placed among real ones) and its answers must come
back as one unit; the mixer would regroup items by itself. Golden items are tasks with
``known_solutions`` inside the suite, so Toloka grades them too. The pool still carries a
``mixer_config`` (real/golden per page) for reference.

Every HTTP request toloka-kit makes is counted in ``calls`` (``"METHOD /v1/path"`` with ids
replaced by ``{id}``). toloka-kit's own retries are off (its 429 handling is broken); each
call is retried by ``connectors.retry`` on 429 (honouring ``Retry-After``), 5xx and network
errors, never on other 4xx. Errors become ``ConnectorError(provider="toloka")`` with Toloka's
code and, for a VALIDATION_ERROR, the first invalid field path in ``field``.

Idempotency: suites are created in chunks (as many as one request takes) with async
``operation_id = uuid5(batch key + page keys)``; a re-run's create is answered with the existing
operation and returns its suites (``created=False``). Bonuses use
``operation_id = uuid5(idempotency key)``.

``fetch`` cursor (compact JSON): ``{"p": {pool id: state}}``, one state per lane of the batch
(its pool, then one pool per lane, named ``batch id + "#" + lane name``); a state is
``{"t": lag seconds before the latest submitted time read, "i": [ids read from t on], "o": {open
suite id: assignments still expected}, "m": highest suite id known}`` (a cursor that is one bare
state is read as the batch's own pool's). Each poll reads ``submitted_gte=t``, skipping ``i``: the
last ``lag`` seconds are read again, so an assignment indexed a little after its ``submitted`` time
is not jumped over, and no bound comes from this machine's clock (a local server's runs ahead).
Cost per poll and lane: one ``GET /assignments`` page (pool, status and ``submitted_gte``, with an id
tie-break when one instant fills a page), one ``GET /task-suites`` for suites newer than ``m``, and,
to confirm that pages whose expected count was reached are finished, one ``GET /task-suites/{id}``
for one page or one ``GET /task-suites`` listing of the pool per 100,000 suites for several.
With ``pages`` (the engine's open pages) the suites are listed only when a page is new to the
cursor, and a lane none of whose pages is open is not read: an idle poll is one call per lane
with open pages. Toloka has no "changed since" filter, so an approval or rejection made elsewhere
is not read again here (each would cost one more read per lane and poll); the review step asks
Toloka about an assignment whose state it finds changed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import toloka.client as tc
from toloka.client import filter as tf
from toloka.client.actions import SetSkillFromOutputField
from toloka.client.collectors import GoldenSet
from toloka.client.conditions import GoldenSetAnswersCount
from toloka.client.exceptions import (
    ApiError,
    InternalApiError,
    RemoteServiceUnavailableApiError,
    TooManyRequestsApiError,
)

from connectors.base import (
    LANE_KEY,
    BatchRef,
    BatchSpec,
    BonusReceipt,
    Choice,
    ConnectorError,
    Display,
    FetchResult,
    Page,
    PageItem,
    PoolRef,
    PoolSpec,
    PublishedPage,
    RawAssignment,
    ScreeningTest,
)
from connectors.retry import RetryPolicy, call_with_retry
from connectors.toloka import forms

T = TypeVar("T")
DEFAULT_LOCAL_URL = "http://127.0.0.1:8766"
NAMESPACE = uuid.UUID("6f0c1b2e-9a57-4c1e-8f7d-2b3c4d5e6f70")
TAG = "crowdbridge"
MAX_INPUT_BYTES = 1_000_000  # Toloka takes at most 1,048,576 bytes of input values in one request
_ID_SEGMENT = re.compile(r"/[^/]*\d[^/]*(?=/|$)")  # "/v1/pools/123/open" -> "/v1/pools/{id}/open"
_STATUS = {"SUBMITTED": "submitted", "ACCEPTED": "approved", "REJECTED": "rejected"}


class _CountingClient(tc.TolokaClient):
    """toloka-kit's client with every HTTP request reported (retries included).

    It also notes the operation ids Toloka answered ``OPERATION_ALREADY_EXISTS`` for: toloka-kit
    turns that answer into the existing operation, so this is how a create can tell that an
    earlier run made its objects without asking first (one request per chunk saved)."""

    on_request: Callable[[str], None] = staticmethod(lambda op: None)

    def _raw_request(self, method, path, **kwargs):  # noqa: ANN001, ANN202 - toloka-kit's signature
        self.on_request(f"{method.upper()} {_ID_SEGMENT.sub('/{id}', path)}")
        try:
            return super()._raw_request(method, path, **kwargs)
        except ApiError as exc:
            op_id = (kwargs.get("params") or {}).get("operation_id")
            if exc.code == "OPERATION_ALREADY_EXISTS" and op_id:
                self.existing_operations.add(str(op_id))
            raise

    @functools.cached_property
    def existing_operations(self) -> set[str]:
        return set()


def op_uuid(*parts: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "\x1f".join(parts))


class TolokaConnector:
    provider = "toloka"

    def __init__(
        self,
        environment: str = "local",
        endpoint_url: str | None = None,
        *,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        chunk: int = 10_000,
        fetch_limit: int = 500,
        lag_s: float = 10.0,
        timeout: float | None = None,
    ):
        if environment == "sandbox":
            raise ConnectorError(
                "toloka",
                "connect",
                "SANDBOX_CLOSED",
                "Toloka closed its requester sandbox in 2024; use 'local' or 'production'",
            )
        if environment not in ("local", "production"):
            raise ConnectorError(
                "toloka", "connect", "BAD_ENVIRONMENT", f"unknown environment {environment!r}"
            )
        token = (
            token
            or os.environ.get("TOLOKA_API_KEY")
            or ("local-dummy-token" if environment == "local" else None)
        )
        if not token:
            raise ConnectorError("toloka", "connect", "NO_TOKEN", "set TOLOKA_API_KEY or pass token=")
        self.environment = environment
        policy = retry or RetryPolicy()
        # connect and read timeouts on every request (``timeout`` overrides the policy's read timeout)
        timeout_s = httpx.Timeout(timeout or policy.read_timeout_s, connect=policy.connect_timeout_s)
        self.chunk, self.fetch_limit, self.lag = chunk, fetch_limit, timedelta(seconds=lag_s)
        self.publish_chunk = chunk  # pages the engine hands to one publish call: one operation
        self.calls: Counter = Counter()
        self.retried: Counter = Counter()  # failures retried, per error code (429s show as TOO_MANY_REQUESTS)
        if environment == "local" or endpoint_url:
            url = endpoint_url or DEFAULT_LOCAL_URL
            self.client = _CountingClient(token, url=url, retries=0, retry_quotas=None, timeout=timeout_s)
        else:
            self.client = _CountingClient(token, "PRODUCTION", retries=0, retry_quotas=None, timeout=timeout_s)
        self.retry = dataclasses.replace(policy, endpoint=self.client.url)
        self.client.on_request = self._count
        self._projects: dict[str, str] = {}  # project tag -> id (this process)
        self._synced: set[tuple[str, str]] = set()  # (project id, spec digest) known to match

    def __repr__(self) -> str:  # never shows the token
        return f"TolokaConnector(environment={self.environment!r}, url={self.client.url!r})"

    def _count(self, op: str) -> None:
        self.calls[op] += 1

    # ------------------------------------------------------------------ calling
    def _note_retry(self, exc: BaseException, wait_s: float) -> None:
        self.retried[getattr(exc, "code", None) or type(exc).__name__] += 1

    @staticmethod
    def _classify(exc: BaseException) -> tuple[bool, float | None]:
        if isinstance(exc, TooManyRequestsApiError):
            header = exc.response.headers.get("Retry-After") if exc.response is not None else None
            try:
                return True, float(header) if header else None
            except ValueError:
                return True, None
        if isinstance(exc, InternalApiError | RemoteServiceUnavailableApiError):
            return True, None
        if isinstance(exc, httpx.HTTPStatusError):
            return exc.response.status_code >= 500 or exc.response.status_code == 429, None
        if isinstance(exc, httpx.TransportError):
            return True, None
        return False, None

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return call_with_retry(
                fn,
                classify=self._classify,
                policy=self.retry,
                provider=self.provider,
                operation=operation,
                on_retry=self._note_retry,
            )
        except ConnectorError:
            raise
        except ApiError as exc:
            field = None
            if exc.code == "VALIDATION_ERROR" and isinstance(exc.payload, dict) and exc.payload:
                field = _first_field(exc.payload)
            raise ConnectorError(
                self.provider,
                operation,
                exc.code or "API_ERROR",
                exc.message or str(exc),
                retryable=self._classify(exc)[0],
                field=field,
            ) from exc
        except (httpx.HTTPError, tc.exceptions.FailedOperation) as exc:
            raise ConnectorError(self.provider, operation, type(exc).__name__, str(exc)) from exc

    def _find_or_create(self, operation: str, find: Callable[[], T | None], create: Callable[[], T]) -> T:
        """The one way this connector makes an object (skill, project, pool, task batch): look it
        up by its stable key, create it only if absent, and retry the two *together*. A create
        whose response was lost is then found by the retry's look-up instead of being made again
        (Toloka has no idempotency token for these), so every process converges on one object."""
        def attempt() -> T:
            found = find()
            return found if found is not None else create()

        return self._call(operation, attempt)

    # ------------------------------------------------------------------ worker pools (skills)
    def _ensure_skill(self, name: str, description: str) -> PoolRef:
        skill = self._find_or_create(
            "ensure_pool",
            lambda: next((sk for sk in self.client.get_skills(name=name) if sk.name == name), None),
            lambda: self.client.create_skill(name=name, private_comment=description or name, hidden=True),
        )
        return PoolRef(provider=self.provider, ref=skill.id, name=name)

    def ensure_pool(self, spec: PoolSpec) -> PoolRef:
        return self._ensure_skill(spec.name, spec.description)

    def grant(self, pool: PoolRef, worker_id: str, score: int = 1) -> None:
        self._call(
            "grant",
            lambda: self.client.set_user_skill(skill_id=pool.ref, user_id=worker_id, value=Decimal(score)),
        )

    def revoke(self, pool: PoolRef, worker_id: str, reason: str = "") -> None:
        found = self._call(
            "revoke", lambda: self.client.find_user_skills(user_id=worker_id, skill_id=pool.ref)
        )
        for us in found.items:
            self._call("revoke", lambda us=us: self.client.delete_user_skill(us.id))

    def block(self, worker_id: str, reason: str) -> None:
        self._call(
            "block",
            lambda: self.client.set_user_restriction(
                tc.user_restriction.AllProjectsUserRestriction(user_id=worker_id, private_comment=reason)
            ),
        )

    def unblock(self, worker_id: str, reason: str = "") -> None:
        found = self._call(
            "unblock", lambda: self.client.find_user_restrictions(user_id=worker_id, scope="ALL_PROJECTS")
        )
        for r in found.items:
            self._call("unblock", lambda r=r: self.client.delete_user_restriction(r.id))

    def pool_scores(self, pool: PoolRef) -> dict[str, int]:
        """Every Toloker with the skill, with its value (an exam's percentage of correct answers)."""
        found = self._call("pool_scores", lambda: list(self.client.get_user_skills(skill_id=pool.ref)))
        return {us.user_id: int(round(float(us.exact_value if us.exact_value is not None else us.value or 0)))
                for us in found}

    def ensure_screening(self, test: ScreeningTest) -> PoolRef:
        """An exam pool: every question a golden task; its quality control sets the skill to the
        percentage answered correctly, which a work pool then requires (``min_score``)."""
        skill = self._ensure_skill(f"screening: {test.name}", test.description)
        items = [
            PageItem(
                item_key=q.id,
                golden=True,
                known_answer={"answer": q.answer[0]},
                widgets=[
                    Display(name="question", text=q.text),
                    Choice(name="answer", label="Answer", options=q.options),
                ],
            )
            for q in test.questions
        ]
        spec = BatchSpec(
            batch_id=f"screening-{skill.ref}",
            idempotency_key=f"screening:{skill.ref}",
            stage="screening",
            kind=test.name,
            title=test.name,
            description=test.description,
            instructions=test.instructions,
            reward=Decimal("0.01"),
            assignments_per_page=1,
            assignment_duration_s=test.duration_s,
            real_per_page=0,
            golden_per_page=len(items),
        )
        # one project spec for every question: its answer field allows the options of all of them
        options = list({v: (v, label) for q in test.questions for v, label in q.options}.values())
        project_id = self._ensure_project(spec, [items[0].widgets[0], Choice(name="answer", label="Answer",
                                                                                options=options)])
        new = self._pool_model(spec, project_id)
        new.set_mixer_config(real_tasks_count=0, golden_tasks_count=len(items), training_tasks_count=0)
        new.quality_control.add_action(
            collector=GoldenSet(history_size=len(items)),
            conditions=[GoldenSetAnswersCount >= len(items)],
            action=SetSkillFromOutputField(skill_id=skill.ref, from_field="correct_answers_rate"),
        )
        pool = self._find_or_create("ensure_screening", lambda: self._pool_named(project_id, spec.batch_id),
                                    lambda: self.client.create_pool(new))
        tasks = [
            tc.Task(
                pool_id=pool.id,
                input_values=forms.input_values(i, "screening"),
                known_solutions=[tc.task.BaseTask.KnownSolution(output_values=i.known_answer)],
                infinite_overlap=True,
            )
            for i in items
        ]
        op_id = op_uuid("screening", skill.ref)
        self._find_or_create(
            "ensure_screening",
            lambda: self._operation(op_id),
            lambda: self.client.create_tasks(tasks, operation_id=op_id, async_mode=True, open_pool=True),
        )
        return skill

    def _operation(self, op_id: uuid.UUID) -> Any:
        """The operation with this id, or None (the look-up half of ``_find_or_create``)."""
        try:
            return self.client.get_operation(str(op_id))
        except ApiError as exc:
            if exc.code == "DOES_NOT_EXIST":
                return None
            raise

    # ------------------------------------------------------------------ batches
    def _ensure_project(self, spec: BatchSpec, widgets: Sequence[Any] | None) -> str:
        """The stage+kind's project (found by its tag), its spec made to match ``widgets``."""
        tag = f"{TAG}:{spec.stage}:{spec.kind}"
        project_id = self._projects.get(tag)
        if project_id is None:
            project = tc.Project(
                public_name=spec.title,
                public_description=spec.description,
                public_instructions=spec.instructions or spec.description,
                private_comment=tag,
                task_spec=forms.task_spec(widgets or []),
                assignments_issuing_type="AUTOMATED",
            )
            project_id = self._find_or_create(
                "ensure_project",
                lambda: next((p for p in self.client.get_projects(status="ACTIVE") if p.private_comment == tag), None),
                lambda: self.client.create_project(project),
            ).id
            self._projects[tag] = project_id
        if widgets:
            self._sync_spec(project_id, widgets)
        return project_id

    def _sync_spec(self, project_id: str, widgets: Sequence[Any]) -> None:
        """Give the project the spec these widgets need (one GET per process, a PUT if it differs)."""
        wanted = forms.task_spec(widgets)
        digest = forms.spec_digest(wanted)
        if (project_id, digest) in self._synced:
            return
        project = self._call("ensure_project", lambda: self.client.get_project(project_id))
        if forms.spec_digest(project.task_spec) != digest:
            project.task_spec = wanted
            self._call("ensure_project", lambda: self.client.update_project(project_id, project))
        self._synced.add((project_id, digest))

    def _pool_named(self, project_id: str, batch_id: str) -> tc.Pool | None:
        """The project's live pool named ``batch_id`` (the look-up half of ``_find_or_create``)."""
        pools = self.client.get_pools(project_id=project_id)
        return next((p for p in pools if p.private_name == batch_id and p.status.value != "ARCHIVED"), None)

    @staticmethod
    def _pool_filter(spec: BatchSpec) -> Any:
        conditions = []
        for req in spec.requirements:
            skill = tf.Skill(req.pool.ref)
            if req.exclude:
                conditions.append(skill == None)  # noqa: E711 - toloka-kit's filter DSL
            elif req.min_score is None:
                conditions.append(skill != None)  # noqa: E711
            else:
                conditions.append(skill >= req.min_score)
        if spec.locales:
            # Locales are ISO country codes: Toloka's profile country takes them as they are (RegionByPhone
            # wants a geobase region id, which toloka-kit cannot read back from a country code).
            conditions.append(tf.FilterOr([tf.Country == c for c in spec.locales]))
        if not conditions:
            return None
        return tf.FilterAnd(conditions) if len(conditions) > 1 else conditions[0]

    def _pool_model(self, spec: BatchSpec, project_id: str) -> tc.Pool:
        return tc.Pool(
            project_id=project_id,
            private_name=spec.batch_id,
            private_comment=spec.idempotency_key,
            may_contain_adult_content=False,
            reward_per_assignment=spec.reward,
            assignment_max_duration_seconds=spec.assignment_duration_s,
            will_expire=datetime.now(UTC) + timedelta(seconds=spec.lifetime_s),
            auto_accept_solutions=False,
            auto_accept_period_day=max(1, round(spec.auto_approval_delay_s / 86400)),
            defaults=tc.Pool.Defaults(
                default_overlap_for_new_task_suites=spec.assignments_per_page,
                default_overlap_for_new_tasks=spec.assignments_per_page,
            ),
            filter=self._pool_filter(spec),
        )

    def create_batch(self, spec: BatchSpec) -> BatchRef:
        """A pool in the stage's project; the project's fields follow the widgets at ``publish``.
        Worker trust (golden accuracy, bans) is decided by the engine (``payouts.trust``), so the
        pool's own quality control only bans fast submitters when the engine's spec asks for none."""
        project_id = self._ensure_project(spec, None)
        extra = {"project_id": project_id}
        for name, reqs in spec.lanes.items():  # a lane: another pool, its filter adding the lane's requirements
            lane = spec.model_copy(update={"batch_id": f"{spec.batch_id}#{name}", "lanes": {},
                                           "requirements": spec.requirements + reqs})
            extra[LANE_KEY + name] = self._ensure_pool(lane, project_id)
        return BatchRef(
            provider=self.provider, batch_id=spec.batch_id, ref=self._ensure_pool(spec, project_id), extra=extra
        )

    def _ensure_pool(self, spec: BatchSpec, project_id: str) -> str:
        """The pool named ``spec.batch_id`` in the project (found by that name, else created)."""
        new = self._pool_model(spec, project_id)
        new.set_mixer_config(
            real_tasks_count=max(1, spec.real_per_page),
            golden_tasks_count=spec.golden_per_page,
            training_tasks_count=0,
        )
        return self._find_or_create("create_batch", lambda: self._pool_named(project_id, spec.batch_id),
                                    lambda: self.client.create_pool(new)).id

    @staticmethod
    def _check_shape(pages: Sequence[Page]) -> Sequence[Any]:
        widgets = pages[0].items[0].widgets
        for page in pages:
            for item in page.items:
                if forms.shape(item.widgets) != forms.shape(widgets):
                    raise ConnectorError(
                        "toloka",
                        "publish",
                        "MIXED_WIDGETS",
                        f"item {item.item_key} differs from the batch's first item",
                    )
        return widgets

    def publish(self, batch: BatchRef, spec: BatchSpec, pages: Sequence[Page]) -> list[PublishedPage]:
        """Each lane's pages as task suites, in as few async operations as Toloka takes: up to
        ``chunk`` suites (Toloka recommends at most 10,000 per request) and ``MAX_INPUT_BYTES`` of
        input values each. Per operation: one POST (which also opens the pool) and one read of its
        log, plus toloka-kit's ``wait_operation`` looks while Toloka still works on it."""
        if not pages:
            return []
        widgets = self._check_shape(pages)
        by_lane = {lane: [p for p in pages if batch.lane(p) == lane] for lane in batch.lanes}
        self._ensure_project(spec, widgets)
        out: dict[str, PublishedPage] = {}
        for pool_id, lane_pages in by_lane.items():
            for chunk in self._chunks(pool_id, spec, lane_pages):
                op_id = op_uuid(spec.idempotency_key, pool_id, *[p.idempotency_key for p, _ in chunk])
                out.update(self._publish_chunk(spec, chunk, op_id))
        return [out[p.page_id] for p in pages]

    def _chunks(self, pool_id: str, spec: BatchSpec, pages: Sequence[Page]) -> list[list[tuple[Page, Any]]]:
        """(page, its task suite) in runs that fit one request; the same pages always give the
        same runs, so a re-run derives the same operation ids."""
        chunks: list[list[tuple[Page, Any]]] = []
        size = 0
        for page in pages:
            tasks = [tc.task.BaseTask(input_values=forms.input_values(item, page.page_id),
                                      known_solutions=[tc.task.BaseTask.KnownSolution(output_values=known)]
                                      if (known := forms.known_solution(item)) else None)
                     for item in page.items]
            suite = tc.TaskSuite(pool_id=pool_id, overlap=page.assignments or spec.assignments_per_page, tasks=tasks)
            n = sum(len(json.dumps(t.input_values, ensure_ascii=False).encode("utf-8")) for t in tasks)
            if not chunks or len(chunks[-1]) >= self.chunk or size + n > MAX_INPUT_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append((page, suite))
            size += n
        return chunks

    def _publish_chunk(self, spec: BatchSpec, chunk: Sequence[tuple[Page, Any]],
                       op_id: uuid.UUID) -> dict[str, PublishedPage]:
        # A repeat of an operation Toloka already has is answered with that operation (toloka-kit
        # handles OPERATION_ALREADY_EXISTS), so nothing is created twice and no look-up goes first.
        op = self._call(
            "publish",
            lambda: self.client.create_task_suites_async(
                [suite for _, suite in chunk], operation_id=op_id, async_mode=True, allow_defaults=True,
                skip_invalid_items=False, open_pool=True,
            ),
        )
        created = str(op_id) not in self.client.existing_operations
        op = self._call("publish", lambda: self.client.wait_operation(op, disable_progress=True))
        log = self._call("publish", lambda: self.client.get_operation_log(op.id))
        overlap = {p.page_id: p.assignments or spec.assignments_per_page for p, _ in chunk}
        out: dict[str, PublishedPage] = {}
        for item in log:
            if not item.success:
                fields = item.output or {}
                raise ConnectorError(
                    self.provider,
                    "publish",
                    "VALIDATION_ERROR",
                    "a task suite was refused",
                    field=_first_field(fields) if fields else None,
                )
            page_id = item.input["tasks"][0]["input_values"][forms.PAGE_ID]
            out[page_id] = PublishedPage(
                page_id=page_id,
                provider_ref=item.output["task_suite_id"],
                created=created,
                assignments=overlap[page_id],
            )
        return out

    def published(self, batch: BatchRef, pages: Sequence[Page]) -> list[PublishedPage]:
        """The pages already in the batch's pools, matched by the page id every task carries in
        its input values: an interrupted publish resumed any time later finds its task suites
        without depending on how long Toloka keeps an operation."""
        wanted = {p.page_id for p in pages}
        found: dict[str, PublishedPage] = {}
        for pool_id in {batch.lane(p) for p in pages}:
            suites = self._call("publish", lambda pid=pool_id: list(self.client.get_task_suites(pool_id=pid)))
            for suite in suites:
                page_id = suite.tasks[0].input_values.get(forms.PAGE_ID) if suite.tasks else None
                if page_id in wanted and page_id not in found:
                    found[page_id] = PublishedPage(page_id=page_id, provider_ref=suite.id, created=False,
                                                   assignments=suite.overlap or 0)
        return list(found.values())

    # ------------------------------------------------------------------ results
    def _raw(self, a: Any) -> RawAssignment:
        raw = json.dumps(tc.unstructure(a), default=str, sort_keys=True)
        answers: dict[str, dict[str, Any]] = {}
        error = None
        page_id = None
        try:
            for task, solution in zip(a.tasks, a.solutions or [], strict=True):
                key = task.input_values[forms.ITEM_KEY]
                page_id = task.input_values.get(forms.PAGE_ID, page_id)
                answers[key] = _neutral(solution.output_values)
        except (KeyError, ValueError, TypeError) as exc:
            answers, error = {}, f"{type(exc).__name__}: {exc}"
        return RawAssignment(
            provider=self.provider,
            assignment_id=a.id,
            page_ref=a.task_suite_id,
            page_id=page_id,
            worker_id=a.user_id,
            status=_STATUS[str(a.status.value)],
            accepted_at=a.created,
            submitted_at=a.submitted,
            raw=raw,
            answers=answers,
            parse_error=error,
        )

    def _read_since(self, pool_id: str, since: datetime | None) -> list[Any]:
        """Every assignment submitted from ``since`` on, each once, paged by (submitted, id).

        No upper bound from this machine's clock: the server's clock may differ (a local server's
        simulated time runs ahead of it), and the cursor's lag is taken from the answers read."""
        out: dict[str, Any] = {}
        query: dict[str, Any] = {"submitted_gte": since} if since else {}
        while True:
            res = self._call(
                "fetch",
                lambda q=dict(query): self.client.find_assignments(
                    pool_id=pool_id,
                    status=list(_STATUS),
                    sort=["submitted", "id"],
                    limit=self.fetch_limit,
                    **q,
                ),
            )
            out.update((a.id, a) for a in res.items)
            if not res.has_more or not res.items:
                return list(out.values())
            first, last = res.items[0], res.items[-1]
            if (
                first.submitted == last.submitted
            ):  # one instant fills the page: walk it by id, then go past it
                out.update((a.id, a) for a in self._walk_instant(pool_id, last.submitted, last.id))
                query = {"submitted_gt": last.submitted}
            else:  # re-read from the last instant; ``out`` keeps one copy of the repeats
                query = {"submitted_gte": last.submitted}

    def _walk_instant(self, pool_id: str, instant: datetime, after_id: str) -> list[Any]:
        out: list[Any] = []
        while True:
            res = self._call(
                "fetch",
                lambda a=after_id: self.client.find_assignments(
                    pool_id=pool_id,
                    status=list(_STATUS),
                    submitted_gte=instant,
                    submitted_lte=instant,
                    id_gt=a,
                    sort=["id"],
                    limit=self.fetch_limit,
                ),
            )
            out += res.items
            if not res.has_more or not res.items:
                return out
            after_id = res.items[-1].id

    def fetch(self, batch: BatchRef, cursor: str | None, pages: Sequence[str] | None = None) -> FetchResult:
        """New assignments of every lane of the batch; the cursor keeps one state per pool. With
        ``pages`` (the suites the caller still waits on) a poll lists suites only when one of them
        is new to the cursor, and reads a pool's assignments only while one of them is open in it."""
        state = json.loads(cursor) if cursor else {}
        lanes = {batch.ref: state} if "t" in state else state.get("p", {})  # "t": one pool, as before lanes
        waiting = None if pages is None else set(pages)
        known = {s for lane in lanes.values() for s in lane.get("o", {})}
        list_suites = waiting is None or bool(waiting - known)
        assignments, finished = [], []
        for pool_id in batch.lanes:
            result = self._fetch_pool(pool_id, lanes.get(pool_id) or {"t": None, "i": [], "o": {}, "m": None},
                                      list_suites, waiting)
            assignments += result.assignments
            finished += result.finished_pages
            lanes[pool_id] = json.loads(result.cursor)
        if list_suites and waiting is not None:  # still unknown: a page reopened after it was finished
            known = {s for lane in lanes.values() for s in lane["o"]} | set(finished)
            for suite_id in sorted(waiting - known):
                suite = self._call("fetch", lambda s=suite_id: self.client.get_task_suite(s))
                if not suite.remaining_overlap:
                    finished.append(suite_id)
                elif suite.pool_id in lanes:
                    lanes[suite.pool_id]["o"][suite_id] = suite.remaining_overlap
        return FetchResult(assignments=assignments, finished_pages=finished,
                           cursor=json.dumps({"p": lanes}, separators=(",", ":")))

    def _fetch_pool(self, pool_id: str, state: dict[str, Any], list_suites: bool = True,
                    waiting: set[str] | None = None) -> FetchResult:
        read: list[Any] = []
        # assignments before suites: a suite listed after the read cannot have answers the read missed
        if waiting is None or list_suites or waiting & set(state["o"]):  # else all its pages are in
            since = datetime.fromisoformat(state["t"]).replace(tzinfo=UTC) if state["t"] else None
            read = self._read_since(pool_id, since)
        known = set(state["i"])
        new = [a for a in read if a.id not in known]
        open_pages: dict[str, int] = dict(state["o"])
        if list_suites:
            query = {"id_gt": state["m"]} if state["m"] else {}  # pages published since the last poll
            suites = self._call(
                "fetch",
                lambda: self.client.find_task_suites(pool_id=pool_id, sort=["id"], limit=100_000, **query),
            )
            for suite in suites.items:
                state["m"] = suite.id
                if not suite.mixed:
                    open_pages[suite.id] = suite.overlap or 0
        for a in new:
            if a.task_suite_id in open_pages and a.status.value != "REJECTED":
                open_pages[a.task_suite_id] -= 1
        finished = []
        full = [s for s, left in open_pages.items() if left <= 0]  # as many answers as asked for
        for suite_id, remaining in self._remaining(pool_id, full).items():  # confirm nothing is left
            if remaining:
                open_pages[suite_id] = remaining
            else:
                finished.append(suite_id)
                del open_pages[suite_id]
        if read:  # the cursor: ``lag`` before the newest answer read, and the ids read from then on
            # (re-read next time, so one indexed a little after its ``submitted`` time is not jumped over)
            state["t"] = max(state["t"] or "", _iso(max(a.submitted for a in read) - self.lag))
            state["i"] = [a.id for a in read if _iso(a.submitted) >= state["t"]]
        next_state = {"t": state["t"], "i": sorted(set(state["i"])), "o": open_pages, "m": state["m"]}
        return FetchResult(
            assignments=[self._raw(a) for a in new],
            finished_pages=finished,
            cursor=json.dumps(next_state, separators=(",", ":")),
        )

    def _remaining(self, pool_id: str, suite_ids: list[str]) -> dict[str, int]:
        """How many more times Toloka will hand out each suite: one GET for one suite, else one
        listing of the pool's suites from the lowest id to the highest (per 100,000): a call per
        suite would make a busy poll cost one call per finished page."""
        if not suite_ids:
            return {}
        if len(suite_ids) == 1:
            suite = self._call("fetch", lambda: self.client.get_task_suite(suite_ids[0]))
            return {suite_ids[0]: suite.remaining_overlap or 0}
        wanted, found = set(suite_ids), {}
        ordered = sorted(wanted, key=lambda s: (len(s), s))  # Toloka's ids: fixed-width, in creation order
        query: dict[str, Any] = {"id_gte": ordered[0]}
        while wanted - set(found):
            res = self._call("fetch", lambda q=query: self.client.find_task_suites(
                pool_id=pool_id, sort=["id"], limit=100_000, id_lte=ordered[-1], **q))
            found.update({s.id: s.remaining_overlap or 0 for s in res.items if s.id in wanted})
            if not res.has_more or not res.items:
                break
            query = {"id_gt": res.items[-1].id}
        return found

    # ------------------------------------------------------------------ review and money
    def _review(self, operation: str, assignment_id: str, status: str, message: str | None) -> None:
        try:
            self._call(
                operation,
                lambda: self.client.patch_assignment(assignment_id, public_comment=message, status=status),
            )
        except ConnectorError as exc:
            if exc.code != "INAPPROPRIATE_STATUS":
                raise
            current = self._call(operation, lambda: self.client.get_assignment(assignment_id))
            if current.status.value != status:  # not a retry of our own earlier success
                raise

    def approve(self, assignment_id: str, message: str | None = None) -> None:
        self._review("approve", assignment_id, "ACCEPTED", message)

    def reject(self, assignment_id: str, message: str) -> None:
        self._review("reject", assignment_id, "REJECTED", message)

    def assignment_status(self, assignment_id: str) -> str:
        """'submitted' | 'approved' | 'rejected' (or Toloka's own status, lower-cased, otherwise)."""
        status = self._call(
            "assignment_status", lambda: self.client.get_assignment(assignment_id)
        ).status.value
        return _STATUS.get(str(status), str(status).lower())

    def list_bonuses(
        self, *, assignment_id: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Bonuses Toloka has recorded (for reconciling the ledger):
        ``[{"worker_id", "assignment_id", "amount": Decimal, "reason", "granted_at"}]``."""
        query = {k: v for k, v in (("assignment_id", assignment_id), ("user_id", user_id)) if v}
        bonuses = self._call("list_bonuses", lambda: list(self.client.get_user_bonuses(**query)))
        return [
            {
                "worker_id": b.user_id,
                "assignment_id": b.assignment_id,
                "amount": Decimal(str(b.amount)),
                "reason": (b.public_message or {}).get("EN", ""),
                "granted_at": b.created,
            }
            for b in bonuses
        ]

    def pay_bonus(
        self, worker_id: str, assignment_id: str, amount: Decimal, reason: str, idempotency_key: str
    ) -> BonusReceipt:
        op_id = op_uuid("bonus", idempotency_key)
        try:
            op = self._call("pay_bonus", lambda: self.client.get_operation(str(op_id)))
            created = False
        except ConnectorError as exc:
            if exc.code != "DOES_NOT_EXIST":
                raise
            bonus = tc.user_bonus.UserBonus(
                user_id=worker_id,
                amount=Decimal(amount),
                assignment_id=assignment_id,
                private_comment=idempotency_key,
                public_title={"EN": "Bonus"},
                public_message={"EN": reason},
            )
            op = self._call(
                "pay_bonus",
                lambda: self.client.create_user_bonuses_async([bonus], operation_id=op_id, async_mode=True),
            )
            op = self._call("pay_bonus", lambda: self.client.wait_operation(op, disable_progress=True))
            created = True
        log = self._call("pay_bonus", lambda: self.client.get_operation_log(op.id))
        ok = [i for i in log if i.success]
        if not ok:
            detail = log[0].output if log else {}
            raise ConnectorError(self.provider, "pay_bonus", "BONUS_REFUSED", json.dumps(detail, default=str))
        return BonusReceipt(
            worker_id=worker_id,
            assignment_id=assignment_id,
            amount=Decimal(amount),
            idempotency_key=idempotency_key,
            provider_ref=ok[0].output["user_bonus_id"],
            created=created,
        )

    def extend(self, page_ref: str, extra_assignments: int) -> None:
        suite = self._call("extend", lambda: self.client.get_task_suite(page_ref))
        self._call(
            "extend",
            lambda: self.client.patch_task_suite(
                page_ref, overlap=(suite.overlap or 0) + extra_assignments, open_pool=True
            ),
        )  # reopens a completed pool

    def page_assignments(self, page_ref: str) -> int:
        """The task suite's overlap now (to make an extension idempotent)."""
        return int(self._call("extend", lambda: self.client.get_task_suite(page_ref)).overlap or 0)

    def stop(self, page_ref: str) -> None:
        """Overlap down to what is already issued ("or min"): no new worker gets the suite, and
        ``page_assignments`` then says how many answers can still come (active ones included)."""
        self._call("stop", lambda: self.client.patch_task_suite_overlap_or_min(
            page_ref, tc.task_suite.TaskSuiteOverlapPatch(overlap=0)))

    def watch(self, cursor: str | None, page_refs: Sequence[str]) -> str | None:
        """Unchanged: ``fetch`` reads the pool's assignments by time, so an extended suite's new
        answers arrive without the cursor knowing the suite."""
        return cursor

    def close(self, batch: BatchRef, pages: Sequence[str] | None = None) -> None:
        """Close the batch's pools (a pool is the batch's own, so ``pages`` changes nothing)."""
        for pool_id in batch.lanes:
            self._call("close", lambda pid=pool_id: self.client.close_pool(pid))

    def balance(self) -> Decimal:
        return Decimal(str(self._call("balance", lambda: self.client.get_requester()).balance))


def _iso(ts: datetime) -> str:
    """Naive UTC with microseconds: short, and exact enough to compare instants."""
    aware = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _first_field(payload: dict[str, Any]) -> str:
    """The first invalid field path of a VALIDATION_ERROR payload (per-item maps are unwrapped)."""
    key, value = next(iter(payload.items()))
    if isinstance(value, dict) and "code" not in value and value:
        return _first_field(value)
    return str(key)


def _neutral(values: dict[str, Any]) -> dict[str, Any]:
    """Toloka output values already use the neutral shapes; spans are normalised to start/end/label."""
    out = dict(values)
    for k, v in values.items():
        if isinstance(v, list) and v and all(isinstance(s, dict) and "start" in s for s in v):
            out[k] = [
                {"start": int(s["start"]), "end": int(s["end"]), "label": s.get("label", "issue")} for s in v
            ]
    return out
