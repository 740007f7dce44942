"""The local MTurk server does what MTurk does where third-party clients (Mephisto, psiTurk, amti)
found it did not: requestable qualifications, refusals, system qualifications, paging, the rest
of the model's operations, fresh ids, and HIT expiry and assignment times (issue 18)."""

from __future__ import annotations

import json
import queue
import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import boto3
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from mturk_helpers import QUESTION, client, mturk_fixture, raw_fixture

from connectors.local import LocalMarketplace, start_local
from connectors.local.clock import SimClock
from connectors.local.crowd import Crowd, Offer
from connectors.local.mturk import Server

MASTERS_SANDBOX, MASTERS = "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6", "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"
LOCALE, APPROVAL_RATE, NUMBER_APPROVED, ADULT = (
    "00000000000000000071", "000000000000000000L0", "00000000000000000040", "00000000000000000060")
PAST = datetime(2015, 1, 1, tzinfo=UTC)  # what Mephisto's expire_hit sends


def hit_args(**over: object) -> dict:
    args = dict(MaxAssignments=3, LifetimeInSeconds=3600, AssignmentDurationInSeconds=600, Reward="0.20",
                Title="Pick one", Description="Pick the better one", Question=QUESTION)
    args.update(over)
    return args


def workers_of(mturk, hit_id: str) -> set[str]:
    got = mturk.list_assignments_for_hit(HITId=hit_id, MaxResults=100)["Assignments"]
    return {a["WorkerId"] for a in got}


@pytest.fixture
def mp():
    with start_local("mturk", workers=10, seed=1) as market:
        yield market


mturk, raw = mturk_fixture, raw_fixture


# --------------------------------------------------------------------------- defect 4: requestable
def test_requester_types_are_requestable_and_found_as_mephisto_looks_for_them(mturk):
    def find_or_create(name: str) -> str:  # Mephisto's mturk_utils.find_or_create_qualification
        for owned in (True, False):
            got = mturk.list_qualification_types(Query=name, MustBeRequestable=True, MustBeOwnedByCaller=owned)
            for qt in got["QualificationTypes"]:
                if qt["Name"] == name:
                    return qt["QualificationTypeId"]
        made = mturk.create_qualification_type(Name=name, Description="d", QualificationTypeStatus="Active")
        return made["QualificationType"]["QualificationTypeId"]

    first = find_or_create("mephisto_allowlist")
    assert find_or_create("mephisto_allowlist") == first  # the second run finds it instead of failing
    assert mturk.get_qualification_type(QualificationTypeId=first)["QualificationType"]["IsRequestable"] is True
    mturk.update_qualification_type(QualificationTypeId=first, QualificationTypeStatus="Inactive")
    listed = mturk.list_qualification_types(MustBeRequestable=True, MustBeOwnedByCaller=True)["QualificationTypes"]
    assert first not in {t["QualificationTypeId"] for t in listed}  # an inactive type cannot be requested


def test_system_types_are_listed_only_when_not_owned_and_not_requestable(mturk):
    mturk.create_qualification_type(Name="mine", Description="d", QualificationTypeStatus="Active")

    def ids(**flags: bool) -> set[str]:
        return {t["QualificationTypeId"] for t in mturk.list_qualification_types(MaxResults=100, **flags)[
            "QualificationTypes"]}

    assert MASTERS in ids(MustBeRequestable=False) and MASTERS in ids(MustBeRequestable=False,
                                                                       MustBeOwnedByCaller=False)
    assert MASTERS not in ids(MustBeRequestable=False, MustBeOwnedByCaller=True)
    assert MASTERS not in ids(MustBeRequestable=True)
    assert len(ids(MustBeRequestable=True, MustBeOwnedByCaller=True)) == 1


