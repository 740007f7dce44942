"""What the local MTurk server accepts as a Question and what a simulated worker hands in, seen
through plain boto3: QuestionForm 2017-11-06 (as amti and Mephisto send it), plain HTML
forms answered one field per Answer, ExternalQuestion pages fetched with MTurk's query parameters
or, when unreachable, answered with what a minimal external page posts."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import xmlschema
from botocore.exceptions import ClientError
from lxml import etree
from mturk_helpers import ONE_TRY, html_question
from mturk_helpers import client as mturk_client

from connectors.local import start_local
from connectors.local.crowd import SimTask

XSD_DIR = Path(__file__).resolve().parents[1] / "../shared/data/mturk-xsd"
BASE = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
ANSWERS_NS = BASE + "2005-10-01/QuestionFormAnswers.xsd"
FORM_2017 = BASE + "2017-11-06/QuestionForm.xsd"
FORM_2005 = BASE + "2005-10-01/QuestionForm.xsd"

# Written here in the shape amti's and Mephisto's documents take (the third-party tests run their own):
# a 2017-11-06 screening test of two yes/no questions scored 50 each by an AnswerKey ...
def _yes_no(qid: str, text: str) -> str:
    return (f"<Question><QuestionIdentifier>{qid}</QuestionIdentifier><IsRequired>true</IsRequired>"
            f"<QuestionContent><Text>{text}</Text></QuestionContent><AnswerSpecification><SelectionAnswer>"
            "<StyleSuggestion>radiobutton</StyleSuggestion><Selections>"
            + "".join(f"<Selection><SelectionIdentifier>{v}</SelectionIdentifier><Text>{v}</Text></Selection>"
                      for v in ("yes", "no"))
            + "</Selections></SelectionAnswer></AnswerSpecification></Question>")


SCREENING_TEST = (
    f'<QuestionForm xmlns="{FORM_2017}"><Overview><Title>Screening</Title><Text>Two quick checks.</Text></Overview>'
    "<Overview><FormattedContent><![CDATA[Answer <b>carefully</b>.]]></FormattedContent>"
    "<List><ListItem>one</ListItem><ListItem>two</ListItem></List></Overview>"
    + _yes_no("capital_check", "Is Paris the capital of Italy?")
    + _yes_no("sum_check", "Is 2 + 2 equal to 4?")
    + "</QuestionForm>"
)
SCREENING_KEY = (
    f'<AnswerKey xmlns="{BASE}2005-10-01/AnswerKey.xsd">'
    + "".join(f"<Question><QuestionIdentifier>{qid}</QuestionIdentifier><AnswerOption>"
              f"<SelectionIdentifier>{right}</SelectionIdentifier><AnswerScore>50</AnswerScore></AnswerOption></Question>"
              for qid, right in (("capital_check", "no"), ("sum_check", "yes")))
    + "</AnswerKey>"
)


def confirm_id_form(reason: str) -> str:
    """... a compensation-style form: one required FreeText with Length and regex constraints ..."""
    return (
        f'<QuestionForm xmlns="{FORM_2017}"><Question><QuestionIdentifier>workerid</QuestionIdentifier>'
        "<DisplayName>Your worker id</DisplayName><IsRequired>true</IsRequired>"
        f"<QuestionContent><Text>Paid for: {reason}. Type your worker id to submit.</Text></QuestionContent>"
        '<AnswerSpecification><FreeTextAnswer><Constraints><Length minLength="2" />'
        '<AnswerFormatRegex regex="\\S" errorText="Must not be blank."/></Constraints></FreeTextAnswer>'
        "</AnswerSpecification></Question></QuestionForm>"
    )


# ... and a classic HTMLQuestion posting one textarea to externalSubmit.
CLASSIC_HTML = """<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd">
  <HTMLContent><![CDATA[<!DOCTYPE html><html><head>
    <script type='text/javascript' src='https://s3.amazonaws.com/mturk-public/externalHIT_v1.js'></script></head>
    <body><form name='mturk_form' method='post' id='mturk_form' action='/mturk/externalSubmit'>
      <input type='hidden' value='' name='assignmentId' id='assignmentId'/>
      <p>Say something about the word <b>lamp</b>.</p>
      <p><textarea name='comment' cols='80' rows='3'></textarea></p>
      <p><input type='submit' id='submitButton' value='Submit' /></p>
    </form><script>turkSetAssignmentID();</script></body></html>]]>
  </HTMLContent>
  <FrameHeight>450</FrameHeight>
