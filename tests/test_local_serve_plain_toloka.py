"""`crowd local serve --provider toloka` as a user runs it, driven by plain toloka-kit only
(issue 4's "done when"; the in-process tests in test_local_toloka_api.py go deeper)."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
import toloka.client as tc
from engine_helpers import served as serve_local
from test_local_toloka_api import known, make_pool, make_project
from toloka.client.exceptions import ValidationApiError


@pytest.fixture(scope="module")
def served():
    with serve_local("toloka", workers=12, clock_speed=3600, seed=5) as (proc, url):
        yield url
    assert proc.returncode == 0  # SIGTERM ends it cleanly


def test_plain_toloka_kit_gets_the_services_behaviour(served):
    client = tc.TolokaClient("any-local-token", url=served, retries=0)
    pool = make_pool(client, make_project(client).id, overlap=2)
    tasks = [tc.Task(pool_id=pool.id, input_values={"text": f"text {n}"}) for n in range(6)]
    tasks += [tc.Task(pool_id=pool.id, input_values={"text": "golden"}, known_solutions=known("pos"))]
    op = uuid.uuid4()
    created = client.create_tasks(tasks, operation_id=op, async_mode=True, allow_defaults=True, open_pool=True)
    assert len(created.items) == 7 and not created.validation_errors

    deadline, seen = time.monotonic() + 60, []
    while time.monotonic() < deadline and len(seen) < 6:  # the crowd works while the clock runs
        seen, request = [], {"pool_id": pool.id, "status": ["SUBMITTED"]}
        while True:
            res = client.find_assignments(**request, sort=["id"], limit=2)
            seen += res.items
            if not res.has_more:
                break
            request["id_gt"] = res.items[-1].id
        time.sleep(0.3)
    assert len(seen) >= 6 and len({a.id for a in seen}) == len(seen)

    before = client.get_requester().balance
    client.accept_assignment(seen[0].id, "thanks")
    client.reject_assignment(seen[1].id, "please read the instructions")
    assert before - client.get_requester().balance == Decimal("0.05") + Decimal("0.015")

    bonus = tc.user_bonus.UserBonus(user_id=seen[0].user_id, amount=Decimal("0.10"),
                                    public_title={"EN": "Thanks"}, public_message={"EN": "Good work"})
    bop = uuid.uuid4()
    first = client.create_user_bonus(bonus, operation_id=bop, async_mode=True)
    second = client.create_user_bonus(bonus, operation_id=bop, async_mode=True)
    assert first.id == second.id
    assert [b.id for b in client.get_user_bonuses(user_id=seen[0].user_id)] == [first.id]

    with pytest.raises(ValidationApiError) as info:
        client.create_task(tc.Task(pool_id=pool.id, input_values={"other": "x"}), async_mode=False)
    assert info.value.code == "VALIDATION_ERROR" and "input_values.text" in info.value.invalid_fields