# --------------------------------------------------------------------------- defect 5: refusals
def test_only_what_mturk_refuses_is_refused(mp, mturk, raw):
    hit_id = mturk.create_hit(**hit_args())["HIT"]["HITId"]
    mp.advance(3 * 3600)
    got = mturk.list_assignments_for_hit(HITId=hit_id)["Assignments"]
    assert len(got) == 3
    mturk.reject_assignment(AssignmentId=got[0]["AssignmentId"], RequesterFeedback="")  # psiTurk's reject
    assert mturk.get_assignment(AssignmentId=got[0]["AssignmentId"])["Assignment"]["AssignmentStatus"] == "Rejected"
    mturk.send_bonus(WorkerId=got[1]["WorkerId"], AssignmentId=got[1]["AssignmentId"], BonusAmount="0.10", Reason="")
    mturk.create_worker_block(WorkerId=got[1]["WorkerId"], Reason="")
    mturk.create_hit_type(**{k: v for k, v in hit_args(Title="").items() if k not in (
        "MaxAssignments", "LifetimeInSeconds", "Question")})
    for feedback in ("x" * 1025, "bell\x07"):  # MTurk's documented limits on RequesterFeedback
        with pytest.raises(ClientError) as exc:
            mturk.approve_assignment(AssignmentId=got[2]["AssignmentId"], RequesterFeedback=feedback)
        assert exc.value.response["Error"]["Code"] == "RequestError"
    with pytest.raises(ClientError):  # the model's ranges and lengths, checked by the server itself
        raw.list_hits(MaxResults=0)
    with pytest.raises(ClientError):
        raw.create_worker_block(WorkerId="", Reason="r")


# --------------------------------------------------------------------------- defect 6: system qualifications
def test_system_qualification_types_are_known(mturk):
    for qt_id in (MASTERS_SANDBOX, MASTERS, LOCALE, APPROVAL_RATE, NUMBER_APPROVED, ADULT):
        qt = mturk.get_qualification_type(QualificationTypeId=qt_id)["QualificationType"]
        assert qt["QualificationTypeId"] == qt_id and qt["QualificationTypeStatus"] == "Active"
        assert qt["IsRequestable"] is False


def test_masters_only_masters_work_and_pay_the_masters_fee(mp, mturk):
    masters = {w.worker_id for w in mp.crowd.workers if w.master}
    assert masters and len(masters) < len(mp.crowd.workers)
    req = [{"QualificationTypeId": MASTERS, "Comparator": "Exists", "ActionsGuarded": "DiscoverPreviewAndAccept"}]
    hit_id = mturk.create_hit(**hit_args(MaxAssignments=5, Reward="1.00", QualificationRequirements=req))["HIT"][
        "HITId"]
    mp.advance(3 * 3600)
    assert workers_of(mturk, hit_id) == masters
    before = mp.balance()
    mturk.approve_assignment(AssignmentId=mturk.list_assignments_for_hit(HITId=hit_id)["Assignments"][0][
        "AssignmentId"])
    assert before - mp.balance() == Decimal("1.25")  # 20% commission + 5% for Masters


def test_locale_selects_by_country_and_subdivision(mp, mturk):
    ny = {w.worker_id for w in mp.crowd.workers if (w.country, w.subdivision) in (("US", "NY"), ("US", "GA"))}
    abroad = {w.worker_id for w in mp.crowd.workers if w.country != "US"}
    assert ny and abroad
    in_states = [{"QualificationTypeId": LOCALE, "Comparator": "In",
                  "LocaleValues": [{"Country": "US", "Subdivision": "NY"}, {"Country": "US", "Subdivision": "GA"}]}]
    not_us = [{"QualificationTypeId": LOCALE, "Comparator": "NotIn", "LocaleValues": [{"Country": "US"}]}]
    first = mturk.create_hit(**hit_args(MaxAssignments=10, QualificationRequirements=in_states))["HIT"]["HITId"]
    second = mturk.create_hit(**hit_args(MaxAssignments=10, QualificationRequirements=not_us))["HIT"]["HITId"]
    mp.advance(4 * 3600)
    assert workers_of(mturk, first) == ny and workers_of(mturk, second) == abroad


