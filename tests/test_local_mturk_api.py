"""The local MTurk server as plain boto3 sees it: request validation, errors, tokens, paging,
money. No crowdbridge connector code; the crowd stays idle here (``workers=0``) unless needed."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from botocore.retries import standard
from mturk_helpers import ONE_TRY, client, html_question, mturk_fixture, raw_fixture

from connectors.local import FaultConfig, start_local

XSD_DIR = Path(__file__).resolve().parents[1] / "../shared/data/mturk-xsd"
FORM = (
    '<!DOCTYPE html><html><head><script src="https://assets.crowd.aws/crowd-html-elements.js"></script>'
    '</head><body><crowd-form><section data-cb-item="i0"><div data-cb-input="prompt">Which is better?</div>'
    '<crowd-radio-group data-cb-field="pref">'
    '<crowd-radio-button name="i0__pref__a" value="a">A</crowd-radio-button>'
    '<crowd-radio-button name="i0__pref__b" value="b">B</crowd-radio-button>'
    "</crowd-radio-group></section></crowd-form></body></html>"
)


@pytest.fixture
def mp():
    with start_local("mturk", workers=0, seed=1) as market:
        yield market


mturk, raw = mturk_fixture, raw_fixture


def hit_args(**over: object) -> dict:
    args = dict(
        MaxAssignments=3,
        LifetimeInSeconds=3600,
        AssignmentDurationInSeconds=600,
        Reward="0.25",
        Title="Compare two answers",
        Description="Pick the better answer",
        Question=html_question(FORM),
    )
    args.update(over)
    return args


def error_of(exc: pytest.ExceptionInfo) -> dict:
    return exc.value.response["Error"] | {"TurkErrorCode": exc.value.response.get("TurkErrorCode")}


def test_hit_type_is_reused_for_identical_properties_and_hits_carry_it(mturk):
    props = dict(
        AssignmentDurationInSeconds=600,
        Reward="0.25",
        Title="T",
        Description="D",
        AutoApprovalDelayInSeconds=3600,
        Keywords="rlhf, compare",
    )
    first = mturk.create_hit_type(**props)["HITTypeId"]
    assert mturk.create_hit_type(**props)["HITTypeId"] == first
    assert mturk.create_hit_type(**{**props, "Reward": "0.30"})["HITTypeId"] != first
    hit = mturk.create_hit_with_hit_type(
        HITTypeId=first,
        MaxAssignments=2,
        LifetimeInSeconds=600,
        Question=html_question(FORM),
        RequesterAnnotation="page-7",
    )["HIT"]
    got = mturk.get_hit(HITId=hit["HITId"])["HIT"]
    assert got["HITTypeId"] == first and got["Reward"] == "0.25" and got["HITStatus"] == "Assignable"
    assert got["RequesterAnnotation"] == "page-7" and got["NumberOfAssignmentsAvailable"] == 2
    assert (got["Expiration"] - got["CreationTime"]).total_seconds() == 600


def test_repeated_unique_request_token_answers_hit_already_exists(mp, mturk):
    hit = mturk.create_hit(**hit_args(UniqueRequestToken="page-1"))["HIT"]
    with pytest.raises(ClientError) as exc:
        mturk.create_hit(**hit_args(UniqueRequestToken="page-1"))
    err = error_of(exc)
    assert err["Code"] == "RequestError"
    assert err["TurkErrorCode"] == "AWS.MechanicalTurk.HitAlreadyExists"
    assert hit["HITId"] in err["Message"]
    assert len(mturk.list_hits()["HITs"]) == 1
    mp.advance(25 * 3600)  # tokens are remembered for 24 hours
    assert mturk.create_hit(**hit_args(UniqueRequestToken="page-1"))["HIT"]["HITId"] != hit["HITId"]


def test_more_than_100_hits_are_paged_with_next_token(mturk, raw):
    created = {mturk.create_hit(**hit_args(MaxAssignments=1))["HIT"]["HITId"] for _ in range(130)}
    seen, token, pages = [], None, 0
    while True:
        page = mturk.list_hits(MaxResults=100, **({"NextToken": token} if token else {}))
        seen += [h["HITId"] for h in page["HITs"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    # as MTurk pages: the last non-empty page still carries a NextToken; the page after it is empty
    assert pages == 3 and len(seen) == 130 and set(seen) == created
    with pytest.raises(ClientError) as exc:
        raw.list_hits(MaxResults=101)
    assert error_of(exc)["Code"] == "RequestError"


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"Title": None}, "missing required parameter Title"),
        ({"MaxAssignments": "3"}, "MaxAssignments must be an integer"),
        ({"UniqueRequestToken": "x" * 65}, "UniqueRequestToken must be at most 64"),
        ({"Reward": "0.255"}, "Reward does not match"),
        ({"MaxAssignments": 0}, "MaxAssignments must be between"),
        ({"Title": "t" * 129}, "Title must be at most 128"),
    ],
)
def test_malformed_requests_are_refused_with_request_error(raw, change, fragment):
    args = {k: v for k, v in hit_args(**change).items() if v is not None}
    with pytest.raises(ClientError) as exc:
        raw.create_hit(**args)
    err = error_of(exc)
    assert err["Code"] == "RequestError" and fragment in err["Message"]
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unknown_members_are_refused(mp):
    req = urllib.request.Request(
        mp.url,
        data=json.dumps({"Bogus": 1}).encode(),
        method="POST",
        headers={
            "X-Amz-Target": "MTurkRequesterServiceV20170117.GetAccountBalance",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    body = json.loads(exc.value.read())
    assert exc.value.code == 400 and body["__type"].endswith("#RequestError") and "Bogus" in body["Message"]


@pytest.mark.parametrize(
    "question, fragment",
    [
        ("<HTMLQuestion", "not well-formed"),
        ('<Question xmlns="urn:other"/>', "must be an HTMLQuestion"),
        (html_question(""), "HTMLContent"),
        (html_question(FORM, frame_height=-5), "FrameHeight"),
        (html_question("x" * 70000), "larger than 65535"),
    ],
)
def test_malformed_question_xml_is_refused(raw, question, fragment):
    with pytest.raises(ClientError) as exc:
        raw.create_hit(**hit_args(Question=question))
    assert error_of(exc)["Code"] == "RequestError" and fragment in error_of(exc)["Message"]


@pytest.mark.skipif(not XSD_DIR.is_dir(), reason=f"MTurk XSDs not found at {XSD_DIR}")
def test_question_is_validated_against_the_xsd(raw):
    with pytest.raises(ClientError) as exc:
        raw.create_hit(**hit_args(Question=html_question(FORM, frame_height=None)))  # FrameHeight is required
    assert error_of(exc)["Code"] == "RequestError" and "HTMLQuestion_20111111.xsd" in error_of(exc)["Message"]


def test_throttling_fault_is_what_botocore_calls_throttling():
    with start_local("mturk", workers=0, faults=FaultConfig(throttle_rate=1.0)) as mp:
        with pytest.raises(ClientError) as exc:
            client(mp.url, retries=ONE_TRY).get_account_balance()
        ctx = standard.RetryContext(attempt_number=1, parsed_response=exc.value.response)
        assert standard.ThrottledRetryableChecker().is_retryable(ctx)
        assert mp.calls["GetAccountBalance"] == 1
        with pytest.raises(ClientError):  # a retrying client really retries it
            client(mp.url, retries={"total_max_attempts": 2, "mode": "standard"}).get_account_balance()
        assert mp.calls["GetAccountBalance"] == 3


def test_injected_server_error_is_a_service_fault():
    with start_local("mturk", workers=0, faults=FaultConfig(error_rate=1.0)) as mp:
        with pytest.raises(ClientError) as exc:
            client(mp.url, retries=ONE_TRY).get_account_balance()
        assert exc.value.response["Error"]["Code"] == "ServiceFault"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_extending_below_ten_assignments_to_ten_or_more_is_refused(mturk):
    hit_id = mturk.create_hit(**hit_args(MaxAssignments=5))["HIT"]["HITId"]
    with pytest.raises(ClientError) as exc:
        mturk.create_additional_assignments_for_hit(HITId=hit_id, NumberOfAdditionalAssignments=5)
    assert error_of(exc)["Code"] == "RequestError"
    mturk.create_additional_assignments_for_hit(
        HITId=hit_id, NumberOfAdditionalAssignments=4, UniqueRequestToken="ext-1"
    )
    assert mturk.get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 9
    with pytest.raises(ClientError):
        mturk.create_additional_assignments_for_hit(
            HITId=hit_id, NumberOfAdditionalAssignments=1, UniqueRequestToken="ext-1"
        )
    assert mturk.get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 9


def test_creating_more_than_the_balance_covers_is_refused():
    with start_local("mturk", workers=0, balance=Decimal("1.00")) as mp:
        mturk = client(mp.url)
        with pytest.raises(ClientError) as exc:
            mturk.create_hit(**hit_args(MaxAssignments=4, Reward="0.25"))  # 4 x (0.25 + 0.05) = 1.20
        assert error_of(exc)["TurkErrorCode"] == "AWS.MechanicalTurk.InsufficientFunds"
        mturk.create_hit(**hit_args(MaxAssignments=3, Reward="0.25"))
        assert mp.balance() == Decimal("1.00")  # nothing is charged before approval


def test_worker_blocks_and_qualification_types_round_trip(mturk):
    mturk.create_worker_block(WorkerId="AWORKER1", Reason="spam")
    assert [b["WorkerId"] for b in mturk.list_worker_blocks()["WorkerBlocks"]] == ["AWORKER1"]
    mturk.delete_worker_block(WorkerId="AWORKER1", Reason="appeal")
    assert mturk.list_worker_blocks()["WorkerBlocks"] == []
    qt = mturk.create_qualification_type(Name="pool", Description="d", QualificationTypeStatus="Active")
    qt_id = qt["QualificationType"]["QualificationTypeId"]
    with pytest.raises(ClientError):
        mturk.create_qualification_type(Name="pool", Description="again", QualificationTypeStatus="Active")
    mturk.associate_qualification_with_worker(QualificationTypeId=qt_id, WorkerId="AWORKER2", IntegerValue=7)
    assert (
        mturk.get_qualification_score(QualificationTypeId=qt_id, WorkerId="AWORKER2")["Qualification"][
            "IntegerValue"
        ]
        == 7
    )
    mturk.disassociate_qualification_from_worker(QualificationTypeId=qt_id, WorkerId="AWORKER2", Reason="r")
    granted = mturk.list_workers_with_qualification_type(QualificationTypeId=qt_id, Status="Granted")
    assert granted["Qualifications"] == []
    assert (
        mturk.notify_workers(Subject="s", MessageText="m", WorkerIds=["AWORKER2"])[
            "NotifyWorkersFailureStatuses"
        ]
        == []
    )
