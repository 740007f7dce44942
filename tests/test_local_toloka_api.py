"""Plain toloka-kit (no crowdbridge connector code) against the local Toloka server."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest
import toloka.client as tc
import toloka.client.project.field_spec as fs
from toloka.client.actions import SetSkillFromOutputField
from toloka.client.collectors import GoldenSet
from toloka.client.conditions import GoldenSetAnswersCount
from toloka.client.exceptions import DoesNotExistApiError, IncorrectActionsApiError, ValidationApiError
from toloka.client.project.template_builder import (
    GroupFieldOption,
    InputData,
    ListViewV1,
    OutputData,
    RadioGroupFieldV1,
    TextViewV1,
)

from connectors.local import start_local


def truth_oracle(task, worker, rng):
    """Careful workers answer "pos" when the text says good; everything else "neg"."""
    return {"label": "pos" if "good" in task.inputs["text"] else "neg"}


@pytest.fixture
def market():
    with start_local("toloka", workers=12, seed=3, oracle=truth_oracle) as mp:
        client = tc.TolokaClient("any-local-token", url=mp.url, retries=0)
        yield mp, client


def make_project(client: tc.TolokaClient) -> tc.Project:
    view = ListViewV1(
        [
            TextViewV1(InputData("text")),
            RadioGroupFieldV1(
                OutputData("label"),
                [GroupFieldOption("pos", "Positive"), GroupFieldOption("neg", "Negative")],
            ),
        ]
    )
    return client.create_project(
        tc.Project(
            public_name="Sentiment",
            public_description="Is the text positive?",
            task_spec=tc.project.task_spec.TaskSpec(
                input_spec={"text": fs.StringSpec()},
                output_spec={"label": fs.StringSpec(allowed_values=["pos", "neg"])},
                view_spec=tc.project.view_spec.TemplateBuilderViewSpec(view=view),
            ),
        )
    )


def make_pool(
    client: tc.TolokaClient, project_id: str, skill_id: str | None = None, overlap: int = 2
) -> tc.Pool:
    pool = tc.Pool(
        project_id=project_id,
        private_name="pool",
        may_contain_adult_content=False,
        will_expire=datetime.datetime(2030, 1, 1),
        reward_per_assignment=Decimal("0.05"),
        assignment_max_duration_seconds=600,
        auto_accept_solutions=False,
        defaults=tc.Pool.Defaults(
            default_overlap_for_new_task_suites=overlap, default_overlap_for_new_tasks=overlap
        ),
    )
    pool.set_mixer_config(real_tasks_count=2, golden_tasks_count=1, training_tasks_count=0)
    if skill_id:
        pool.quality_control.add_action(
            collector=GoldenSet(history_size=5),
            conditions=[GoldenSetAnswersCount >= 1],
            action=SetSkillFromOutputField(skill_id=skill_id, from_field="correct_answers_rate"),
        )
    return client.create_pool(pool)


def known(label: str) -> list[tc.task.BaseTask.KnownSolution]:
    return [tc.task.BaseTask.KnownSolution(output_values={"label": label})]


def test_pool_tasks_assignments_review_and_money(market):
    mp, client = market
    skill = client.create_skill(name="golden accuracy", hidden=True)
    project = make_project(client)
    pool = make_pool(client, project.id, skill.id)
    tasks = [
        tc.Task(pool_id=pool.id, input_values={"text": f"{'good' if n % 2 else 'bad'} thing {n}"})
        for n in range(8)
    ]
    tasks += [
        tc.Task(pool_id=pool.id, input_values={"text": "a good golden"}, known_solutions=known("pos")),
        tc.Task(pool_id=pool.id, input_values={"text": "a bad golden"}, known_solutions=known("neg")),
    ]
    created = client.create_tasks(
        tasks, operation_id=uuid.uuid4(), async_mode=True, allow_defaults=True, open_pool=True
    )
    assert len(created.items) == 10 and not created.validation_errors
    assert client.get_pool(pool.id).status == tc.Pool.Status.OPEN

    mp.advance(4 * 3600)
    seen, pages, request = [], 0, {"pool_id": pool.id, "status": ["SUBMITTED"]}
    while True:  # read 3 at a time, paging by id
        res = client.find_assignments(**request, sort=["id"], limit=3)
        seen += res.items
        pages += 1
        if not res.has_more:
            break
        request["id_gt"] = res.items[-1].id
    assert len(seen) >= 8 and pages == -(-len(seen) // 3) and len({a.id for a in seen}) == len(seen)
    for a in seen:  # every suite: up to 2 real tasks + 1 golden, one solution per task, in task order
        assert len(a.tasks) == len(a.solutions) and 2 <= len(a.tasks) <= 3
        assert sum(1 for t in a.tasks if t.known_solutions) == 1
        assert len({t.id for t in a.tasks}) == len(a.tasks)
    real = [t.input_values["text"] for a in seen for t in a.tasks if not t.known_solutions]
    assert sorted(real) == sorted(t.input_values["text"] for t in tasks[:8] for _ in range(2))  # overlap 2
    assert client.get_pool(pool.id).status == tc.Pool.Status.CLOSED  # completed by itself

    # golden accuracy became a skill value (percent) for each worker who answered one
    user_skills = client.find_user_skills(skill_id=skill.id).items
    assert {us.user_id for us in user_skills} == {a.user_id for a in seen}
    assert all(0 <= us.exact_value <= 100 for us in user_skills)

    before = client.get_requester().balance
    accepted = client.accept_assignment(seen[0].id, "thanks")
    rejected = client.reject_assignment(seen[1].id, "wrong answers")
    assert accepted.status == tc.Assignment.ACCEPTED and rejected.status == tc.Assignment.REJECTED
    assert rejected.public_comment == "wrong answers"
    assert before - client.get_requester().balance == Decimal("0.05") + Decimal("0.015")  # reward + 30% fee
    with pytest.raises(IncorrectActionsApiError) as info:  # 409: only a submitted one can be rejected
        client.reject_assignment(seen[0].id, "changed my mind")
    assert info.value.code == "INAPPROPRIATE_STATUS" and info.value.status_code == 409


def test_bonus_with_one_operation_id_is_created_once(market):
    mp, client = market
    op = uuid.uuid4()
    bonus = tc.user_bonus.UserBonus(
        user_id="W1",
        amount=Decimal("0.50"),
        public_title={"EN": "Thanks"},
        public_message={"EN": "Good work"},
    )
    before = mp.balance()
    first = client.create_user_bonus(bonus, operation_id=op, async_mode=True)
    second = client.create_user_bonus(bonus, operation_id=op, async_mode=True)
    assert first.id == second.id
    assert [b.id for b in client.get_user_bonuses(user_id="W1")] == [first.id]
    assert before - mp.balance() == Decimal("0.50") + Decimal("0.15")


def test_task_missing_a_required_input_is_a_validation_error(market):
    _, client = market
    pool = make_pool(client, make_project(client).id)
    with pytest.raises(ValidationApiError) as info:
        client.create_task(tc.Task(pool_id=pool.id, input_values={"other": "x"}), async_mode=False)
    assert info.value.status_code == 400 and info.value.code == "VALIDATION_ERROR"
    assert "input_values.text" in info.value.invalid_fields
    assert info.value.payload["input_values.text"]["code"] == "VALUE_REQUIRED"
    with pytest.raises(ValidationApiError):  # async mode: the operation log carries the same error
        client.create_tasks(
            [tc.Task(pool_id=pool.id, input_values={})], operation_id=uuid.uuid4(), async_mode=True
        )
    assert client.find_tasks(pool_id=pool.id).items == []


def test_statuses_and_not_found(market):
    _, client = market
    pool = make_pool(client, make_project(client).id)
    with pytest.raises(DoesNotExistApiError):
        client.get_pool("999999")
    client.open_pool(pool.id)
    with pytest.raises(IncorrectActionsApiError) as info:  # an open pool cannot be archived
        client.archive_pool(pool.id)
    assert info.value.code == "INAPPROPRIATE_STATUS"
    assert client.close_pool(pool.id).status == tc.Pool.Status.CLOSED
    assert client.archive_pool(pool.id).status == tc.Pool.Status.ARCHIVED


def test_restricted_or_unskilled_workers_get_no_work(market):
    mp, client = market
    skill = client.create_skill(name="vetted", hidden=True)
    project = make_project(client)
    pool = tc.Pool(
        project_id=project.id,
        private_name="vetted only",
        may_contain_adult_content=False,
        will_expire=datetime.datetime(2030, 1, 1),
        reward_per_assignment=Decimal("0.02"),
        assignment_max_duration_seconds=600,
        filter=tc.filter.Skill(skill.id) >= 70,
        defaults=tc.Pool.Defaults(default_overlap_for_new_task_suites=5),
    )
    pool = client.create_pool(pool)
    vetted = [w.worker_id for w in mp.crowd.workers[:3]]
    for w in vetted:
        client.set_user_skill(skill_id=skill.id, user_id=w, value=Decimal(90))
    client.set_user_restriction(
        tc.user_restriction.AllProjectsUserRestriction(user_id=vetted[0], private_comment="blocked")
    )
    suite = tc.TaskSuite(pool_id=pool.id, tasks=[tc.task.BaseTask(input_values={"text": "good"})], overlap=5)
    client.create_task_suite(suite, async_mode=False, open_pool=True)
    mp.advance(4 * 3600)
    workers = {a.user_id for a in client.get_assignments(pool_id=pool.id)}
    assert workers == set(vetted[1:])