def test_adult_and_approval_history_select_workers(mp, mturk):
    def rate(w):
        decided = w.prior_approved + w.prior_rejected
        return 100 * w.prior_approved // decided if decided else 100

    adults = {w.worker_id for w in mp.crowd.workers if w.adult}
    good = {w.worker_id for w in mp.crowd.workers if rate(w) >= 97 and w.prior_approved >= 100}
    assert adults and good and len(adults) < 10 and len(good) < 10
    adult_hit = mturk.create_hit(**hit_args(MaxAssignments=10, QualificationRequirements=[
        {"QualificationTypeId": ADULT, "Comparator": "EqualTo", "IntegerValues": [1]}]))["HIT"]["HITId"]
    good_hit = mturk.create_hit(**hit_args(MaxAssignments=10, QualificationRequirements=[
        {"QualificationTypeId": APPROVAL_RATE, "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [97]},
        {"QualificationTypeId": NUMBER_APPROVED, "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [100]}]))[
        "HIT"]["HITId"]
    mp.advance(4 * 3600)
    assert workers_of(mturk, adult_hit) == adults and workers_of(mturk, good_hit) == good


def test_approval_rate_follows_decisions_made_here(mp, mturk):
    newcomer = next(w for w in mp.crowd.workers if w.prior_approved == 0)
    first = mturk.create_hit(**hit_args(MaxAssignments=10))["HIT"]["HITId"]
    mp.advance(3 * 3600)
    for a in mturk.list_assignments_for_hit(HITId=first, MaxResults=100)["Assignments"]:
        if a["WorkerId"] == newcomer.worker_id:
            mturk.reject_assignment(AssignmentId=a["AssignmentId"], RequesterFeedback="wrong")
    req = [{"QualificationTypeId": APPROVAL_RATE, "Comparator": "GreaterThan", "IntegerValues": [50]}]
    second = mturk.create_hit(**hit_args(MaxAssignments=10, QualificationRequirements=req))["HIT"]["HITId"]
    mp.advance(3 * 3600)
    assert newcomer.worker_id in workers_of(mturk, first) and newcomer.worker_id not in workers_of(mturk, second)


def test_discover_guard_hides_the_hit_and_its_test(mp, mturk):
    test = (
        '<QuestionForm xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2017-11-06/'
        'QuestionForm.xsd"><Question><QuestionIdentifier>q1</QuestionIdentifier><QuestionContent><Text>2+2?'
        "</Text></QuestionContent><AnswerSpecification><SelectionAnswer><Selections><Selection>"
        "<SelectionIdentifier>four</SelectionIdentifier><Text>4</Text></Selection><Selection>"
        "<SelectionIdentifier>five</SelectionIdentifier><Text>5</Text></Selection></Selections>"
        "</SelectionAnswer></AnswerSpecification></Question></QuestionForm>"
    )
    key = (
        '<AnswerKey xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/'
        'AnswerKey.xsd"><Question><QuestionIdentifier>q1</QuestionIdentifier><AnswerOption><SelectionIdentifier>'
        "four</SelectionIdentifier><AnswerScore>100</AnswerScore></AnswerOption></Question></AnswerKey>"
    )
    ids = []
    for guard in ("Accept", "DiscoverPreviewAndAccept"):
        qt = mturk.create_qualification_type(Name=f"test {guard}", Description="d", QualificationTypeStatus="Active",
                                             Test=test, AnswerKey=key, TestDurationInSeconds=600)
        ids.append(qt["QualificationType"]["QualificationTypeId"])
        mturk.create_hit(**hit_args(QualificationRequirements=[{
            "QualificationTypeId": ids[-1], "Comparator": "Exists", "ActionsGuarded": guard}]))
    mp.advance(3 * 3600)
    took = [len(mturk.list_workers_with_qualification_type(QualificationTypeId=i)["Qualifications"]) for i in ids]
    assert took[0] > 0 and took[1] == 0


# --------------------------------------------------------------------------- defect 7: paging
@pytest.fixture
def busy(mp, mturk):
    """Something to list for every paginated operation."""
    asked = mturk.create_qualification_type(Name="ask", Description="d", QualificationTypeStatus="Active")
    asked_id = asked["QualificationType"]["QualificationTypeId"]
    hit = mturk.create_hit(**hit_args(MaxAssignments=5, LifetimeInSeconds=600))["HIT"]
    mturk.create_hit(**hit_args(QualificationRequirements=[{"QualificationTypeId": asked_id, "Comparator": "Exists"}]))
    mp.advance(3 * 3600)
    done = mturk.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
    for a in done[:3]:
        mturk.send_bonus(WorkerId=a["WorkerId"], AssignmentId=a["AssignmentId"], BonusAmount="0.05", Reason="r")
        mturk.associate_qualification_with_worker(QualificationTypeId=asked_id, WorkerId=a["WorkerId"])
        mturk.create_worker_block(WorkerId=a["WorkerId"], Reason="r")
    return {"HITId": hit["HITId"], "QualificationTypeId": asked_id, "MustBeRequestable": False}


def paginated() -> list[str]:
    return sorted(boto3.session.Session()._session.get_paginator_model("mturk")._paginator_config)


@pytest.mark.parametrize("operation", paginated())
def test_every_listing_pages_as_mturk_does(mturk, busy, operation):
    model = mturk.meta.service_model.operation_model(operation).input_shape
    params = {k: v for k, v in busy.items() if k in model.members}
    call = getattr(mturk, xform_name(operation))
    key = boto3.session.Session()._session.get_paginator_model("mturk").get_paginator(operation)["result_key"]
    first = call(MaxResults=100, **params)
    assert first[key] and first["NextToken"]  # the last non-empty page still carries a token
    after = call(MaxResults=100, NextToken=first["NextToken"], **params)
    assert after[key] == [] and "NextToken" not in after
    by_one = [x for page in mturk.get_paginator(xform_name(operation)).paginate(
        PaginationConfig={"PageSize": 1}, **params) for x in page[key]]
    assert by_one == first[key]


def test_mephisto_get_outstanding_hits_loop_ends(mturk):
    made = {mturk.create_hit(**hit_args())["HIT"]["HITId"] for _ in range(3)}
    new_hits = mturk.list_hits(MaxResults=2)
    all_hits = new_hits["HITs"]
    while len(new_hits["HITs"]) > 0:
        new_hits = mturk.list_hits(MaxResults=2, NextToken=new_hits["NextToken"])
        all_hits += new_hits["HITs"]
    assert {h["HITId"] for h in all_hits} == made


# --------------------------------------------------------------------------- defect 8: the rest of the model
def test_qualification_requests_are_made_and_decided(mp, mturk):
    qt_id = mturk.create_qualification_type(Name="vetted", Description="d", QualificationTypeStatus="Active")[
        "QualificationType"]["QualificationTypeId"]
    hit_id = mturk.create_hit(**hit_args(MaxAssignments=10, LifetimeInSeconds=86400, QualificationRequirements=[
        {"QualificationTypeId": qt_id, "Comparator": "Exists"}]))["HIT"]["HITId"]
    mp.advance(3600)
    requests = mturk.list_qualification_requests(QualificationTypeId=qt_id, MaxResults=100)["QualificationRequests"]
    assert {r["WorkerId"] for r in requests} == {w.worker_id for w in mp.crowd.workers}
    assert workers_of(mturk, hit_id) == set()
    accepted, rejected = requests[0], requests[1]
    mturk.accept_qualification_request(QualificationRequestId=accepted["QualificationRequestId"], IntegerValue=4)
    mturk.reject_qualification_request(QualificationRequestId=rejected["QualificationRequestId"], Reason="no")
    with pytest.raises(ClientError):  # a decided request is gone
        mturk.accept_qualification_request(QualificationRequestId=rejected["QualificationRequestId"])
    mp.advance(3 * 3600)
    score = mturk.get_qualification_score(QualificationTypeId=qt_id, WorkerId=accepted["WorkerId"])["Qualification"]
    assert score["IntegerValue"] == 4 and workers_of(mturk, hit_id) == {accepted["WorkerId"]}
    left = mturk.list_qualification_requests(QualificationTypeId=qt_id, MaxResults=100)["QualificationRequests"]
    assert rejected["WorkerId"] not in {r["WorkerId"] for r in left}  # no RetryDelay: no second request
    assert [h["HITId"] for h in mturk.list_hits_for_qualification_type(QualificationTypeId=qt_id)["HITs"]] == [hit_id]


def test_delete_qualification_type_takes_its_hit_types_and_frees_the_name(mp, mturk):
    qt_id = mturk.create_qualification_type(Name="gone", Description="d", QualificationTypeStatus="Active")[
        "QualificationType"]["QualificationTypeId"]
    hit = mturk.create_hit(**hit_args(LifetimeInSeconds=60, QualificationRequirements=[
        {"QualificationTypeId": qt_id, "Comparator": "DoesNotExist"}]))["HIT"]
    mturk.delete_qualification_type(QualificationTypeId=qt_id)
    for call in (lambda: mturk.get_qualification_type(QualificationTypeId=qt_id),
                 lambda: mturk.create_hit_with_hit_type(HITTypeId=hit["HITTypeId"], LifetimeInSeconds=60,
                                                        Question=QUESTION)):
        with pytest.raises(ClientError):
            call()
    with pytest.raises(ClientError):  # the name stays taken while a HIT uses the type
        mturk.create_qualification_type(Name="gone", Description="d", QualificationTypeStatus="Active")
    mp.advance(3600)
    for a in mturk.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]:
        mturk.approve_assignment(AssignmentId=a["AssignmentId"])
    mturk.delete_hit(HITId=hit["HITId"])
    mturk.create_qualification_type(Name="gone", Description="d", QualificationTypeStatus="Active")


def test_update_hit_type_of_hit(mturk):
    hit = mturk.create_hit(**hit_args())["HIT"]
    other = mturk.create_hit_type(Title="Better pay", Description="d", Reward="0.50", AssignmentDurationInSeconds=300)
    mturk.update_hit_type_of_hit(HITId=hit["HITId"], HITTypeId=other["HITTypeId"])
    got = mturk.get_hit(HITId=hit["HITId"])["HIT"]
    assert (got["HITTypeId"], got["Title"], got["Reward"]) == (other["HITTypeId"], "Better pay", "0.50")


@pytest.fixture
def receiver():
    """A local HTTP endpoint standing in for an SQS queue: yields (url, queue of decoded messages)."""
    got: queue.Queue = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            got.put(json.loads(form["MessageBody"][0]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/000000000000/mturk-events", got
    server.shutdown()


def test_notifications_reach_a_local_queue(mp, mturk, receiver):
    url, got = receiver
    spec = {"Destination": url, "Transport": "SQS", "Version": "2014-08-15", "EventTypes": ["Ping"]}
    mturk.send_test_event_notification(Notification=spec, TestEventType="Ping")
    assert got.get(timeout=10)["Events"][0]["EventType"] == "Ping"
    hit = mturk.create_hit(**hit_args(MaxAssignments=1))["HIT"]
    with pytest.raises(ClientError):  # Ping is for SendTestEventNotification only
        mturk.update_notification_settings(HITTypeId=hit["HITTypeId"], Notification=spec)
    spec["EventTypes"] = ["AssignmentSubmitted", "HITReviewable"]
    mturk.update_notification_settings(HITTypeId=hit["HITTypeId"], Notification=spec, Active=True)
    mp.advance(3600)
    events = [got.get(timeout=10)["Events"][0] for _ in range(2)]
    assert [e["EventType"] for e in events] == ["AssignmentSubmitted", "HITReviewable"]
    assert {e["HITId"] for e in events} == {hit["HITId"]} and events[0]["AssignmentId"]
    mp.advance(2 * 3600)  # the HIT expires: it was Reviewable already, so no second HITReviewable
    mturk.send_test_event_notification(Notification={**spec, "EventTypes": ["Ping"]}, TestEventType="Ping")
    assert got.get(timeout=10)["Events"][0]["EventType"] == "Ping"  # one queue: nothing came in between


# --------------------------------------------------------------------------- defect 12: ids
def market(id_seed: int | None, workers: int = 4) -> LocalMarketplace:
    clock, crowd = SimClock(), Crowd(workers=workers, seed=9)
    server = Server(clock=clock, crowd=crowd, id_seed=id_seed)
    server.start()
    return LocalMarketplace("mturk", server, crowd, clock, seed=9)


def test_ids_are_fresh_per_start_unless_seeded():
    def run(id_seed: int | None) -> tuple[list[str], list[tuple]]:
        with market(id_seed) as mp:
            mturk = client(mp.url)
            ids = [mturk.create_qualification_type(Name="q", Description="d", QualificationTypeStatus="Active")[
                "QualificationType"]["QualificationTypeId"]]
            hits = [mturk.create_hit(**hit_args())["HIT"] for _ in range(3)]
            ids += [h["HITId"] for h in hits] + [hits[0]["HITTypeId"]]
            mp.advance(3 * 3600)
            work = [(hits.index(h), a["WorkerId"], a["Answer"], (a["AcceptTime"] - h["CreationTime"]).total_seconds())
                    for h in hits for a in mturk.list_assignments_for_hit(HITId=h["HITId"])["Assignments"]]
            return ids, work

    def same(one: list[tuple], other: list[tuple]) -> bool:  # times as far as the wire's milliseconds go
        return [w[:3] for w in one] == [w[:3] for w in other] and all(
            abs(a[3] - b[3]) <= 0.002 for a, b in zip(one, other, strict=True))

    fresh = [run(None) for _ in range(2)]
    seeded = [run(7) for _ in range(2)]
    assert not set(fresh[0][0]) & set(fresh[1][0])
    assert all(len(i) == 30 and i.isalnum() and i.isupper() for i in fresh[0][0])
    assert seeded[0][0] == seeded[1][0]
    assert fresh[0][1] and same(fresh[0][1], fresh[1][1]) and same(fresh[0][1], seeded[0][1])  # ids unseen


# --------------------------------------------------------------------------- defect 1: expiry and times
@pytest.mark.parametrize("expire_at", ["wall-clock now", "2015"])
def test_expire_at_now_or_in_the_past_expires_at_once(mp, mturk, expire_at):
    hit_id = mturk.create_hit(**hit_args())["HIT"]["HITId"]
    when = datetime.now(UTC) if expire_at == "wall-clock now" else PAST
    mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=when)
    hit = mturk.get_hit(HITId=hit_id)["HIT"]
    assert hit["HITStatus"] == "Reviewable" and hit["Expiration"] <= mp.clock.now() + timedelta(milliseconds=1)
    mp.advance(3600)
    assert workers_of(mturk, hit_id) == set()


def test_expired_hit_looks_expired_to_a_wall_clock_client_while_simulated_time_runs_ahead(mp, mturk):
    mp.advance(2 * 3600)  # simulated time is now hours ahead of this machine's clock
    hit_id = mturk.create_hit(**hit_args())["HIT"]["HITId"]
    mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=datetime.now(UTC) - timedelta(days=30))  # psiTurk
    hit = mturk.get_hit(HITId=hit_id)["HIT"]
    assert hit["HITStatus"] == "Reviewable" and datetime.now(UTC) >= hit["Expiration"]  # psiTurk's is_expired


def test_expire_at_later_sets_the_expiration(mp, mturk):
    hit_id = mturk.create_hit(**hit_args(LifetimeInSeconds=600))["HIT"]["HITId"]
    later = (mp.clock.now() + timedelta(days=2)).replace(microsecond=0)
    mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=later)
    assert mturk.get_hit(HITId=hit_id)["HIT"]["Expiration"] == later


def test_accept_and_submit_times_never_precede_what_came_before(mp, mturk):
    hit = mturk.create_hit(**hit_args(MaxAssignments=1))["HIT"]
    worker = mp.crowd.workers[0]
    early = hit["CreationTime"] - timedelta(seconds=30)  # the runner's scheduled time, from before the HIT
    job = mp.server.accept(worker, Offer(hit["HITId"]), early)
    answers = [mp.crowd.answer(t, worker, random.Random(0)) for t in job.tasks]
    mp.server.submit(worker, job, answers, early + timedelta(seconds=5))
    a = mturk.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"][0]
    assert hit["CreationTime"] <= a["AcceptTime"] <= a["SubmitTime"]


# --------------------------------------------------------------------------- findings board: HIT counts
def test_completed_counts_approved_or_rejected_only(mp, mturk):
    hit_id = mturk.create_hit(**hit_args(MaxAssignments=3))["HIT"]["HITId"]
    mp.advance(3 * 3600)
    hit = mturk.get_hit(HITId=hit_id)["HIT"]
    counts = [hit[f"NumberOfAssignments{k}"] for k in ("Pending", "Available", "Completed")]
    assert counts == [0, 0, 0]  # three submitted, none decided: "approved or rejected" is what completed means
    a = mturk.list_assignments_for_hit(HITId=hit_id)["Assignments"][0]
    mturk.approve_assignment(AssignmentId=a["AssignmentId"])
    assert mturk.get_hit(HITId=hit_id)["HIT"]["NumberOfAssignmentsCompleted"] == 1
