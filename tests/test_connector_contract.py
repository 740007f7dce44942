"""The provider-neutral connector contract, run against each provider's local marketplace with its
real client library over loopback HTTP. Add a provider to ``PROVIDERS`` (and ``make_connector``)
and every case here runs against it too."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import (
    BatchRef,
    BatchSpec,
    Choice,
    Connector,
    ConnectorError,
    Display,
    MultiChoice,
    Page,
    PageItem,
    PoolRequirement,
    PoolSpec,
    SpanSelect,
    TextInput,
)
from connectors.retry import RetryPolicy

PROVIDERS = ["mturk", "toloka", "inhouse", "prolific"]
FAST_RETRY = RetryPolicy(max_attempts=6, initial_s=0.01, max_s=0.05)
HOSTILE = ["<script>alert('x')</script>", 'quote " and \' & amp', "cdata ]]> end", "ünï 日本 🙂\nline 2"]


def make_connector(provider: str, url: str, taskserver_url: str | None = None) -> Connector:
    if provider == "mturk":
        from connectors.mturk import MTurkConnector

        return MTurkConnector("local", url, retry=FAST_RETRY)
    if provider == "toloka":
        from connectors.toloka import TolokaConnector

        return TolokaConnector("local", url, retry=FAST_RETRY)
    if provider == "inhouse":
        from connectors.inhouse import InhouseConnector

        return InhouseConnector("local", url, retry=FAST_RETRY)
    if provider == "prolific":
        from connectors.prolific import ProlificConnector

        return ProlificConnector("local", url, taskserver_url=taskserver_url, retry=FAST_RETRY)
    raise ValueError(provider)


class EchoOracle:
    """Answers deterministically from what the worker sees, and records what that was."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def __call__(self, task: Any, worker: Any, rng: random.Random) -> dict[str, Any]:
        self.seen.append(dict(task.inputs))
        text = task.inputs.get("prompt", "")
        out: dict[str, Any] = {}
        for f in task.fields:
            if f.kind == "choice":
                out[f.name] = f.options[-1]
            elif f.kind == "multi_choice":
                out[f.name] = f.options[:2]
            elif f.kind == "text":
                out[f.name] = text
            elif f.kind == "spans":
                out[f.name] = [{"start": 0, "end": first_word(f.text), "label": f.options[0]}]
        return out


def first_word(text: str) -> int:
    """Where the text's first whitespace-free run ends: a span every span widget can mark exactly
    (the task server's marks whole words, as annotation tools that snap to words do)."""
    return len(text.split(None, 1)[0]) if text.strip() and not text[0].isspace() else min(3, len(text))


def expected_answer(text: str) -> dict[str, Any]:
    return {"pick": "b", "tags": ["x", "y"], "fix": text, "spans": [{"start": 0, "end": first_word(text),
                                                                     "label": "issue"}]}


def make_pages(texts: list[str], prefix: str = "p", per_page: int = 2) -> list[Page]:
    pages = []
    for n in range(0, len(texts), per_page):
        chunk = texts[n:n + per_page]
        items = [PageItem(item_key=f"{prefix}{n + k}", widgets=[
            Display(name="prompt", text=text),
            Choice(name="pick", label="Better?", options=[("a", "A"), ("b", "B")]),
            MultiChoice(name="tags", label="Tags", options=[("x", "X"), ("y", "Y"), ("z", "Z")]),
            TextInput(name="fix", label="Rewrite", default=text),
            SpanSelect(name="spans", label="Issues", text=text),
        ]) for k, text in enumerate(chunk)]
        pages.append(Page(page_id=f"{prefix}-page{n}", idempotency_key=f"{prefix}-key{n}", items=items))
    return pages


