"""psiTurk 3.3.1's ``MTurkServices`` (``psiturk/amt_services.py``), run unmodified against the local
MTurk server.

psiTurk pins dependencies of 2019 (boto3 1.9, Flask 1.1, SQLAlchemy 1.3, ...), so the wheel is
installed with ``pip --no-deps --target`` into a cache dir, with only the modules its MTurk code
imports that our venv lacks: Flask (and its itsdangerous and blinker) and APScheduler (for
``MTurkServicesWrapper``'s models); boto3, botocore and SQLAlchemy are our venv's. psiTurk reads its
config.txt and its SQLite database from a temporary working folder, the AWS keys from the
environment, as psiTurk documents; its hard-coded sandbox endpoint reaches the local server through
``thirdparty_helpers.mturk_proxy``.

psiTurk 3.3.1 has no call that grants or revokes a qualification: a requester grants them on MTurk
and psiTurk requires (``Exists``) or excludes (``DoesNotExist``) them in its HITs; the test grants
with boto3 and checks that psiTurk's HIT goes only to those it should.
"""

from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import pytest
from mturk_helpers import ONE_TRY, client
from thirdparty_helpers import aws_env, installed, mturk_proxy, task_page

from connectors.local import start_local

# psiTurk 3.3.1 was written for SQLAlchemy 1.3; what 2.x says about that code is not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning",
                                        "ignore::sqlalchemy.exc.MovedIn20Warning")

PAGE = """<!DOCTYPE html><html><body>
<form method="post" action="https://workersandbox.mturk.com/mturk/externalSubmit">
<input type="hidden" name="assignmentId" value="">
<p>Which picture shows a cat?</p>
<input type="radio" name="choice" value="left">Left <input type="radio" name="choice" value="right">Right
<input type="submit" value="Submit"></form></body></html>"""
PAGE_QUESTION = ('<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
                 '2006-07-14/ExternalQuestion.xsd"><ExternalURL>https://example.com/</ExternalURL>'
                 '<FrameHeight>0</FrameHeight></ExternalQuestion>')


@pytest.fixture(scope="module")
def psiturk_code(tmp_path_factory):
    """psiTurk importable, working in a temporary folder with its config.txt: yields the monkeypatch that set it up."""
    target, why = installed(["psiturk==3.3.1", "flask==3.1.1", "itsdangerous==2.2.0", "blinker==1.9.0",
                             "APScheduler==3.10.4"], "psiturk-3.3.1")
    if target is None:
        pytest.skip(f"psiTurk 3.3.1 cannot be installed here: {why}")
    tmp = tmp_path_factory.mktemp("psiturk")
    (tmp / "config.txt").write_text("[HIT Configuration]\ntitle = Stroop task\ndescription = Name the ink colour.\n"
                                    "keywords = psychology, stroop\nad_url = http://127.0.0.1:9/pub\n")
    before = set(sys.modules)
    with pytest.MonkeyPatch.context() as mpatch:
        mpatch.delenv("AWS_PROFILE", raising=False)
        for k, v in {**aws_env(tmp), "PSITURK_GLOBAL_CONFIG_LOCATION": str(tmp)}.items():
            mpatch.setenv(k, v)
        mpatch.chdir(tmp)
        mpatch.syspath_prepend(str(target))
        yield mpatch
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("psiturk", "flask", "itsdangerous", "blinker", "apscheduler"):
            del sys.modules[name]


@contextmanager
def _market(mpatch, seed: int):
    """A fresh local MTurk server (its simulated clock starts now) that psiTurk's sandbox endpoint reaches."""
    with start_local("mturk", workers=12, seed=seed) as mp, mturk_proxy(mp.url) as proxy, \
            task_page(PAGE) as (page_url, _seen):
        if proxy is None:
            pytest.skip("the openssl CLI is needed to make the TLS certificate the sandbox endpoint is served with")
        for k, v in proxy.items():
            mpatch.setenv(k, v)
        yield mp, client(mp.url, retries=ONE_TRY), page_url


def _config():
    config = importlib.import_module("psiturk.psiturk_config").PsiturkConfig()
    config.load_config()
    return config


@pytest.fixture
def psi(psiturk_code):
    """(MTurkServices, plain boto3 client on the local URL, marketplace, ad URL)."""
    with _market(psiturk_code, seed=31) as (mp, mt, page_url):
        services = importlib.import_module("psiturk.amt_services").MTurkServices(config=_config(), mode="sandbox")
        yield services, mt, mp, page_url


def _hit_config(ad_url: str, **over):
    config = {"title": "Cat or not", "description": "Pick the picture with a cat.", "keywords": "image, cat",
              "reward": 0.4, "duration": timedelta(minutes=20), "lifetime": timedelta(days=2), "max_assignments": 3,
              "ad_location": ad_url, "approve_requirement": 90, "number_hits_approved": 0,
              "require_master_workers": False, "us_only": True, "require_qualification_ids": [],
              "block_qualification_ids": [], "advanced_qualifications": []}
    return {**config, **over}


def _ok(response):
    assert response.success, f"psiTurk {response.operation}: {response.exception!r}"
    return response.data


