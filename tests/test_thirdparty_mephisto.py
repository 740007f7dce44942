"""Mephisto 1.1.1's MTurk utilities (``mephisto/abstractions/providers/mturk/mturk_utils.py``), run
unmodified against the local MTurk server.

Mephisto pins dependencies of 2022 (hydra, flask 1, rich 12, ...), so the wheel is installed with
``pip --no-deps --target`` into a cache dir, with only omegaconf (and its antlr4 runtime), which
mturk_utils imports; boto3 and botocore are our venv's. The one stand-in: ``mephisto`` itself is
registered as a bare package pointing at the wheel's folder, so that its ``__init__`` (which fills
blueprint registries and hydra configs) does not run; every module below it is Mephisto's own file.
``~/.mephisto/config.yml`` is read from a temporary HOME.

The clients are built as Mephisto's MTurkDatastore builds them (its module needs prometheus and a
database, so it is not imported): a profile session, then ``client("mturk")`` for live (pointed
here by ``AWS_ENDPOINT_URL_MTURK``) and ``client(..., endpoint_url=<sandbox>)`` for the sandbox
(reached through ``thirdparty_helpers.mturk_proxy``).
"""

from __future__ import annotations

import importlib
import sys
import types
from datetime import timedelta
from decimal import Decimal

import boto3
import pytest
from botocore.exceptions import ClientError
from thirdparty_helpers import SANDBOX_ENDPOINT, aws_env, installed, mturk_proxy, task_page

from connectors.local import start_local

PROFILE = "local-requester"
PAGE = """<!DOCTYPE html><html><body>
<form method="post" action="https://workersandbox.mturk.com/mturk/externalSubmit">
<input type="hidden" name="assignmentId" value="">
<p>How clear is this sentence?</p>
<select name="clarity"><option value="1">1</option><option value="2">2</option><option value="3">3</option></select>
<textarea name="why"></textarea><input type="submit" value="Submit"></form></body></html>"""


@pytest.fixture(scope="module")
def meph(tmp_path_factory):
    """(mturk_utils, sandbox client, live client, marketplace, task page URL, page requests)."""
    target, why = installed(["mephisto==1.1.1", "omegaconf==2.3.0", "antlr4-python3-runtime==4.9.3"],
                            "mephisto-1.1.1")
    if target is None:
        pytest.skip(f"Mephisto 1.1.1 cannot be installed here: {why}")
    tmp = tmp_path_factory.mktemp("mephisto")
    (tmp / ".mephisto").mkdir()
    (tmp / ".mephisto" / "config.yml").write_text("core: {}\n")
    (tmp / "aws-credentials").write_text(f"[{PROFILE}]\naws_access_key_id=AKIDLOCAL\naws_secret_access_key=s\n")
    before = set(sys.modules)
    with start_local("mturk", workers=12, seed=21) as mp, mturk_proxy(mp.url) as proxy, \
            task_page(PAGE) as (page_url, seen), pytest.MonkeyPatch.context() as mpatch:
        if proxy is None:
            pytest.skip("the openssl CLI is needed to make the TLS certificate the sandbox endpoint is served with")
        mpatch.delenv("AWS_PROFILE", raising=False)
        for k, v in {**aws_env(tmp), **proxy, "HOME": str(tmp), "AWS_ENDPOINT_URL_MTURK": mp.url}.items():
            mpatch.setenv(k, v)
        mpatch.syspath_prepend(str(target))
        package = types.ModuleType("mephisto")
        package.__path__ = [str(target / "mephisto")]
        mpatch.setitem(sys.modules, "mephisto", package)
        mu = importlib.import_module("mephisto.abstractions.providers.mturk.mturk_utils")
        session = boto3.Session(profile_name=PROFILE, region_name="us-east-1")
        sandbox = session.client(service_name="mturk", region_name="us-east-1", endpoint_url=SANDBOX_ENDPOINT)
        live = session.client("mturk")
        yield mu, sandbox, live, mp, page_url, seen
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("mephisto", "omegaconf", "antlr4"):
            del sys.modules[name]


def _task_args(title: str):
    from omegaconf import OmegaConf

    return OmegaConf.create({"task_title": title, "task_description": "Rate how clear a sentence is.",
                             "task_tags": ["rating", "text"], "task_reward": 0.3,
                             "assignment_duration_in_seconds": 600})