def batch_spec(batch_id: str = "b1", assignments: int = 2, **kw: Any) -> BatchSpec:
    kw.setdefault("instructions", "Read <both> & choose")
    return BatchSpec(batch_id=batch_id, idempotency_key=f"{batch_id}-key", stage="s", kind="classify",
                     title=f"Compare texts {batch_id}", description="Pick the better text",
                     reward=Decimal("0.10"), assignments_per_page=assignments, lifetime_s=86400, **kw)


def fetch_all(conn: Connector, batch: Any, mp: Any, want: int, cursor: str | None = None,
              step_s: float = 1800, rounds: int = 12) -> tuple[list[Any], str | None]:
    """Poll while the simulated crowd works until ``want`` assignments arrived."""
    got: list[Any] = []
    for _ in range(rounds):
        mp.advance(step_s)
        result = conn.fetch(batch, cursor)
        got += result.assignments
        cursor = result.cursor
        if len(got) >= want:
            break
    return got, cursor


@pytest.fixture(params=PROVIDERS)
def connector(request):
    local = pytest.importorskip("connectors.local")
    oracle = EchoOracle()
    with local.start_local(request.param, workers=20, seed=7, oracle=oracle) as mp:
        mp.oracle = oracle
        yield make_connector(request.param, mp.url, getattr(mp.server, "taskserver_url", None)), mp


def test_connector_satisfies_protocol(connector):
    conn, _ = connector
    assert isinstance(conn, Connector)


def test_whole_cycle_publish_fetch_review_pay_block(connector):
    conn, mp = connector
    pool = conn.ensure_pool(PoolSpec(name="trusted", description="good workers"))
    assert conn.ensure_pool(PoolSpec(name="trusted")).ref == pool.ref  # found, not created twice
    for w in mp.crowd.workers:
        conn.grant(pool, w.worker_id, 80)
    spec = batch_spec(requirements=[PoolRequirement(pool=pool, min_score=50)])
    batch = conn.create_batch(spec)
    texts = [f"text number {n}" for n in range(6)]
    pages = make_pages(texts)
    published = conn.publish(batch, spec, pages)
    assert [p.page_id for p in published] == [p.page_id for p in pages] and all(p.created for p in published)

    got, cursor = fetch_all(conn, batch, mp, want=6)
    assert len(got) == 6 and len({a.assignment_id for a in got}) == 6
    keys = {p.page_id: [i.item_key for i in p.items] for p in pages}
    by_key = dict(zip([f"p{n}" for n in range(6)], texts, strict=True))
    for a in got:
        assert a.parse_error is None and a.status == "submitted" and a.raw
        assert sorted(a.answers) == sorted(keys[a.page_id])
        for key, answer in a.answers.items():
            assert answer == expected_answer(by_key[key])

    again = conn.fetch(batch, cursor)
    assert again.assignments == []  # incremental: nothing new, nothing repeated

    balance = conn.balance()
    conn.approve(got[0].assignment_id, "thanks")
    conn.reject(got[1].assignment_id, "did not follow the instructions")
    assert [conn.assignment_status(a.assignment_id) for a in got[:3]] == ["approved", "rejected", "submitted"]
    receipt = conn.pay_bonus(got[0].worker_id, got[0].assignment_id, Decimal("0.25"), "great work", "bonus-1")
    assert receipt.created and receipt.amount == Decimal("0.25")
    assert conn.balance() < balance
    conn.block(got[1].worker_id, "spam")
    conn.unblock(got[1].worker_id, "appeal accepted")
    conn.revoke(pool, got[1].worker_id, "left the pool")
    conn.close(batch)


def test_republish_is_idempotent(connector):
    conn, mp = connector
    spec = batch_spec("b2")
    batch = conn.create_batch(spec)
    pages = make_pages([f"t{n}" for n in range(4)], prefix="r")
    first = conn.publish(batch, spec, pages)
    second = conn.publish(batch, spec, pages)
    assert [p.provider_ref for p in second] == [p.provider_ref for p in first]
    assert all(p.created for p in first) and not any(p.created for p in second)
    got, _ = fetch_all(conn, batch, mp, want=4)
    assert {a.page_ref for a in got} == {p.provider_ref for p in first}
    assert len(got) == 4  # 2 pages x 2 assignments: no duplicate pages were worked on


