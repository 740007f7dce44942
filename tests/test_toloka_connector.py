"""TolokaConnector against the local Toloka: the full cycle, crash-safe publishing, throttling,
screening and errors. Provider-neutral cases live in test_connector_contract.py."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from connectors.base import (
    BatchSpec,
    Choice,
    ConnectorError,
    Display,
    Page,
    PageItem,
    PoolRequirement,
    ScreeningQuestion,
    ScreeningTest,
)
from connectors.local import FaultConfig, start_local
from connectors.retry import RetryPolicy
from connectors.toloka import TolokaConnector

FAST = RetryPolicy(max_attempts=8, initial_s=0.0, max_s=0.01, jitter=False)


def oracle(task, worker, rng):
    return {"label": "pos" if "good" in task.inputs.get("text", "") else "neg"}


def spec(batch_id: str = "b1", overlap: int = 2, golden: int = 0, **kw) -> BatchSpec:
    return BatchSpec(
        batch_id=batch_id,
        idempotency_key=f"key-{batch_id}",
        stage="label",
        kind="classify",
        title="Sentiment",
        description="Is it positive?",
        reward=Decimal("0.04"),
        assignments_per_page=overlap,
        golden_per_page=golden,
        real_per_page=2,
        **kw,
    )


def pages(n: int, per_page: int = 2, golden_every: int = 0) -> list[Page]:
    out = []
    for p in range(n):
        items = []
        for k in range(per_page):
            idx = p * per_page + k
            golden = bool(golden_every) and k == per_page - 1
            text = f"{'good' if idx % 2 else 'bad'} item {idx}"
            items.append(
                PageItem(
                    item_key=f"i{idx}",
                    golden=golden,
                    known_answer={"label": "pos" if idx % 2 else "neg"} if golden else None,
                    widgets=[
                        Display(name="text", text=text),
                        Choice(
                            name="label",
                            label="Sentiment",
                            options=[("pos", "Positive"), ("neg", "Negative")],
                        ),
                    ],
                )
            )
        out.append(Page(page_id=f"page{p}", idempotency_key=f"pk{p}", items=items))
    return out


def poll(conn: TolokaConnector, batch, mp, want: int, rounds: int = 10):
    got, cursor = [], None
    for _ in range(rounds):
        mp.advance(1800)
        res = conn.fetch(batch, cursor)
        got, cursor = got + res.assignments, res.cursor
        if len(got) >= want:
            break
    return got, cursor


@pytest.fixture
def market():
    with start_local("toloka", workers=10, seed=5, oracle=oracle) as mp:
        yield mp


def test_cycle_with_golden_items_and_answers_keyed_by_item(market):
    conn = TolokaConnector("local", market.url, retry=FAST)
    s = spec(golden=1)
    batch = conn.create_batch(s)
    assert conn.create_batch(s).ref == batch.ref  # found again, not a second pool
    published = conn.publish(batch, s, pages(3, golden_every=1))
    assert [p.page_id for p in published] == ["page0", "page1", "page2"] and all(p.created for p in published)
    got, cursor = poll(conn, batch, market, want=6)
    assert len(got) == 6
    for a in got:
        page = int(a.page_id[4:])
        assert sorted(a.answers) == [f"i{2 * page}", f"i{2 * page + 1}"]  # golden item answered like the rest
        assert all(set(v) == {"label"} and v["label"] in ("pos", "neg") for v in a.answers.values())
    assert conn.fetch(batch, cursor).assignments == []
    server = market.server.state
    golden_tasks = [t for t in server.store["tasks"].values() if t.get("known_solutions")]
    assert len(golden_tasks) == 3  # one known solution per page went to Toloka's control machinery
    conn.approve(got[0].assignment_id, "thanks")
    conn.approve(got[0].assignment_id, "thanks")  # a retried approve is not an error
    conn.extend(got[1].page_ref, 1)
    assert server.store["task-suites"][got[1].page_ref]["overlap"] == 3
    before = conn.balance()
    conn.close(batch)
    assert server.store["pools"][batch.ref]["status"] == "CLOSED" and conn.balance() == before
    assert sum(conn.calls.values()) == sum(market.calls.values())  # every HTTP request counted


def test_crash_after_upload_then_rerun_creates_each_page_once(market):
    s = spec("crash")
    crashing = TolokaConnector("local", market.url, retry=FAST)
    batch = crashing.create_batch(s)

    def crash(operation_id):
        raise RuntimeError("process killed before the suites were recorded")

    crashing.client.get_operation_log = crash
    with pytest.raises(RuntimeError):
        crashing.publish(batch, s, pages(4))
    fresh = TolokaConnector("local", market.url, retry=FAST)  # a new process: no caches
    again = fresh.publish(batch, s, pages(4))
    assert not any(p.created for p in again)
    suites = market.server.state.store["task-suites"]
    assert len(suites) == 4 and {p.provider_ref for p in again} == set(suites)
    assert len(market.server.state.store["tasks"]) == 8
    got, _ = poll(fresh, batch, market, want=8)
    assert len(got) == 8


def test_throttling_is_retried_until_it_succeeds():
    faults = FaultConfig(throttle_rate=0.3, seed=11)
    with start_local("toloka", workers=6, seed=2, oracle=oracle, faults=faults) as mp:
        mp.server.retry_after_s = 0
        conn = TolokaConnector("local", mp.url, retry=FAST)
        s = spec("thr", overlap=1)
        batch = conn.create_batch(s)
        conn.publish(batch, s, pages(3))
        got, _ = poll(conn, batch, mp, want=3)
        assert len(got) == 3
        assert conn.retried["TOO_MANY_REQUESTS"] > 0
        assert sum(conn.calls.values()) == sum(mp.calls.values())


def test_screening_sets_a_skill_that_gates_the_work_pool(market):
    conn = TolokaConnector("local", market.url, retry=FAST)
    test = ScreeningTest(
        name="sentiment test",
        description="Three easy ones",
        pass_score=60,
        questions=[
            ScreeningQuestion(
                id=f"q{n}",
                text=f"{'good' if n % 2 else 'bad'} q{n}",
                options=[("pos", "Positive"), ("neg", "Negative")],
                answer=["pos" if n % 2 else "neg"],
            )
            for n in range(3)
        ],
    )
    skill = conn.ensure_screening(test)
    assert conn.ensure_screening(test).ref == skill.ref
    s = spec("gated", overlap=2, requirements=[PoolRequirement(pool=skill, min_score=60)])
    batch = conn.create_batch(s)
    conn.publish(batch, s, pages(2))
    got, _ = poll(conn, batch, market, want=4)
    assert len(got) == 4
    state = market.server.state
    for a in got:
        assert state.skill_value(a.worker_id, skill.ref) >= 60


def test_errors_carry_toloka_codes_and_fields(market):
    with pytest.raises(ConnectorError) as info:
        TolokaConnector("sandbox")
    assert info.value.code == "SANDBOX_CLOSED"
    conn = TolokaConnector("local", market.url, retry=FAST)
    with pytest.raises(ConnectorError) as info:
        conn.reject("000000000999", "no")
    assert info.value.code == "DOES_NOT_EXIST" and not info.value.retryable
    with pytest.raises(ConnectorError) as info:
        conn._call(
            "create",
            lambda: conn.client.create_task(
                __import__("toloka").client.Task(pool_id="424242", input_values={}), async_mode=False
            ),
        )
    assert info.value.code == "VALIDATION_ERROR" and info.value.field == "pool_id"
    assert "local-dummy-token" not in repr(conn)


def test_a_cursor_from_before_lanes_still_reads(market):
    """A cursor stored before batches had lanes is one pool's bare state; it reads as the batch's
    own pool's, so a campaign polled across the upgrade neither loses nor repeats an answer."""
    conn = TolokaConnector("local", market.url, retry=FAST)
    s = spec("old")
    batch = conn.create_batch(s)
    conn.publish(batch, s, pages(2))
    first, cursor = poll(conn, batch, market, want=2)
    bare = json.dumps(json.loads(cursor)["p"][batch.ref])  # what the cursor looked like before lanes
    conn.publish(batch, s, pages(4)[2:])
    after_old, _ = poll_from(conn, batch, market, bare, want=2)
    after_new, _ = poll_from(conn, batch, market, cursor, want=2, rounds=1)
    assert first and {a.page_id for a in first} <= {"page0", "page1"}
    assert after_old and {a.page_id for a in after_old} <= {"page2", "page3"}  # nothing read twice
    assert len({a.assignment_id for a in after_old}) == len(after_old)
    # and the old cursor read exactly what the cursor of the same moment in the new shape reads
    assert sorted(a.assignment_id for a in after_new) == sorted(a.assignment_id for a in after_old)