def test_credentials_and_balance(meph):
    mu, sandbox, live, *_ = meph
    assert mu.check_aws_credentials(PROFILE) and not mu.check_aws_credentials("no-such-profile")
    assert mu.client_is_sandbox(sandbox) and not mu.client_is_sandbox(live)
    assert mu.get_requester_balance(sandbox) == 10000.0
    assert mu.check_mturk_balance(sandbox, balance_needed=5.0) is True
    assert mu.check_mturk_balance(sandbox, balance_needed=20000.0) is False


def test_qualifications_are_found_on_the_second_run(meph):
    mu, sandbox, _live, mp, *_ = meph
    first = mu.find_or_create_qualification(sandbox, "meph-allowlist", "Workers allowed on our tasks")
    assert first
    assert mu.find_or_create_qualification(sandbox, "meph-allowlist", "Workers allowed on our tasks") == first
    wanted = [{"qualification_name": "meph-blocklist", "comparator": "DoesNotExist", "value": None},
              {"QualificationTypeId": first, "Comparator": "GreaterThanOrEqualTo", "IntegerValue": 3}]
    once = mu.convert_mephisto_qualifications(sandbox, wanted)
    assert mu.convert_mephisto_qualifications(sandbox, wanted) == once  # the sandbox qual is found, not made again
    assert once[1] == {"QualificationTypeId": first, "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [3],
                       "ActionsGuarded": "DiscoverPreviewAndAccept"}
    named = sandbox.list_qualification_types(Query="meph-blocklist_sandbox", MustBeRequestable=False,
                                             MustBeOwnedByCaller=True)["QualificationTypes"]
    assert [q["QualificationTypeId"] for q in named] == [once[0]["QualificationTypeId"]]

    worker = mp.crowd.workers[0].worker_id
    mu.give_worker_qualification(sandbox, worker, first, 5)
    assert sandbox.get_qualification_score(QualificationTypeId=first, WorkerId=worker)["Qualification"][
        "IntegerValue"] == 5
    mu.remove_worker_qualification(sandbox, worker, first)  # Reason=""
    holders = sandbox.list_workers_with_qualification_type(QualificationTypeId=first, Status="Granted")
    assert worker not in {q["WorkerId"] for q in holders["Qualifications"]}

    mu.delete_qualification(sandbox, first)  # as Mephisto's sandbox provider cleans up
    assert mu.find_qualification(sandbox, "meph-allowlist") == (True, None)


def test_hits_are_worked_reviewed_and_paid(meph):
    mu, sandbox, live, mp, page_url, seen = meph
    # live: Mephisto adds its default Locale requirement (US, CA, GB, AU, NZ), a system qualification
    hit_type = mu.create_hit_type(live, _task_args("Rate clarity"), [])
    _link, hit_id, created = mu.create_hit_with_hit_type(live, 600, f"{page_url}?task=7&x=a", hit_type, 2)
    _link, other_id, _ = mu.create_hit_with_hit_type(live, 600, f"{page_url}?task=8", hit_type, 1)
    assert created["HIT"]["HITStatus"] == "Assignable"
    mp.advance(4 * 3600)

    assert mu.get_hit(live, hit_id)["HIT"]["HITStatus"] == "Reviewable"
    assert mu.get_hit(live, "3NOSUCHHIT0000000000000000000") == {}  # logged and skipped, as Mephisto does
    [a1, a2] = sorted(mu.get_assignments_for_hit(live, hit_id), key=lambda a: a["AssignmentId"])
    allowed = {"US", "CA", "GB", "AU", "NZ"}
    assert all(mp.crowd.by_id[a["WorkerId"]].country in allowed for a in (a1, a2))
    assert mu.get_assignment(live, a1["AssignmentId"])["Assignment"]["HITId"] == hit_id
    # the worker saw Mephisto's page with MTurk's parameters appended, and the form's fields came back
    visits = [q for q in seen if q.get("task") == ["7"] and q.get("x") == ["a"]]  # Mephisto wrote &amp;
    assert visits and all({"assignmentId", "hitId", "workerId", "turkSubmitTo"} <= set(q) for q in visits)
    assert "<QuestionIdentifier>clarity</QuestionIdentifier>" in a1["Answer"]
    assert "<QuestionIdentifier>assignmentId</QuestionIdentifier>" not in a1["Answer"]

    mu.approve_work(live, a1["AssignmentId"])
    mu.reject_work(live, a2["AssignmentId"], "Did not answer the question.")
    statuses = {a["AssignmentId"]: a["AssignmentStatus"] for a in mu.get_assignments_for_hit(live, hit_id)}
    assert statuses == {a1["AssignmentId"]: "Approved", a2["AssignmentId"]: "Rejected"}
    mu.approve_assignments_for_hit(live, other_id)
    assert [a["AssignmentStatus"] for a in mu.get_assignments_for_hit(live, other_id)] == ["Approved"]

    before = Decimal(str(mu.get_requester_balance(live)))
    assert mu.pay_bonus(live, a1["WorkerId"], 0.5, a1["AssignmentId"], "Clear reasons.", "meph-bonus-1") is True
    after = Decimal(str(mu.get_requester_balance(live)))
    assert before - after == Decimal("0.60")  # the bonus and MTurk's 20% fee on it
    [paid] = live.list_bonus_payments(AssignmentId=a1["AssignmentId"])["BonusPayments"]
    assert Decimal(paid["BonusAmount"]) == Decimal("0.50")

    assert mu.email_worker(live, a1["WorkerId"], "Thanks", "Thank you for the clear answers.") == (True, "")
    mu.block_worker(live, a2["WorkerId"], "Did not answer the question.")
    assert mu.is_worker_blocked(live, a2["WorkerId"])
    mu.unblock_worker(live, a2["WorkerId"], "Blocked by mistake.")
    assert not mu.is_worker_blocked(live, a2["WorkerId"])


