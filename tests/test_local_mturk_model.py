"""Every operation of botocore's ``mturk`` service model is served by the local server.

One table holds valid arguments for each operation; the test walks the model botocore loads, so a
model with an operation the table lacks fails here, and each call goes through plain boto3 (its
own parameter validation and response parsing included).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from mturk_helpers import QUESTION, client

from connectors.local import start_local

TYPE = dict(Title="Pick one", Description="Pick the better", Reward="0.10", AssignmentDurationInSeconds=600)
SPEC = {"Destination": "someone@example.com", "Transport": "Email", "Version": "2006-05-05",
        "EventTypes": ["AssignmentSubmitted"]}

Ctx = SimpleNamespace
ARGS: dict[str, Callable[[Ctx], dict[str, Any]]] = {
    "AcceptQualificationRequest": lambda c: {"QualificationRequestId": c.requests[0], "IntegerValue": 3},
    "ApproveAssignment": lambda c: {"AssignmentId": c.assignments[0]["AssignmentId"], "RequesterFeedback": "ok"},
    "AssociateQualificationWithWorker": lambda c: {
        "QualificationTypeId": c.qt, "WorkerId": c.worker, "IntegerValue": 5, "SendNotification": False},
    "CreateAdditionalAssignmentsForHIT": lambda c: {"HITId": c.hit, "NumberOfAdditionalAssignments": 1},
    "CreateHIT": lambda c: {**TYPE, "LifetimeInSeconds": 3600, "Question": QUESTION, "MaxAssignments": 2},
    "CreateHITType": lambda c: {**TYPE, "Keywords": "fresh"},
    "CreateHITWithHITType": lambda c: {"HITTypeId": c.hit_type, "LifetimeInSeconds": 3600, "Question": QUESTION},
    "CreateQualificationType": lambda c: {"Name": "fresh", "Description": "d", "QualificationTypeStatus": "Active"},
    "CreateWorkerBlock": lambda c: {"WorkerId": c.worker, "Reason": ""},
    "DeleteHIT": lambda c: {"HITId": c.expired_hits[0]},
    "DeleteQualificationType": lambda c: {"QualificationTypeId": c.doomed_qt},
    "DeleteWorkerBlock": lambda c: {"WorkerId": c.worker, "Reason": "ok"},
    "DisassociateQualificationFromWorker": lambda c: {
        "QualificationTypeId": c.qt, "WorkerId": c.worker, "Reason": "no longer"},
    "GetAccountBalance": lambda c: {},
    "GetAssignment": lambda c: {"AssignmentId": c.assignments[0]["AssignmentId"]},
    "GetFileUploadURL": lambda c: {"AssignmentId": c.assignments[0]["AssignmentId"], "QuestionIdentifier": "a"},
    "GetHIT": lambda c: {"HITId": c.hit},
    "GetQualificationScore": lambda c: {"QualificationTypeId": c.qt, "WorkerId": c.worker},
    "GetQualificationType": lambda c: {"QualificationTypeId": "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"},
    "ListAssignmentsForHIT": lambda c: {"HITId": c.hit, "AssignmentStatuses": ["Submitted", "Approved"]},
    "ListBonusPayments": lambda c: {"HITId": c.hit, "MaxResults": 10},
    "ListHITs": lambda c: {"MaxResults": 5},
    "ListHITsForQualificationType": lambda c: {"QualificationTypeId": c.requestable_qt},
    "ListQualificationRequests": lambda c: {"QualificationTypeId": c.requestable_qt},
    "ListQualificationTypes": lambda c: {"MustBeRequestable": True, "MustBeOwnedByCaller": True},
    "ListReviewPolicyResultsForHIT": lambda c: {"HITId": c.hit, "PolicyLevels": ["Assignment", "HIT"],
                                                "RetrieveActions": True, "RetrieveResults": True, "MaxResults": 10},
    "ListReviewableHITs": lambda c: {"Status": "Reviewable"},
    "ListWorkerBlocks": lambda c: {},
    "ListWorkersWithQualificationType": lambda c: {"QualificationTypeId": c.qt, "Status": "Granted"},
    "NotifyWorkers": lambda c: {"Subject": "Hello", "MessageText": "Thanks", "WorkerIds": [c.worker]},
    "RejectAssignment": lambda c: {"AssignmentId": c.assignments[1]["AssignmentId"], "RequesterFeedback": ""},
    "RejectQualificationRequest": lambda c: {"QualificationRequestId": c.requests[1], "Reason": "not yet"},
    "SendBonus": lambda c: {"WorkerId": c.assignments[2]["WorkerId"], "AssignmentId": c.assignments[2]["AssignmentId"],
                            "BonusAmount": "0.50", "Reason": ""},
    "SendTestEventNotification": lambda c: {"Notification": {**SPEC, "EventTypes": ["Ping"]}, "TestEventType": "Ping"},
    "UpdateExpirationForHIT": lambda c: {"HITId": c.hit, "ExpireAt": c.now + timedelta(days=2)},
    "UpdateHITReviewStatus": lambda c: {"HITId": c.expired_hits[1], "Revert": False},
    "UpdateHITTypeOfHIT": lambda c: {"HITId": c.hit, "HITTypeId": c.hit_type},
    "UpdateNotificationSettings": lambda c: {"HITTypeId": c.hit_type, "Notification": SPEC, "Active": True},
    "UpdateQualificationType": lambda c: {"QualificationTypeId": c.qt, "Description": "updated"},
}
# served, with the service's answer for these arguments (no assignment here has a file upload)
EXPECTED_ERRORS = {"GetFileUploadURL": "is not a FileUploadAnswer"}


@pytest.fixture(scope="module")
def ctx():
    with start_local("mturk", workers=6, seed=4) as mp:
        mturk = client(mp.url)
        qt = mturk.create_qualification_type(Name="score", Description="d", QualificationTypeStatus="Active")
        requestable = mturk.create_qualification_type(Name="ask me", Description="d", QualificationTypeStatus="Active")
        doomed = mturk.create_qualification_type(Name="doomed", Description="d", QualificationTypeStatus="Active")
        hit = mturk.create_hit(**TYPE, LifetimeInSeconds=7 * 86400, Question=QUESTION, MaxAssignments=4)["HIT"]
        gated = {"QualificationTypeId": requestable["QualificationType"]["QualificationTypeId"], "Comparator": "Exists"}
        mturk.create_hit(**TYPE, LifetimeInSeconds=7 * 86400, Question=QUESTION, QualificationRequirements=[gated])
        expired = [mturk.create_hit(**TYPE, LifetimeInSeconds=60, Question=QUESTION)["HIT"]["HITId"] for _ in range(2)]
        for hit_id in expired:
            mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=datetime(2015, 1, 1, tzinfo=UTC))
        mp.advance(3 * 3600)
        worker = mp.crowd.workers[0].worker_id
        mturk.associate_qualification_with_worker(
            QualificationTypeId=qt["QualificationType"]["QualificationTypeId"], WorkerId=worker, IntegerValue=2)
        requests = mturk.list_qualification_requests()["QualificationRequests"]
        assignments = mturk.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
        assert len(requests) >= 2 and len(assignments) >= 3, "the crowd did not work as the table needs"
        yield mturk, mp, Ctx(
            qt=qt["QualificationType"]["QualificationTypeId"],
            requestable_qt=gated["QualificationTypeId"],
            doomed_qt=doomed["QualificationType"]["QualificationTypeId"],
            hit=hit["HITId"],
            hit_type=hit["HITTypeId"],
            expired_hits=expired,
            worker=worker,
            requests=[r["QualificationRequestId"] for r in requests],
            assignments=assignments,
            now=mp.clock.now(),
        )


def test_the_table_covers_every_operation_of_the_model():
    model = boto3.session.Session()._session.get_service_model("mturk")
    assert sorted(model.operation_names) == sorted(ARGS)
    assert client("http://127.0.0.1:1").meta.service_model.operation_names == model.operation_names


@pytest.mark.parametrize("operation", sorted(ARGS))
def test_every_operation_is_served(ctx, operation):
    mturk, mp, c = ctx
    call = getattr(mturk, xform_name(operation))
    if operation in EXPECTED_ERRORS:
        with pytest.raises(ClientError) as exc:
            call(**ARGS[operation](c))
        assert exc.value.response["Error"]["Code"] == "RequestError"
        assert EXPECTED_ERRORS[operation] in exc.value.response["Error"]["Message"]
        return
    answer = call(**ARGS[operation](c))
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert mp.calls[operation] >= 1