</HTMLQuestion>
"""

PLAIN_FORM = """
<form id="mturk_form" method="post" action="https://www.mturk.com/mturk/externalSubmit">
  <input type="hidden" name="assignmentId" value="">
  <input type="hidden" name="batch" value="b&amp;7">
  <p>Is the sentence fluent?</p>
  <label><input type="radio" name="fluent" value="yes"> yes</label>
  <label><input type="radio" name="fluent" value="no"> no</label>
  <label><input type="checkbox" name="issues" value="grammar"> grammar</label>
  <label><input type="checkbox" name="issues" value="spelling"> spelling</label>
  <label><input type="checkbox" name="issues" value="style"> style</label>
  <select name="confidence"><option value="low">Low</option><option value="high">High</option></select>
  <input type="number" name="stars" min="1" max="5">
  <input type="text" name="note" value="none">
  <input type="text" name="frozen" value="x" disabled>
  <textarea name="why"></textarea>
  <input type="submit" name="go" value="Submit">
</form>"""


def page_question(body: str) -> str:
    return html_question(f"<!DOCTYPE html><html><body>{body}</body></html>", frame_height=0)


def external_question(url: str) -> str:
    return (
        f'<ExternalQuestion xmlns="{BASE}2006-07-14/ExternalQuestion.xsd">'
        f"<ExternalURL>{url.replace('&', '&amp;')}</ExternalURL><FrameHeight>600</FrameHeight></ExternalQuestion>"
    )


def client(url: str):
    return mturk_client(url, retries=ONE_TRY)


def hit_args(question: str, n: int = 3, **over: object) -> dict:
    args = dict(
        MaxAssignments=n,
        LifetimeInSeconds=24 * 3600,
        AssignmentDurationInSeconds=1800,
        Reward="0.10",
        Title="Answer a question",
        Description="A short task",
        Question=question,
    )
    args.update(over)
    return args


def answers_of(answer_xml: str) -> list[tuple[str, list[str], str | None]]:
    """(QuestionIdentifier, SelectionIdentifiers, FreeText) per Answer, after checking the XSD (when
    the shared data is there)."""
    if XSD_DIR.is_dir():
        xmlschema.XMLSchema(str(XSD_DIR / "QuestionFormAnswers_20051001.xsd")).validate(answer_xml)
    a = f"{{{ANSWERS_NS}}}"
    return [
        (
            ans.findtext(a + "QuestionIdentifier"),
            [s.text or "" for s in ans.findall(a + "SelectionIdentifier")],
            ans.findtext(a + "FreeText"),
        )
        for ans in etree.fromstring(answer_xml.encode()).findall(a + "Answer")
    ]


def submitted(mturk, hit_id: str) -> list[dict]:
    return mturk.list_assignments_for_hit(HITId=hit_id, AssignmentStatuses=["Submitted"])["Assignments"]


@pytest.fixture
def mp():
    if not XSD_DIR.is_dir():
        pytest.skip("MTurk XSDs not available")
    with start_local("mturk", workers=8, seed=5) as market:
        yield market


@pytest.fixture
def mturk(mp):
    return client(mp.url)


# --------------------------------------------------------------------------- QuestionForm 2017-11-06
def test_free_text_form_in_questionform_2017_is_answered_within_its_constraints(mp, mturk):
    hit_type = mturk.create_hit_type(
        AutoApprovalDelayInSeconds=3600,
        AssignmentDurationInSeconds=600,
        Reward="0.01",
        Title="Compensation",
        Description="Repay a worker",
    )["HITTypeId"]
    question = confirm_id_form("server crashed")
    hit = mturk.create_hit_with_hit_type(
        HITTypeId=hit_type, MaxAssignments=2, LifetimeInSeconds=31 * 24 * 3600, Question=question
    )["HIT"]
    assert hit["Question"] == question
    mp.advance(3600)
    got = submitted(mturk, hit["HITId"])
    assert len(got) == 2
    for a in got:
        [(qid, selections, text)] = answers_of(a["Answer"])
        assert qid == "workerid" and selections == []
        assert text is not None and len(text) >= 2 and text.strip()  # the form's Length and \S constraints


def test_qualification_test_in_questionform_2017_is_scored_by_its_answer_key(mp, mturk):
    careful = {w.worker_id for w in mp.crowd.workers[::2]}
    for w in mp.crowd.workers:  # careful workers pick the key's option, the others never do
        w.accuracy, w.abandon_rate = (1.0 if w.worker_id in careful else 0.0), 0.0
    qt_id = mturk.create_qualification_type(
        Name="Qualification Type Example",
        Keywords="example, test, sandbox",
        Description="An example qualification type.",
        QualificationTypeStatus="Active",
        RetryDelayInSeconds=86400,
        TestDurationInSeconds=3600,
        Test=SCREENING_TEST,
        AnswerKey=SCREENING_KEY,
    )["QualificationType"]["QualificationTypeId"]
    requirement = {"QualificationTypeId": qt_id, "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [100]}
    hit_id = mturk.create_hit(**hit_args(CLASSIC_HTML, n=8, QualificationRequirements=[requirement]))["HIT"]["HITId"]
    mp.advance(6 * 3600)
    quals = mturk.list_workers_with_qualification_type(QualificationTypeId=qt_id, MaxResults=100)["Qualifications"]
    scores = {x["WorkerId"]: x["IntegerValue"] for x in quals}
    assert set(scores) == {w.worker_id for w in mp.crowd.workers}
    assert all(score == (100 if w in careful else 0) for w, score in scores.items())
    workers = {a["WorkerId"] for a in submitted(mturk, hit_id)}
    assert workers and workers <= careful


@pytest.mark.parametrize("namespace", [FORM_2017, FORM_2005])
@pytest.mark.parametrize(
    "retired",
    [
        "<FileUploadAnswer><MaxFileSizeInBytes>1000</MaxFileSizeInBytes>"
        "<MinFileSizeInBytes>1</MinFileSizeInBytes></FileUploadAnswer>",
        "APPLICATION",
    ],
)
def test_questionform_with_a_retired_element_is_refused(mturk, namespace, retired):
    content = "<Text>Upload your file</Text>"
    answer = retired
    if retired == "APPLICATION":
        content += (
            "<Application><Flash><FlashMovieURL>https://example.com/a.swf</FlashMovieURL>"
            "<Width>10</Width><Height>10</Height></Flash></Application>"
        )
        answer = "<FreeTextAnswer/>"
    question = (
        f'<QuestionForm xmlns="{namespace}"><Question><QuestionIdentifier>file</QuestionIdentifier>'
        f"<QuestionContent>{content}</QuestionContent><AnswerSpecification>{answer}</AnswerSpecification>"
        "</Question></QuestionForm>"
    )
    with pytest.raises(ClientError) as e:
        mturk.create_hit(**hit_args(question))
    assert e.value.response["Error"]["Code"] == "RequestError"
    element = "Application" if retired == "APPLICATION" else "FileUploadAnswer"
    assert f"{element} is no longer supported" in e.value.response["Error"]["Message"]


def test_questionform_2017_is_validated_not_just_named(mturk):
    bad = f'<QuestionForm xmlns="{FORM_2017}"><Question><QuestionIdentifier>q</QuestionIdentifier></Question>'
    bad += "</QuestionForm>"
    with pytest.raises(ClientError) as e:
        mturk.create_hit(**hit_args(bad))
    assert e.value.response["Error"]["Code"] == "RequestError"
    assert "2017-11-06" in e.value.response["Error"]["Message"]


# --------------------------------------------------------------------------- plain HTML forms
def test_classic_html_question_gets_one_answer_per_form_field(mp, mturk):
    hit_id = mturk.create_hit(**hit_args(CLASSIC_HTML))["HIT"]["HITId"]
    mp.advance(3600)
    got = submitted(mturk, hit_id)
    assert len(got) == 3
    for a in got:
        [(qid, selections, text)] = answers_of(a["Answer"])
        assert qid == "comment" and selections == [] and text  # not taskAnswers, not assignmentId


def test_plain_form_fields_are_posted_as_mturk_records_them(mp, mturk):
    hit_id = mturk.create_hit(**hit_args(page_question(PLAIN_FORM), n=6))["HIT"]["HITId"]
    mp.advance(3600)
    got = submitted(mturk, hit_id)
    assert len(got) == 6
    always = ["batch", "fluent", "confidence", "stars", "note", "why"]
    for a in got:
        rows = answers_of(a["Answer"])
        assert all(selections == [] for _, selections, _ in rows)
        values = {qid: text for qid, _, text in rows}
        assert len(values) == len(rows)  # one Answer per field name
        assert [qid for qid, _, _ in rows if qid != "issues"] == always  # document order; no assignmentId,
        # no disabled field, no submit button
        assert values["batch"] == "b&7"  # hidden fields post their own value
        assert values["fluent"] in ("yes", "no") and values["confidence"] in ("low", "high")
        assert values["stars"] in {"1", "2", "3", "4", "5"}
        if "issues" in values:  # several checked boxes of one name: one Answer, values joined by |
            picked = values["issues"].split("|")
            assert picked and set(picked) <= {"grammar", "spelling", "style"}


def test_an_oracle_drives_the_values_of_a_plain_form():
    def fluent_no(task: SimTask, worker, rng) -> dict | None:
        names = {f.name for f in task.fields}
        return {"fluent": "no", "issues": ["grammar", "style"], "why": "ran on"} if "fluent" in names else None

    with start_local("mturk", workers=4, seed=1, oracle=fluent_no) as market:
        mturk = client(market.url)
        hit_id = mturk.create_hit(**hit_args(page_question(PLAIN_FORM), n=2))["HIT"]["HITId"]
        market.advance(3600)
        got = submitted(mturk, hit_id)
        assert len(got) == 2
        for a in got:
            values = {qid: text for qid, _, text in answers_of(a["Answer"])}
            assert values["fluent"] == "no" and values["issues"] == "grammar|style" and values["why"] == "ran on"


def test_crowd_form_pages_still_post_task_answers(mp, mturk):
    body = "<crowd-form><p>Describe the weather</p><textarea name='weather'></textarea></crowd-form>"
    hit_id = mturk.create_hit(**hit_args(page_question(body), n=1))["HIT"]["HITId"]
    mp.advance(3600)
    [a] = submitted(mturk, hit_id)
    [(qid, _, text)] = answers_of(a["Answer"])
    assert qid == "taskAnswers" and '"weather"' in text


# --------------------------------------------------------------------------- ExternalQuestion
@pytest.fixture
def external_site():
    """A local task site: its page's form echoes the workerId MTurk appended, as psiTurk's does."""
    seen: list[dict[str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            query = parse_qs(urlparse(self.path).query)
            seen.append(query)
            worker = query.get("workerId", [""])[0]
            body = (
                "<html><body><form method='post' action='"
                + query.get("turkSubmitTo", [""])[0]
                + "/mturk/externalSubmit'>"
                f"<input type='hidden' name='assignmentId' value='{query.get('assignmentId', [''])[0]}'>"
                f"<input type='hidden' name='workerId' value='{worker}'>"
                "<select name='label'><option>cat</option><option>dog</option></select>"
                "<input type='text' name='comment'></form></body></html>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/task?mode=live&lang=en", seen
    httpd.shutdown()
    httpd.server_close()


def test_reachable_external_page_is_fetched_and_its_form_answered(mp, mturk, external_site):
    url, seen = external_site
    hit_id = mturk.create_hit(**hit_args(external_question(url), n=2))["HIT"]["HITId"]
    mp.advance(3600)
    got = submitted(mturk, hit_id)
    assert len(got) == 2
    by_assignment = {q["assignmentId"][0]: q for q in seen}
    for a in got:
        query = by_assignment[a["AssignmentId"]]  # fetched once per assignment, with MTurk's parameters
        assert query["hitId"] == [hit_id] and query["workerId"] == [a["WorkerId"]]
        assert query["turkSubmitTo"] == [mp.url] and query["mode"] == ["live"] and query["lang"] == ["en"]
        rows = answers_of(a["Answer"])
        assert [qid for qid, _, _ in rows] == ["workerId", "label", "comment"]
        values = {qid: text for qid, _, text in rows}
        assert values["workerId"] == a["WorkerId"] and values["label"] in ("cat", "dog") and values["comment"]


def test_unreachable_external_page_posts_what_a_minimal_page_does(mp, mturk):
    hit_id = mturk.create_hit(**hit_args(external_question("https://example.com/task?x=1"), n=2))["HIT"]["HITId"]
    mp.advance(3600)
    got = submitted(mturk, hit_id)
    assert len(got) == 2
    for a in got:
        assert answers_of(a["Answer"]) == [("hitId", [], hit_id), ("workerId", [], a["WorkerId"])]
