"""Toloka creations converge on one object whatever response is lost (issue 14, defect 4).

Toloka has no idempotency token for skills, projects or pools, so a create whose response is lost
(the local server makes the object, then closes the connection) used to be made again on retry:
two skills named ``blocked``, one used by the process that made them and the other found by the
next. Real toloka-kit over HTTP against the local Toloka server.
"""

from __future__ import annotations

import pytest
from test_toloka_connector import FAST, spec

from connectors.base import PoolSpec
from connectors.local import start_local
from connectors.toloka import TolokaConnector


@pytest.fixture
def mp():
    with start_local("toloka", workers=4, seed=2) as market:
        yield market


def stored(mp, kind: str) -> list[dict]:
    with mp.server.lock:
        return list(mp.server.state.store[kind].values())


def test_a_skill_whose_create_response_is_lost_exists_once_and_every_process_finds_it(mp):
    mp.server.faults.lose_next("POST skills")
    made = TolokaConnector("local", mp.url, retry=FAST).ensure_pool(PoolSpec(name="blocked"))
    assert [s["name"] for s in stored(mp, "skills")] == ["blocked"]
    later = TolokaConnector("local", mp.url, retry=FAST).ensure_pool(PoolSpec(name="blocked"))
    assert later.ref == made.ref


@pytest.mark.parametrize("lost", ["POST projects", "POST pools"])
def test_a_batch_whose_project_or_pool_create_response_is_lost_has_one_of_each(mp, lost):
    mp.server.faults.lose_next(lost)
    first = TolokaConnector("local", mp.url, retry=FAST).create_batch(spec("lost"))
    assert len(stored(mp, "projects")) == 1 and len(stored(mp, "pools")) == 1
    again = TolokaConnector("local", mp.url, retry=FAST).create_batch(spec("lost"))
    assert again.ref == first.ref and len(stored(mp, "pools")) == 1