def poll_from(conn: TolokaConnector, batch, mp, cursor: str, want: int, rounds: int = 10):
    got = []
    for _ in range(rounds):
        res = conn.fetch(batch, cursor)
        got, cursor = got + res.assignments, res.cursor
        if len(got) >= want:
            break
        mp.advance(1800)
    return got, cursor


def test_locales_select_workers_by_country_and_read_back_in_toloka_kit(market):
    """A locale is a country code: it used to go out as RegionByPhone (a region id), which Toloka
    rejects and toloka-kit cannot read back (``int("US")``)."""
    import toloka.client as toloka

    conn = TolokaConnector("local", market.url, retry=FAST)
    s = spec("in-gb", overlap=2, locales=["GB", "IN"])
    batch = conn.create_batch(s)
    pool = toloka.TolokaClient("local", url=market.url, retries=0).get_pool(batch.ref)  # structures back
    (either,) = pool.filter.and_  # toloka-kit keeps a pool's filter as an AND of conditions
    assert {(type(c), c.value) for c in either.or_} == {(toloka.filter.Country, "GB"), (toloka.filter.Country, "IN")}
    conn.publish(batch, s, pages(2))
    got, _ = poll(conn, batch, market, want=4)
    countries = {w.worker_id: w.country for w in market.crowd.workers}
    assert got and {countries[a.worker_id] for a in got} <= {"GB", "IN"}