def test_bonus_is_paid_once_per_idempotency_key(connector):
    conn, mp = connector
    if conn.provider == "prolific":
        pytest.skip("Prolific's bonus pay takes no key and is not idempotent: paying once rests on the ledger "
                    "(tests/test_prolific.py::test_a_kill_between_pay_sent_and_its_answer_pays_once)")
    spec = batch_spec("b3", assignments=1)
    batch = conn.create_batch(spec)
    conn.publish(batch, spec, make_pages(["only one"], prefix="z"))
    (a,), _ = fetch_all(conn, batch, mp, want=1)
    before = conn.balance()
    first = conn.pay_bonus(a.worker_id, a.assignment_id, Decimal("1.00"), "well done", "ledger-42")
    after_first = conn.balance()
    second = conn.pay_bonus(a.worker_id, a.assignment_id, Decimal("1.00"), "well done", "ledger-42")
    assert first.created and not second.created
    assert after_first < before and conn.balance() == after_first


def test_hostile_item_text_reaches_workers_as_text(connector):
    conn, mp = connector
    spec = batch_spec("b4", assignments=1, instructions="<b>not bold</b> ]]> & more")
    batch = conn.create_batch(spec)
    pages = make_pages(HOSTILE, prefix="h")
    conn.publish(batch, spec, pages)
    got, _ = fetch_all(conn, batch, mp, want=len(pages))
    assert {s["prompt"] for s in mp.oracle.seen} == set(HOSTILE)  # what the crowd read
    for a in got:
        for key, answer in a.answers.items():
            assert answer["fix"] == HOSTILE[int(key[1:])]  # what came back


def test_invalid_request_is_a_connector_error_with_the_service_code(connector):
    conn, _ = connector
    with pytest.raises(ConnectorError) as info:
        conn.approve("NO_SUCH_ASSIGNMENT_0000000000", "x")
    assert info.value.code and not info.value.retryable and info.value.provider == conn.provider


def test_cursor_is_compact_and_drops_finished_pages(connector):
    conn, mp = connector
    spec = batch_spec("b5", assignments=1)
    batch = conn.create_batch(spec)
    pages = make_pages([f"c{n}" for n in range(6)], prefix="c", per_page=1)
    refs = {p.provider_ref for p in conn.publish(batch, spec, pages)}
    first = conn.fetch(batch, None)
    cursor, got, finished = first.cursor, list(first.assignments), set(first.finished_pages)
    for _ in range(12):
        mp.advance(1800)
        result = conn.fetch(batch, cursor)
        cursor, got, finished = result.cursor, got + result.assignments, finished | set(result.finished_pages)
        if finished == refs:
            break
    assert len(got) == 6 and finished == refs
    final = conn.fetch(batch, cursor)
    assert final.assignments == [] and final.finished_pages == []
    assert len(final.cursor or "") < len(first.cursor or "")  # finished pages are no longer carried


