"""The simulated crowd on the local MTurk server, seen through plain boto3: answers in MTurk's real
formats (FORMS.md), qualification tests scored by answer keys, who may work (blocks, DoesNotExist,
Locale), approval, rejection, bonuses, auto-approval and what each costs. Time is simulated."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from botocore.exceptions import ClientError
from lxml import etree
from mturk_helpers import ONE_TRY, html_question
from mturk_helpers import client as mturk_client

from connectors.local import start_local
from connectors.local.crowd import SimTask

XSD_DIR = Path(__file__).resolve().parents[1] / "../shared/data/mturk-xsd"
BASE = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
ANSWERS_NS = BASE + "2005-10-01/QuestionFormAnswers.xsd"
SPAN_TEXT = "The sky is green & the grass is blue."


def item_html(k: int, prompt: str) -> str:
    p = f"i{k}"
    return (
        f'<section data-cb-item="{p}"><div data-cb-input="prompt">{escape(prompt)}</div>'
        f'<crowd-radio-group data-cb-field="pref">'
        f'<crowd-radio-button name="{p}__pref__left" value="left">Left</crowd-radio-button>'
        f'<crowd-radio-button name="{p}__pref__right" value="right">Right</crowd-radio-button>'
        "</crowd-radio-group>"
        f'<div data-cb-field="flags" data-cb-kind="multi_choice">'
        f'<crowd-checkbox name="{p}__flags__unsafe" value="unsafe">Unsafe</crowd-checkbox>'
        f'<crowd-checkbox name="{p}__flags__wrong" value="wrong">Wrong</crowd-checkbox></div>'
        f'<crowd-text-area name="{p}__why" data-cb-field="why" value="because"></crowd-text-area>'
        f'<crowd-entity-annotation name="{p}__issues" data-cb-field="issues" header="Mark errors" '
        f'labels=\'[{{"label": "issue"}}]\' text="{escape(SPAN_TEXT)}"></crowd-entity-annotation></section>'
    )


def form(body: str) -> str:
    html = (
        '<!DOCTYPE html><html><head><script src="https://assets.crowd.aws/crowd-html-elements.js">'
        f"</script></head><body><crowd-form>{body}</crowd-form></body></html>"
    )
    return html_question(html, frame_height=0)


PAGE = form(item_html(0, "Say <hi>") + item_html(1, "Say bye"))


def client(url: str):
    return mturk_client(url, retries=ONE_TRY)


def hit_args(**over: object) -> dict:
    args = dict(
        MaxAssignments=3,
        LifetimeInSeconds=24 * 3600,
        AssignmentDurationInSeconds=1800,
        Reward="0.25",
        Title="Compare",
        Description="Pick the better answer",
        Question=PAGE,
        AutoApprovalDelayInSeconds=3 * 24 * 3600,
    )
    args.update(over)
    return args


def assignments(
    mturk, hit_id: str, statuses: tuple[str, ...] = ("Submitted", "Approved", "Rejected")
) -> list:
    return mturk.list_assignments_for_hit(HITId=hit_id, AssignmentStatuses=list(statuses))["Assignments"]


def task_answers(answer_xml: str) -> list:
    root = etree.fromstring(answer_xml.encode())
    answers = root.findall(f"{{{ANSWERS_NS}}}Answer")
    assert len(answers) == 1
    assert answers[0].findtext(f"{{{ANSWERS_NS}}}QuestionIdentifier") == "taskAnswers"
    return json.loads(answers[0].findtext(f"{{{ANSWERS_NS}}}FreeText"))


def prefers_right(task: SimTask, worker, rng) -> dict | None:
    if "prompt" not in task.inputs:  # not one of our pages (a screening test): no opinion
        return None
    return {"pref": "right", "flags": ["wrong"], "why": f"seen: {task.inputs['prompt']}"}


@pytest.fixture
def mp():
    with start_local("mturk", workers=12, seed=3, oracle=prefers_right) as market:
        yield market


@pytest.fixture
def mturk(mp):
    return client(mp.url)


@pytest.fixture
def done(mp, mturk):
    """A HIT whose three assignments the crowd has submitted."""
    hit_id = mturk.create_hit(**hit_args())["HIT"]["HITId"]
    mp.advance(3600)
    got = assignments(mturk, hit_id)
    assert len(got) == 3 and {a["AssignmentStatus"] for a in got} == {"Submitted"}
    return hit_id, got


def test_answers_validate_against_the_xsd_and_follow_forms(done):
    _, got = done
    schema = None
    if XSD_DIR.is_dir():
        import xmlschema

        schema = xmlschema.XMLSchema(str(XSD_DIR / "QuestionFormAnswers_20051001.xsd"))
    for a in got:
        if schema is not None:
            schema.validate(a["Answer"])
        [obj] = task_answers(a["Answer"])
        for k in (0, 1):
            p = f"i{k}"
            assert obj[f"{p}__pref__left"] == {"left": False} and obj[f"{p}__pref__right"] == {"right": True}
            assert obj[f"{p}__flags__wrong"] == {"wrong": True} and obj[f"{p}__flags__unsafe"] == {
                "unsafe": False
            }
            assert isinstance(obj[f"{p}__why"], str) and obj[f"{p}__why"].startswith("seen: Say ")
            for e in obj[f"{p}__issues"]["entities"]:
                assert e["label"] == "issue" and 0 <= e["startOffset"] < e["endOffset"] <= len(SPAN_TEXT)
        assert obj["i0__why"] == "seen: Say <hi>"  # escaped in HTML, read back as text


def test_same_seed_same_crowd_answers():
    def run() -> list:
        with start_local("mturk", workers=8, seed=11) as market:
            mturk = client(market.url)
            hit_id = mturk.create_hit(**hit_args(MaxAssignments=4))["HIT"]["HITId"]
            market.advance(3600)
            return sorted((a["WorkerId"], a["Answer"]) for a in assignments(mturk, hit_id))

    first = run()
    assert len(first) == 4 and run() == first


def test_form_without_markers_is_still_answered():
    body = (
        '<crowd-radio-group><crowd-radio-button name="good" value="good">Good</crowd-radio-button>'
        '<crowd-radio-button name="bad" value="bad">Bad</crowd-radio-button></crowd-radio-group>'
        '<crowd-input name="comment"></crowd-input>'
    )
    with start_local("mturk", workers=4, seed=2) as market:
        mturk = client(market.url)
        hit_id = mturk.create_hit(**hit_args(MaxAssignments=2, Question=form(body)))["HIT"]["HITId"]
        market.advance(3600)
        got = assignments(mturk, hit_id)
        assert len(got) == 2
        for a in got:
            [obj] = task_answers(a["Answer"])
            assert set(obj) == {"good", "bad", "comment"}
            assert [obj["good"]["good"], obj["bad"]["bad"]].count(True) == 1


def test_approve_twice_is_refused_and_reject_needs_a_submitted_assignment(mp, mturk, done):
    _, got = done
    first, second = got[0]["AssignmentId"], got[1]["AssignmentId"]
    mturk.approve_assignment(AssignmentId=first, RequesterFeedback="thanks")
    with pytest.raises(ClientError) as exc:
        mturk.approve_assignment(AssignmentId=first)
    assert exc.value.response["Error"]["Code"] == "RequestError"
    with pytest.raises(ClientError):
        mturk.reject_assignment(AssignmentId=first, RequesterFeedback="too late")
    mturk.reject_assignment(AssignmentId=second, RequesterFeedback="failed the golden items")
    with pytest.raises(ClientError):
        mturk.reject_assignment(AssignmentId=second, RequesterFeedback="again")
    with pytest.raises(ClientError):
        mturk.approve_assignment(AssignmentId=second)  # a rejection stands unless overridden
    mturk.approve_assignment(AssignmentId=second, OverrideRejection=True)
    statuses = {a["AssignmentId"]: a["AssignmentStatus"] for a in assignments(mturk, done[0])}
    assert statuses[first] == statuses[second] == "Approved"


def test_balance_falls_by_reward_plus_fee(mp, mturk):
    cases = [
        ("0.25", 3, Decimal("0.25") * Decimal("0.20")),  # 20% fee
        ("0.25", 10, Decimal("0.25") * Decimal("0.40")),  # +20% for 10 or more assignments
        ("0.02", 2, Decimal("0.01")),
    ]  # 20% of 0.02 is below the $0.01 minimum
    hits = [
        (mturk.create_hit(**hit_args(Reward=r, MaxAssignments=n))["HIT"]["HITId"], Decimal(r), fee)
        for r, n, fee in cases
    ]
    mp.advance(4 * 3600)
    for hit_id, reward, fee in hits:
        before = mp.balance()
        assert Decimal(mturk.get_account_balance()["AvailableBalance"]) == before
        mturk.approve_assignment(AssignmentId=assignments(mturk, hit_id)[0]["AssignmentId"])
        assert before - mp.balance() == reward + fee.quantize(Decimal("0.01"))


def test_bonus_is_paid_once_per_token(mp, mturk, done):
    hit_id, got = done
    a = got[0]
    before = mp.balance()
    args = dict(
        WorkerId=a["WorkerId"],
        AssignmentId=a["AssignmentId"],
        BonusAmount="1.00",
        Reason="great work",
        UniqueRequestToken="bonus-1",
    )
    mturk.send_bonus(**args)
    assert before - mp.balance() == Decimal("1.00") + Decimal("0.20")
    with pytest.raises(ClientError) as exc:
        mturk.send_bonus(**args)
    assert exc.value.response["Error"]["Code"] == "RequestError"
    assert before - mp.balance() == Decimal("1.20")
    payments = mturk.list_bonus_payments(HITId=hit_id)["BonusPayments"]
    assert [(p["WorkerId"], p["BonusAmount"]) for p in payments] == [(a["WorkerId"], "1.00")]


def test_auto_approval_after_the_delay(mp, mturk):
    hit_id = mturk.create_hit(**hit_args(AutoApprovalDelayInSeconds=7200))["HIT"]["HITId"]
    start = mp.balance()
    mp.advance(1800)
    submitted = assignments(mturk, hit_id, ("Submitted",))
    assert submitted and mp.balance() == start
    mp.advance(7200)
    approved = assignments(mturk, hit_id, ("Approved",))
    assert {a["AssignmentId"] for a in submitted} <= {a["AssignmentId"] for a in approved}
    assert start - mp.balance() == len(approved) * (Decimal("0.25") + Decimal("0.05"))
    assert all(a["ApprovalTime"] >= a["AutoApprovalTime"] for a in approved)


def test_blocked_workers_and_does_not_exist_keep_workers_out(mp, mturk):
    blocked, excluded = mp.crowd.workers[0].worker_id, mp.crowd.workers[1].worker_id
    mturk.create_worker_block(WorkerId=blocked, Reason="spam")
    qt_id = mturk.create_qualification_type(
        Name="excluded", Description="seen before", QualificationTypeStatus="Active"
    )["QualificationType"]["QualificationTypeId"]
    mturk.associate_qualification_with_worker(QualificationTypeId=qt_id, WorkerId=excluded, IntegerValue=1)
    hit_id = mturk.create_hit(
        **hit_args(
            MaxAssignments=9,
            QualificationRequirements=[{"QualificationTypeId": qt_id, "Comparator": "DoesNotExist"}],
        )
    )["HIT"]["HITId"]
    mp.advance(6 * 3600)
    workers = {a["WorkerId"] for a in assignments(mturk, hit_id)}
    assert len(workers) >= 5 and blocked not in workers and excluded not in workers


def test_locale_requirement_admits_only_that_country(mp, mturk):
    req = {
        "QualificationTypeId": "00000000000000000071",
        "Comparator": "EqualTo",
        "LocaleValues": [{"Country": "US"}],
    }
    hit_id = mturk.create_hit(**hit_args(MaxAssignments=5, QualificationRequirements=[req]))["HIT"]["HITId"]
    mp.advance(6 * 3600)
    got = assignments(mturk, hit_id)
    assert got and all(mp.crowd.by_id[a["WorkerId"]].country == "US" for a in got)


QUESTION_FORM = BASE + "2005-10-01/QuestionForm.xsd"
ANSWER_KEY = BASE + "2005-10-01/AnswerKey.xsd"


def screening(n: int = 3) -> tuple[str, str]:
    questions, keys = [], []
    for i in range(n):
        questions.append(
            f"<Question><QuestionIdentifier>q{i}</QuestionIdentifier>"
            f"<QuestionContent><Text>Which is right? {i}"
            "</Text></QuestionContent><AnswerSpecification><SelectionAnswer><StyleSuggestion>radiobutton"
            "</StyleSuggestion><Selections>"
            + "".join(
                f"<Selection><SelectionIdentifier>{o}</SelectionIdentifier><Text>{o}</Text></Selection>"
                for o in ("a", "b", "c")
            )
            + "</Selections></SelectionAnswer></AnswerSpecification></Question>"
        )
        keys.append(
            f"<Question><QuestionIdentifier>q{i}</QuestionIdentifier><AnswerOption>"
            "<SelectionIdentifier>b</SelectionIdentifier><AnswerScore>1</AnswerScore></AnswerOption>"
            "</Question>"
        )
    test = f'<QuestionForm xmlns="{QUESTION_FORM}">{"".join(questions)}</QuestionForm>'
    key = (
        f'<AnswerKey xmlns="{ANSWER_KEY}">{"".join(keys)}<QualificationValueMapping><PercentageMapping>'
        f"<MaximumSummedScore>{n}</MaximumSummedScore></PercentageMapping></QualificationValueMapping></AnswerKey>"
    )
    return test, key


def test_workers_take_the_qualification_test_and_are_scored_by_the_answer_key(mp, mturk):
    careful = {w.worker_id for w in mp.crowd.workers[::2]}
    for w in mp.crowd.workers:  # careful workers always pick the key's option, the others never do
        w.accuracy, w.abandon_rate = (1.0 if w.worker_id in careful else 0.0), 0.0
    test, key = screening()
    qt_id = mturk.create_qualification_type(
        Name="screening",
        Description="3 questions",
        QualificationTypeStatus="Active",
        Test=test,
        AnswerKey=key,
        TestDurationInSeconds=600,
    )["QualificationType"]["QualificationTypeId"]
    got = mturk.get_qualification_type(QualificationTypeId=qt_id)["QualificationType"]
    assert got["Test"] == test and got["AnswerKey"] == key and got["TestDurationInSeconds"] == 600
    hit_id = mturk.create_hit(
        **hit_args(
            MaxAssignments=len(mp.crowd.workers),
            QualificationRequirements=[
                {"QualificationTypeId": qt_id, "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [70]}
            ],
        )
    )["HIT"]["HITId"]
    mp.advance(6 * 3600)
    scores = {
        x["WorkerId"]: x["IntegerValue"]
        for x in mturk.list_workers_with_qualification_type(QualificationTypeId=qt_id, MaxResults=100)[
            "Qualifications"
        ]
    }
    assert set(scores) == {w.worker_id for w in mp.crowd.workers}  # everyone took the test once
    assert all(scores[w] == (100 if w in careful else 0) for w in scores)
    one = next(iter(careful))
    assert (
        mturk.get_qualification_score(QualificationTypeId=qt_id, WorkerId=one)["Qualification"][
            "IntegerValue"
        ]
        == 100
    )
    workers = {a["WorkerId"] for a in assignments(mturk, hit_id)}
    assert workers and workers <= careful


def test_hit_lifecycle_to_disposed(mp, mturk, done):
    hit_id, got = done
    assert mturk.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Reviewable"
    assert hit_id in [h["HITId"] for h in mturk.list_reviewable_hits()["HITs"]]
    mturk.update_hit_review_status(HITId=hit_id, Revert=False)
    assert [h["HITId"] for h in mturk.list_reviewable_hits(Status="Reviewing")["HITs"]] == [hit_id]
    with pytest.raises(ClientError):
        mturk.delete_hit(HITId=hit_id)  # submitted assignments are still waiting for a decision
    for a in got:
        mturk.approve_assignment(AssignmentId=a["AssignmentId"])
    mturk.delete_hit(HITId=hit_id)
    assert mturk.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Disposed"
    assert hit_id not in [h["HITId"] for h in mturk.list_hits()["HITs"]]


def test_expiring_a_hit_early_stops_new_work(mp, mturk):
    hit_id = mturk.create_hit(**hit_args(MaxAssignments=8))["HIT"]["HITId"]
    mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=0)  # the past: expire now
    mp.advance(3600)
    hit = mturk.get_hit(HITId=hit_id)["HIT"]
    assert hit["HITStatus"] == "Reviewable" and assignments(mturk, hit_id) == []


def test_background_crowd_works_while_the_clock_runs():
    """``crowd local serve`` mode: nobody calls advance; simulated time runs by itself."""
    import time

    with start_local("mturk", workers=4, seed=5, clock_speed=600.0) as market:
        mturk = client(market.url)
        hit_id = mturk.create_hit(**hit_args(MaxAssignments=2))["HIT"]["HITId"]
        market.run_background()
        deadline = time.monotonic() + 30  # a generous bound for a slow machine, not a timing assertion
        while len(assignments(mturk, hit_id)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(assignments(mturk, hit_id)) == 2


def test_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="unknown provider"):
        start_local("upwork")