def test_compensation_hit_uses_question_form_2017(meph):
    mu, sandbox, _live, mp, *_ = meph
    hit_type = mu.create_hit_type(sandbox, _task_args("Compensation"), [])
    link, hit_id, response = mu.create_compensation_hit_with_hit_type(sandbox, "server outage", hit_type)
    assert link.startswith("https://workersandbox.mturk.com/mturk/preview?groupId=")
    assert "2017-11-06/QuestionForm.xsd" in response["HIT"]["Question"]
    mp.advance(4 * 3600)
    [a] = mu.get_assignments_for_hit(sandbox, hit_id)
    assert "<QuestionIdentifier>workerid</QuestionIdentifier>" in a["Answer"] and "<FreeText>" in a["Answer"]


def test_outstanding_hits_are_expired_and_disposed(meph):
    mu, sandbox, _live, mp, page_url, _seen = meph
    hit_type = mu.create_hit_type(sandbox, _task_args("Cleanup"), [{
        "qualification_name": "meph-nobody", "comparator": "Exists", "value": None}])  # nobody can take these
    _l, expired_id, _ = mu.create_hit_with_hit_type(sandbox, 600, page_url, hit_type, 1)
    _l, open_id, _ = mu.create_hit_with_hit_type(sandbox, 600, page_url, hit_type, 1)

    outstanding = mu.get_outstanding_hits(sandbox)  # pages with list_hits until an empty page
    assert {expired_id, open_id} <= {h["HITId"] for h in outstanding[hit_type]}

    mu.expire_hit(sandbox, expired_id)  # ExpireAt=2015-01-01: expired at once
    hit = sandbox.get_hit(HITId=expired_id)["HIT"]
    assert hit["HITStatus"] == "Reviewable"
    assert hit["Expiration"] <= mp.clock.now() + timedelta(milliseconds=1)  # the wire rounds to milliseconds

    # deleting the expired one works; the open one cannot be deleted, so it is expired instead
    left = mu.expire_and_dispose_hits(sandbox, [{"HITId": expired_id}, {"HITId": open_id}], quiet=True)
    assert [h["HITId"] for h in left] == [open_id] and isinstance(left[0]["dispose_exception"], ClientError)
    assert sandbox.get_hit(HITId=open_id)["HIT"]["HITStatus"] == "Reviewable"
    assert expired_id not in {h["HITId"] for h in sandbox.list_hits(MaxResults=100)["HITs"]}
    assert mu.expire_and_dispose_hits(sandbox, [{"HITId": open_id}], quiet=True) == []