def test_psiturk_everyday_calls(psi):
    services, mt, mp, ad_url = psi
    assert _ok(services.check_balance()) == "10000.00"

    allow, block = (mt.create_qualification_type(Name=name, Description="psiTurk list",
                                                 QualificationTypeStatus="Active")["QualificationType"][
                        "QualificationTypeId"] for name in ("psiturk-allow", "psiturk-block"))
    us = [w.worker_id for w in mp.crowd.workers if w.country == "US"]
    for w in mp.crowd.workers:
        mt.associate_qualification_with_worker(QualificationTypeId=allow, WorkerId=w.worker_id, IntegerValue=1,
                                               SendNotification=False)
    mt.associate_qualification_with_worker(QualificationTypeId=block, WorkerId=us[0], IntegerValue=1,
                                           SendNotification=False)
    listed = {q["Name"] for q in _ok(services.list_qualification_types(Query="psiturk"))}
    assert {"psiturk-allow", "psiturk-block"} <= listed

    # create_hit: approval-rate, number-approved and Locale system qualifications, plus the lists
    hit_id = _ok(services.create_hit(_hit_config(ad_url, require_qualification_ids=[allow],
                                                 block_qualification_ids=[block])))["HITId"]
    masters_id = _ok(services.create_hit(_hit_config(ad_url, require_master_workers=True, max_assignments=1)))["HITId"]
    hit = _ok(services.get_hit(hit_id)).options
    assert hit["status"] == "Assignable" and hit["is_expired"] is False and hit["max_assignments"] == 3
    assert {hit_id, masters_id} <= {h.options["hitid"] for h in _ok(services.get_all_hits())}

    mp.advance(4 * 3600)
    submitted = _ok(services.get_assignments(assignment_status="Submitted", hit_ids=[hit_id]))
    assert len(submitted) == 3
    assert all(a["workerId"] in us[1:] for a in submitted)  # US, allowed, not on the block list
    assert all(hit["creation_time"] <= a["accept_time"] <= a["submit_time"] for a in submitted)
    a1, a2, a3 = (a["assignmentId"] for a in submitted)

    _ok(services.approve_assignment(a1))
    _ok(services.reject_assignment(a2))  # psiTurk rejects with RequesterFeedback=''
    _ok(services.approve_assignment(a3))
    status = {a["assignmentId"]: a["status"] for a in _ok(services.get_assignments(hit_ids=hit_id))}
    assert status == {a1: "Approved", a2: "Rejected", a3: "Approved"}
    assert _ok(services.get_assignment(a2))["status"] == "Rejected"
    assert [a["assignmentId"] for a in _ok(services.get_assignments(assignment_status="Rejected",
                                                                     hit_ids=[hit_id]))] == [a2]

    start = Decimal(_ok(services.check_balance()))
    _ok(services.bonus_assignment(a1, None, "1.00"))  # worker looked up from the assignment; Reason=''
    assert start - Decimal(_ok(services.check_balance())) == Decimal("1.20")  # bonus + 20% fee
    _ok(services.unreject_assignment(a2))
    assert _ok(services.get_assignment(a2))["status"] == "Approved"

    # extend_hit: more assignments and a later expiration; expire_hit: expired now; delete_hit
    before = _ok(services.get_hit(hit_id)).options
    _ok(services.extend_hit(hit_id, assignments_increment=2, expiration_increment=60))
    after = _ok(services.get_hit(hit_id)).options
    assert after["max_assignments"] == 5 and after["status"] == "Assignable"
    assert after["expiration"] - before["expiration"] == timedelta(minutes=60)
    for expiring in (hit_id, masters_id):
        _ok(services.expire_hit(expiring))
        expired = _ok(services.get_hit(expiring)).options
        # psiTurk's is_expired compares with the wall clock, which the advanced simulated clock is
        # ahead of: an "expire now" must look expired to it all the same
        assert expired["is_expired"] is True and expired["status"] in ("Reviewable", "Unassignable")
        assert expired["expiration"] <= mp.clock.now() + timedelta(milliseconds=1)
    _ok(services.delete_hit(hit_id))
    assert hit_id not in {h.options["hitid"] for h in _ok(services.get_all_hits())}


def test_psiturk_services_wrapper(psiturk_code):
    """The wrapper psiTurk's shell and dashboard call: HITs recorded in psiTurk's own database."""
    with _market(psiturk_code, seed=32) as (mp, mt, page_url):
        try:
            wrapper_module = importlib.import_module("psiturk.amt_services_wrapper")
        except ImportError as exc:
            pytest.skip(f"psiTurk's MTurkServicesWrapper does not import here: {exc}")
        config = _config()
        config.set("HIT Configuration", "ad_url", page_url)
        wrapper = wrapper_module.MTurkServicesWrapper(config=config, mode="sandbox")
        assert _ok(wrapper.amt_balance()) == "10000.00"
        hit_id = _ok(wrapper.create_hit(num_workers=2, reward=0.5, duration=0.5))["hit_id"]
        mt.create_hit(Title="not psiTurk's", Description="d", Reward="0.01", MaxAssignments=1,
                      AssignmentDurationInSeconds=60, LifetimeInSeconds=3600, Question=PAGE_QUESTION)

        hit = mt.get_hit(HITId=hit_id)["HIT"]
        assert hit["Title"] == "Stroop task" and hit["Question"].find("?mode=sandbox") > 0
        assert [h.options["hitid"] for h in _ok(wrapper.get_active_hits())] == [hit_id]  # only its own, not expired
        assert _ok(wrapper.tally_hits()) == {"hit_tally": 1}
        assert _ok(wrapper.count_available(hits=_ok(wrapper.get_active_hits()))) == 2
        _ok(wrapper.extend_hit(hit_id, minutes=30))
        assert mt.get_hit(HITId=hit_id)["HIT"]["Expiration"] - hit["Expiration"] == timedelta(minutes=30)

        _ok(wrapper.expire_hit(hit_id))  # ExpireAt = now - 30 days
        assert _ok(wrapper.get_active_hits()) == []
        assert [h.options["hitid"] for h in _ok(wrapper.get_reviewable_hits())] == [hit_id]
        [deleted] = _ok(wrapper.delete_all_hits())["results"]
        assert _ok(deleted)["success"] is True
        assert hit_id not in {h.options["hitid"] for h in _ok(wrapper.get_all_hits(all_studies=True))}