def test_pages_of_a_lane_go_where_only_its_pool_enters(connector):
    conn, mp = connector
    pool = conn.ensure_pool(PoolSpec(name="lane-pool"))
    members = {w.worker_id for w in mp.crowd.workers[:5]}
    for worker in members:
        conn.grant(pool, worker, 1)
    spec = batch_spec("b6", lanes={"members": [PoolRequirement(pool=pool)]})
    batch = conn.create_batch(spec)
    assert len(set(batch.lanes)) == 2 and conn.create_batch(spec).lanes == batch.lanes  # found again, not made twice
    pages = [p.model_copy(update={"lane": "members" if n >= 2 else None}) for n, p in enumerate(make_pages(
        [f"lane {n}" for n in range(8)], prefix="l"))]
    published = conn.publish(batch, spec, pages)
    assert [p.provider_ref for p in conn.publish(batch, spec, pages)] == [p.provider_ref for p in published]
    got, cursor = fetch_all(conn, batch, mp, want=8)
    assert len({a.assignment_id for a in got}) == len(got) == 8  # both lanes fetched, each answer once
    restricted = {pp.provider_ref for pp, p in zip(published, pages, strict=True) if p.lane}
    assert {a.page_ref for a in got} == {p.provider_ref for p in published}
    assert {a.worker_id for a in got if a.page_ref in restricted} <= members
    assert {a.worker_id for a in got if a.page_ref not in restricted} - members  # the open lane: anyone

    # close ends both lanes: pages published just before it get no answers
    late = [p.model_copy(update={"lane": "members" if n == 1 else None})
            for n, p in enumerate(make_pages(["x", "y"], "z", 1))]
    conn.publish(batch, spec, late)
    conn.close(batch)
    assert fetch_all(conn, batch, mp, want=1, cursor=cursor, rounds=2)[0] == []

    plain_spec = batch_spec("b7")  # a batch without the lane refuses a page for it, publishing nothing
    plain = conn.create_batch(plain_spec)
    with pytest.raises(ConnectorError, match="has no such lane"):
        conn.publish(plain, plain_spec, pages)
    assert conn.fetch(plain, None).assignments == [] and fetch_all(conn, plain, mp, want=1, rounds=1)[0] == []


def test_a_stopped_page_takes_no_new_worker_and_finishes(connector):
    conn, mp = connector
    pool = conn.ensure_pool(PoolSpec(name="stop-pool"))
    first, later = (w.worker_id for w in mp.crowd.workers[:2])
    conn.grant(pool, first, 1)
    spec = batch_spec("b8", assignments=4, requirements=[PoolRequirement(pool=pool)])  # one worker may enter
    batch = conn.create_batch(spec)
    [page] = conn.publish(batch, spec, make_pages(["stop me"], prefix="s", per_page=1))
    got, cursor = fetch_all(conn, batch, mp, want=1)
    assert [a.worker_id for a in got] == [first]  # three slots left that nobody can take
    result = conn.fetch(batch, cursor)
    assert page.provider_ref not in result.finished_pages
    conn.stop(page.provider_ref)
    conn.stop(page.provider_ref)  # safe to repeat (the engine re-stops at every poll until finished)
    left = conn.page_assignments(page.provider_ref)
    conn.grant(pool, later, 1)  # a worker who could enter now gets no new work from the page
    more, finished, cursor = [], [], result.cursor
    for _ in range(3):
        mp.advance(1800)
        result = conn.fetch(batch, cursor)
        more, finished, cursor = more + result.assignments, finished + result.finished_pages, result.cursor
    assert more == []
    assert page.provider_ref in finished or left == len(got)  # finished by one sign or the other


def test_a_batch_ref_from_before_named_lanes_keeps_its_lane():
    """A ref stored when a batch had at most one lane (extra key ``restricted``) reads as the
    trusted lane, so follow-up pages written then still publish where they went before."""
    ref = BatchRef.model_validate({"provider": "mturk", "batch_id": "c/s", "ref": "HT0",
                                   "extra": {"restricted": "HT1", "lifetime_s": "60"}})
    page = Page(page_id="p", idempotency_key="k", items=[], lane="trusted")
    assert ref.lane(page) == "HT1" and ref.lanes == ["HT0", "HT1"] and ref.extra["lifetime_s"] == "60"
    assert ref.lane(page.model_copy(update={"lane": None})) == "HT0"
    with pytest.raises(ConnectorError, match="has no such lane"):
        ref.lane(page.model_copy(update={"lane": "probation"}))
    with pytest.raises(ValueError, match="lane names"):
        batch_spec("b9", lanes={"Trusted Workers": []})
