"""`crowd local serve --provider mturk` as a user runs it, driven by plain boto3 only.

This is issue 2's "done when" walked through end to end against the separately started server
(the in-process tests in test_local_mturk_*.py cover each rule in depth).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from engine_helpers import served as serve_local
from mturk_helpers import ONE_TRY, client, wait_until

XSD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mturk-xsd"
HTML = """<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd">
<HTMLContent><![CDATA[<!DOCTYPE html><html><head><meta charset="utf-8">
<script src="https://assets.crowd.aws/crowd-html-elements.js"></script></head><body><crowd-form>
<section data-cb-item="i0"><div data-cb-input="text">Is this fine?</div>
<crowd-radio-group data-cb-field="ok">
<crowd-radio-button name="i0__ok__yes" value="yes">Yes</crowd-radio-button>
<crowd-radio-button name="i0__ok__no" value="no">No</crowd-radio-button>
</crowd-radio-group></section></crowd-form></body></html>]]></HTMLContent>
<FrameHeight>400</FrameHeight></HTMLQuestion>"""
QF = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionForm.xsd"
AK = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/AnswerKey.xsd"
TEST = f"""<QuestionForm xmlns="{QF}"><Question><QuestionIdentifier>q1</QuestionIdentifier>
<QuestionContent><Text>2 + 2?</Text></QuestionContent><AnswerSpecification><SelectionAnswer><Selections>
<Selection><SelectionIdentifier>a</SelectionIdentifier><Text>4</Text></Selection>
<Selection><SelectionIdentifier>b</SelectionIdentifier><Text>5</Text></Selection>
</Selections></SelectionAnswer></AnswerSpecification></Question></QuestionForm>"""
KEY = f"""<AnswerKey xmlns="{AK}"><Question><QuestionIdentifier>q1</QuestionIdentifier>
<AnswerOption><SelectionIdentifier>a</SelectionIdentifier><AnswerScore>1</AnswerScore></AnswerOption></Question>
<QualificationValueMapping><PercentageMapping><MaximumSummedScore>1</MaximumSummedScore></PercentageMapping>
</QualificationValueMapping></AnswerKey>"""


@pytest.fixture(scope="module")
def served():
    with serve_local("mturk", workers=12, clock_speed=3600, seed=5) as (proc, url):
        yield url
    assert proc.returncode == 0  # SIGTERM ends it cleanly


def test_plain_boto3_gets_the_services_behaviour(served):
    mt = client(served, retries=ONE_TRY)
    start = Decimal(mt.get_account_balance()["AvailableBalance"])

    qual = mt.create_qualification_type(Name="arith", Description="simple test", QualificationTypeStatus="Active",
                                        Test=TEST, AnswerKey=KEY, TestDurationInSeconds=300)["QualificationType"]
    hit_type = mt.create_hit_type(Title="Judge", Description="d", Reward="0.05", AssignmentDurationInSeconds=600,
                                  AutoApprovalDelayInSeconds=86400 * 3, QualificationRequirements=[{
                                      "QualificationTypeId": qual["QualificationTypeId"],
                                      "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [100]}])["HITTypeId"]
    hits = [mt.create_hit_with_hit_type(HITTypeId=hit_type, MaxAssignments=1, LifetimeInSeconds=86400,
                                        Question=HTML, UniqueRequestToken=f"tok-{n}")["HIT"]["HITId"]
            for n in range(105)]
    with pytest.raises(ClientError) as dup:
        mt.create_hit_with_hit_type(HITTypeId=hit_type, MaxAssignments=1, LifetimeInSeconds=86400, Question=HTML,
                                    UniqueRequestToken="tok-0")
    assert dup.value.response["Error"]["Code"] == "RequestError"
    assert "HitAlreadyExists" in json.dumps(dup.value.response) and hits[0] in str(dup.value)

    listed, token = [], None
    while True:
        page = mt.list_hits(MaxResults=100, **({"NextToken": token} if token else {}))
        listed += [h["HITId"] for h in page["HITs"]]
        token = page.get("NextToken")
        if not token:
            break
    assert set(hits) <= set(listed) and len(listed) == len(set(listed))

    # workers take the test (auto-scored by the answer key) and only those scoring 100 work
    scored = wait_until(lambda: mt.list_workers_with_qualification_type(
        QualificationTypeId=qual["QualificationTypeId"], MaxResults=100)["Qualifications"], 30)
    assert all(q["IntegerValue"] in (0, 100) for q in scored)
    qualified = {q["WorkerId"] for q in scored if q["IntegerValue"] == 100}
    submitted = wait_until(lambda: mt.list_assignments_for_hit(HITId=hits[0])["Assignments"], 30)
    a = submitted[0]
    assert a["WorkerId"] in qualified
    if XSD.is_dir():
        import xmlschema

        xmlschema.XMLSchema(str(XSD / "QuestionFormAnswers_20051001.xsd")).validate(a["Answer"])
    assert "taskAnswers" in a["Answer"]

    mt.approve_assignment(AssignmentId=a["AssignmentId"])
    with pytest.raises(ClientError) as twice:
        mt.approve_assignment(AssignmentId=a["AssignmentId"])
    assert twice.value.response["Error"]["Code"] == "RequestError"

    mt.send_bonus(WorkerId=a["WorkerId"], AssignmentId=a["AssignmentId"], BonusAmount="0.20", Reason="good",
                  UniqueRequestToken="bonus-1")
    with pytest.raises(ClientError):
        mt.send_bonus(WorkerId=a["WorkerId"], AssignmentId=a["AssignmentId"], BonusAmount="0.20", Reason="good",
                      UniqueRequestToken="bonus-1")
    assert len(mt.list_bonus_payments(AssignmentId=a["AssignmentId"])["BonusPayments"]) == 1

    for bad in ({"Title": "x"}, {"HITTypeId": hit_type, "MaxAssignments": "one", "LifetimeInSeconds": 60,
                                 "Question": HTML}):
        with pytest.raises(Exception) as refused:  # botocore refuses some client-side; the server the rest
            if "Title" in bad:
                mt._make_api_call("CreateHITType", bad)
            else:
                mt._make_api_call("CreateHITWithHITType", bad)
        assert "RequestError" in str(refused.value) or "Parameter validation" in str(refused.value)
    with pytest.raises(ClientError) as bad_xml:
        mt.create_hit_with_hit_type(HITTypeId=hit_type, MaxAssignments=1, LifetimeInSeconds=60,
                                    Question="<HTMLQuestion><oops></HTMLQuestion>")
    assert bad_xml.value.response["Error"]["Code"] == "RequestError"

    # reward 0.05 + fee 0.01 (20%, minimum $0.01) + bonus 0.20 + fee 0.04
    end = Decimal(mt.get_account_balance()["AvailableBalance"])
    assert start - end == Decimal("0.05") + Decimal("0.01") + Decimal("0.20") + Decimal("0.04")
