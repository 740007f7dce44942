"""toloka-kit's own tools run their everyday calls against ``start_local("toloka")`` unchanged
(issue 18's "done when"): ``TolokaClient``, ``toloka.streaming`` pipelines and
``toloka.metrics`` collectors see the marketplace's state and meet no refusal."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from decimal import Decimal

import pytest
import toloka.client as tc
import toloka.metrics as tm
from test_local_toloka_api import known, make_pool, make_project, truth_oracle
from toloka.streaming import AssignmentsObserver, Pipeline

from connectors.local import start_local

LAG = datetime.timedelta(seconds=1)


@pytest.fixture
def market():
    with start_local("toloka", workers=12, seed=3, oracle=truth_oracle) as mp:
        yield mp, tc.TolokaClient("any-local-token", url=mp.url, retries=0)


@pytest.fixture
def live():
    """A marketplace on the wall clock with a quick crowd (the streaming cursors look only at
    what is at least ``LAG`` old by wall-clock time)."""
    with start_local("toloka", workers=20, seed=8, oracle=truth_oracle, clock_speed=1.0) as mp:
        for w in mp.crowd.workers:
            w.seconds_per_item, w.abandon_rate = 0.3, 0.0
        yield mp, tc.TolokaClient("any-local-token", url=mp.url, retries=0)


def test_everyday_toloka_client_calls(market):
    mp, client = market
    skill = client.create_skill(name="accuracy", hidden=True)
    project = make_project(client)
    assert client.get_project(project.id).public_name == "Sentiment"
    assert project.id in {p.id for p in client.get_projects(status="ACTIVE")}
    pool = make_pool(client, project.id)
    training = client.create_training(tc.Training(
        project_id=project.id, private_name="t", may_contain_adult_content=False,
        assignment_max_duration_seconds=300, training_tasks_in_task_suite_count=1, task_suites_required_to_pass=1))
    assert [t.id for t in client.get_trainings(project_id=project.id)] == [training.id]
    client.create_tasks([tc.Task(pool_id=training.id, input_values={"text": "good"}, known_solutions=known("pos"))])

    tasks = client.create_tasks([tc.Task(pool_id=pool.id, input_values={"text": f"good {n}"}) for n in range(4)]
                                + [tc.Task(pool_id=pool.id, input_values={"text": "g"}, known_solutions=known("pos"))],
                                allow_defaults=True, operation_id=uuid.uuid4(), async_mode=True)
    assert len(tasks.items) == 5 and not tasks.validation_errors
    suite = client.create_task_suite(tc.TaskSuite(pool_id=pool.id, overlap=1,
                                                  tasks=[tc.Task(input_values={"text": "good suite"})]))
    assert client.get_task_suite(suite.id).tasks[0].input_values == {"text": "good suite"}
    client.patch_task_overlap_or_min(tasks.items["0"].id, overlap=3)
    assert client.get_task(tasks.items["0"].id).overlap == 3
    client.open_pool(pool.id)
    client.open_training(training.id)
    mp.advance(3 * 3600)

    submitted = list(client.get_assignments(pool_id=pool.id, status="SUBMITTED"))
    assert len(submitted) >= 3
    before = client.get_requester().balance
    client.accept_assignment(submitted[0].id, "good")
    client.reject_assignment(submitted[1].id, "wrong")
    assert before - client.get_requester().balance == Decimal("0.065")
    assert client.get_assignment(submitted[1].id).status == tc.Assignment.REJECTED

    worker = submitted[0].user_id
    bonus = client.create_user_bonus(tc.user_bonus.UserBonus(
        user_id=worker, amount=Decimal("0.20"), public_title={"EN": "Bonus"}, public_message={"EN": "Thanks"},
        assignment_id=submitted[0].id))
    assert [b.id for b in client.get_user_bonuses(user_id=worker)] == [bonus.id]
    us = client.set_user_skill(skill_id=skill.id, user_id=worker, value=Decimal(80))
    assert [s.value for s in client.get_user_skills(user_id=worker, skill_id=skill.id)] == [80]
    client.delete_user_skill(us.id)
    ban = client.set_user_restriction(tc.user_restriction.PoolUserRestriction(
        user_id=submitted[1].user_id, pool_id=pool.id, private_comment="spam"))
    assert [r.id for r in client.get_user_restrictions(pool_id=pool.id)] == [ban.id]
    client.delete_user_restriction(ban.id)

    df = client.get_assignments_df(pool.id, status=["APPROVED", "REJECTED"])
    assert list(df.columns[:2]) == ["INPUT:text", "OUTPUT:label"] and len(df) == len(submitted[0].tasks) + len(
        submitted[1].tasks)
    assert set(df["ASSIGNMENT:status"]) == {"APPROVED", "REJECTED"}
    ops = list(client.get_operations(type="TASK.BATCH_CREATE"))
    assert ops and all(op.status == tc.operations.Operation.Status.SUCCESS for op in ops)
    assert client.get_pool(pool.id).last_close_reason == tc.Pool.CloseReason.COMPLETED  # all done
    client.open_pool(pool.id)
    client.close_pool(pool.id)
    closed = client.get_pool(pool.id)
    assert closed.last_close_reason == tc.Pool.CloseReason.MANUAL and closed.last_stopped
    client.archive_pool(pool.id)
    client.close_training(training.id)
    client.archive_training(training.id)
    assert client.get_training(training.id).status == tc.Training.Status.ARCHIVED


def test_streaming_pipeline_sees_every_submission_and_acceptance(live):
    mp, client = live
    pool = make_pool(client, make_project(client).id, overlap=1)
    pool.auto_close_after_complete_delay_seconds = 5
    client.update_pool(pool.id, pool)
    client.create_tasks([tc.Task(pool_id=pool.id, input_values={"text": f"good {n}"}) for n in range(6)],
                        allow_defaults=True, open_pool=True)
    mp.run_background()
    submitted, accepted = [], []
    observer = AssignmentsObserver(client, pool.id, cursor_time_lag=LAG)

    @observer.on_submitted
    def review(events):
        for e in events:
            submitted.append(e.assignment.id)
            client.accept_assignment(e.assignment.id, "thanks")

    @observer.on_accepted
    def paid(events):
        accepted.extend(e.assignment.id for e in events)

    pipeline = Pipeline(period=datetime.timedelta(seconds=0.5))
    pipeline.register(observer)

    async def run():  # Pipeline.run() sleeps at least 10 s a round; run_manually lets us pace it
        async for _ in pipeline.run_manually():  # ends once the pool has closed
            await asyncio.sleep(0.5)

    asyncio.run(asyncio.wait_for(run(), timeout=90))

    everything = [a.id for a in client.get_assignments(pool_id=pool.id) if a.status != tc.Assignment.SKIPPED]
    assert len(everything) == 3  # 6 tasks, 2 a page, overlap 1
    assert sorted(submitted) == sorted(everything) == sorted(accepted)
    assert client.get_pool(pool.id).last_close_reason == tc.Pool.CloseReason.COMPLETED


def test_metrics_collector_sees_pool_progress_balance_and_new_bonuses(live):
    mp, client = live
    pool = make_pool(client, make_project(client).id, overlap=1)
    client.create_tasks([tc.Task(pool_id=pool.id, input_values={"text": f"good {n}"}) for n in range(4)],
                        allow_defaults=True, open_pool=True)
    skill = client.create_skill(name="s")
    mp.run_background()
    seen: dict[str, list] = {}

    def callback(lines):
        for name, points in lines.items():
            seen.setdefault(name, []).extend(points)

    async def collect():
        collector = tm.MetricCollector([
            tm.Balance(toloka_client=client),
            tm.AssignmentsInPool(pool.id, toloka_client=client),
            tm.PoolCompletedPercentage(pool.id, toloka_client=client),
            tm.NewUserBonuses(cursor_time_lag=LAG, join_events=True, toloka_client=client),  # its default mode
            # (join_events=False) fails inside toloka-kit 1.2.3 itself: len() of a groupby group
            tm.NewUserSkills(skill.id, cursor_time_lag=LAG, toloka_client=client),
        ], callback)
        task = asyncio.ensure_future(collector.run())
        paid = None
        for _ in range(300):
            await asyncio.sleep(0.1)
            done = client.get_pool(pool.id).status == tc.Pool.Status.CLOSED
            if done and paid is None:
                assignment = next(iter(client.get_assignments(pool_id=pool.id)))
                await asyncio.to_thread(client.create_user_bonus, tc.user_bonus.UserBonus(
                    user_id=assignment.user_id, amount=Decimal("0.5"), public_title={"EN": "b"},
                    public_message={"EN": "m"}))
                await asyncio.to_thread(client.set_user_skill, skill_id=skill.id, user_id=assignment.user_id,
                                        value=Decimal(90))
                paid = client.get_requester().balance
            balance = (seen.get("toloka_requester_balance") or [(0, 0)])[-1][1]
            if paid is not None and balance == paid and sum(v for _, v in seen.get("bonus_count", [])) and seen.get(
                    "skill_values") and (seen.get("completion_percentage") or [(0, 0)])[-1][1] == 100:
                break
        task.cancel()

    asyncio.run(collect())
    assert seen["toloka_requester_balance"][0][1] == Decimal("10000.00")
    assert seen["toloka_requester_balance"][-1][1] == client.get_requester().balance == Decimal("10000.00") - Decimal(
        "0.65")
    assert seen["submitted_assignments_in_pool"][-1][1] == 2
    assert seen["completion_percentage"][-1][1] == 100
    assert sum(v for _, v in seen["bonus_count"]) == 1 and sum(v for _, v in seen["bonus_money"]) == Decimal("0.5")
    assert [v for _, v in seen["skill_values"]] == [90]
