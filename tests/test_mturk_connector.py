"""MTurk connector: pure parts (rendering, XSDs, answer parsing, retry policy) and the whole
cycle with real boto3 against the local MTurk server over loopback HTTP."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import pytest
from lxml import etree

from connectors.base import (
    BatchSpec,
    Choice,
    ConnectorError,
    Display,
    MultiChoice,
    Page,
    PageItem,
    PoolRequirement,
    PoolSpec,
    ProviderUnreachable,
    ScreeningQuestion,
    ScreeningTest,
    SpanSelect,
    TextInput,
)
from connectors.mturk import render
from connectors.mturk.answers import FORM_KEY, AnswerParseError, parse_answer
from connectors.mturk.connector import annotation
from connectors.retry import AdaptiveRateLimiter, RetryPolicy, call_with_retry

XSD_DIR = Path(__file__).resolve().parents[1] / "../shared/data/mturk-xsd"
QFA_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"
HOSTILE = [
    "<script>alert('x')</script>",
    'He said "hi" & left; it\'s <b>bold</b>',
    "end ]]> of cdata ]]]]> twice",
    "ünïcödé — 日本語 🙂 &amp; &lt;",
    "tab\tnew\nline",
]


def xsd(name: str):
    xmlschema = pytest.importorskip("xmlschema")
    path = XSD_DIR / name
    if not path.exists():
        pytest.skip(f"MTurk XSDs not found at {XSD_DIR} (shared data absent)")
    return xmlschema.XMLSchema(str(path))


def sample_page(texts: list[str] | None = None, page_id: str = "p1", key: str = "page-1") -> Page:
    texts = texts or ["left text", "right text"]
    items = [PageItem(item_key=f"secret-key-{n}", widgets=[
        Display(name="prompt", text=text),
        Choice(name="pick", label="Which is better?", options=[("a", "A <first>"), ("b", "B \"second\"")]),
        MultiChoice(name="tags", label="Tags", options=[("x", "X"), ("y", "Y"), ("z", "Z")]),
        TextInput(name="fix", label="Fix it", default=text),
        SpanSelect(name="spans", label="Mark issues", text=text, labels=["issue", "typo"]),
    ]) for n, text in enumerate(texts)]
    return Page(page_id=page_id, idempotency_key=key, items=items)


class FormReader(HTMLParser):
    """Reads a crowd-form page as the FORMS.md convention says a worker (or the local crowd) does."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.display: dict[str, str] = {}
        self.attrs: list[tuple[str, dict[str, str | None]]] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs.append((tag, a))
        if tag == "div" and "data-cb-input" in a:
            self._in = f"{len(self.display)}:{a['data-cb-input']}"
            self.display[self._in] = ""

    def handle_endtag(self, tag):
        if tag == "div":
            self._in = None

    def handle_data(self, data):
        if self._in:
            self.display[self._in] += data


def html_content(question_xml: str) -> str:
    root = etree.fromstring(question_xml.encode())
    return root.find(f"{{{render.HTML_QUESTION_NS}}}HTMLContent").text


# --------------------------------------------------------------------------- rendering
def test_html_question_validates_and_keeps_hostile_text_as_text():
    page = sample_page(HOSTILE)
    question = render.html_question(page, instructions="Read <carefully> & answer ]]>")
    xsd("HTMLQuestion_20111111.xsd").validate(question)
    html = html_content(question)
    assert html == render.page_html(page, "Read <carefully> & answer ]]>")  # CDATA split losslessly
    assert "<script>" not in html and "secret-key" not in html  # no live markup, no item keys
    reader = FormReader()
    reader.feed(html)
    assert list(reader.display.values()) == HOSTILE
    areas = [a for tag, a in reader.attrs if tag == "crowd-text-area"]
    spans = [a for tag, a in reader.attrs if tag == "crowd-entity-annotation"]
    assert [a["value"] for a in areas] == HOSTILE and [a["text"] for a in spans] == HOSTILE
    assert json.loads(spans[0]["labels"]) == [{"label": "issue"}, {"label": "typo"}]


def test_every_widget_follows_forms_md_naming():
    html = render.page_html(sample_page(["x"]))
    reader = FormReader()
    reader.feed(html)
    names = {a.get("name") for _, a in reader.attrs if a.get("name")}
    assert names == {"i0__pick__a", "i0__pick__b", "i0__tags__x", "i0__tags__y", "i0__tags__z",
                     "i0__fix", "i0__spans"}
    assert ("section", {"data-cb-item": "i0"}) in reader.attrs
    assert "crowd-html-elements.js" in html and "<crowd-form>" in html
    assert render.multi_choice_fields(sample_page(["x", "y"])) == ["i0__tags", "i1__tags"]
    assert render.multi_choice_fields_from_html(render.html_question(sample_page(["x", "y"]))) == [
        "i0__tags", "i1__tags"]


def test_xml_illegal_characters_are_replaced_not_fatal():
    question = render.html_question(sample_page(["bell\x07 and nul\x00"]))
    etree.fromstring(question.encode())
    assert "bell\ufffd and nul\ufffd" in html_content(question)


def test_widget_names_with_double_underscore_are_refused():
    page = Page(page_id="p", idempotency_key="k",
                items=[PageItem(item_key="a", widgets=[TextInput(name="bad__name", label="x")])])
    with pytest.raises(ValueError, match="__"):
        render.page_html(page)


SCREENING = ScreeningTest(
    name="screen <1>", description="Can you compare answers?", instructions="Pick the better one & be fair",
    pass_score=70, retry_delay_s=600, duration_s=300,
    questions=[
        ScreeningQuestion(id="q1", text="Is 2+2=4 <true>?", options=[("yes", "Yes"), ("no", "No")],
                          answer=["yes"]),
        ScreeningQuestion(id="q2", text="Pick primes", kind="multiple_choice",
                          options=[("2", "2"), ("3", "3"), ("4", "4")], answer=["2", "3"]),
        ScreeningQuestion(id="q3", text="Rate \"quality\"", kind="likert",
                          options=[(str(v), str(v)) for v in range(1, 6)], answer=["3"], tolerance=1),
    ])


def test_screening_xml_validates_against_mturk_schemas():
    form, key = render.question_form(SCREENING), render.answer_key(SCREENING)
    xsd("QuestionForm_20051001.xsd").validate(form)
    xsd("AnswerKey_20051001.xsd").validate(key)
    ns = {"a": render.ANSWER_KEY_NS, "q": render.QUESTION_FORM_NS}
    root = etree.fromstring(key.encode())
    assert root.findtext("a:QualificationValueMapping/a:PercentageMapping/a:MaximumSummedScore",
                         namespaces=ns) == "3"
    q2 = root.findall("a:Question", ns)[1].findall("a:AnswerOption", ns)
    assert [[s.text for s in o.findall("a:SelectionIdentifier", ns)] for o in q2] == [["2", "3"]]
    q3 = root.findall("a:Question", ns)[2].findall("a:AnswerOption/a:SelectionIdentifier", ns)
    assert [s.text for s in q3] == ["2", "3", "4"]  # likert within tolerance 1 of "3"
    text = etree.fromstring(form.encode()).findall(".//q:Question/q:QuestionContent/q:Text", ns)
    assert text[0].text == "Is 2+2=4 <true>?"


# --------------------------------------------------------------------------- answers
def qfa(*answers: tuple[str, str | list[str]]) -> str:
    parts = []
    for qid, value in answers:
        body = (f"<FreeText>{xml_escape(value)}</FreeText>" if isinstance(value, str)
                else "".join(f"<SelectionIdentifier>{xml_escape(v)}</SelectionIdentifier>" for v in value))
        parts.append(f"<Answer><QuestionIdentifier>{qid}</QuestionIdentifier>{body}</Answer>")
    return f'<?xml version="1.0" encoding="UTF-8"?><QuestionFormAnswers xmlns="{QFA_NS}">{"".join(parts)}' \
           "</QuestionFormAnswers>"


def crowd_answer(k: int, text: str, pick: str, tags: list[str], spans: list[tuple[int, int]]) -> dict:
    out = {f"i{k}__pick__{v}": {v: v == pick} for v in ("a", "b")}
    out |= {f"i{k}__tags__{v}": {v: v in tags} for v in ("x", "y", "z")}
    out[f"i{k}__fix"] = text
    out[f"i{k}__spans"] = {"entities": [{"label": "issue", "startOffset": s, "endOffset": e}
                                         for s, e in spans]}
    return out


def test_parse_crowd_form_task_answers():
    payload = crowd_answer(0, "fixed <text> ]]>", "b", ["x", "z"], [(0, 4)])
    payload |= crowd_answer(1, "", "a", ["y"], [])
    xml = qfa(("taskAnswers", json.dumps([payload])))
    xsd("QuestionFormAnswers_20051001.xsd").validate(xml)
    parsed = parse_answer(xml, ["t0", "t1"], {"i0__tags", "i1__tags"})
    assert parsed == {
        "t0": {"pick": "b", "tags": ["x", "z"], "fix": "fixed <text> ]]>",
               "spans": [{"start": 0, "end": 4, "label": "issue"}]},
        "t1": {"pick": "a", "tags": ["y"], "fix": "", "spans": []},
    }


def test_parse_question_form_answers():
    xml = qfa(("q1", ["yes"]), ("q2", ["2", "3"]), ("comment", "fine & dandy"), ("i1__note", "n"))
    assert parse_answer(xml, ["a", "b"]) == {
        FORM_KEY: {"q1": "yes", "q2": ["2", "3"], "comment": "fine & dandy"}, "b": {"note": "n"}}


@pytest.mark.parametrize("payload", [
    "not xml at all",
    qfa(("taskAnswers", "{not json")),
    qfa(("taskAnswers", json.dumps([{"i5__pick__a": {"a": True}}]))),  # item beyond the page
    qfa(("taskAnswers", json.dumps([{"i0__pick__a": {"a": True}, "i0__pick__b": {"b": True}}]))),
    qfa(("taskAnswers", json.dumps([{"i0__spans": {"entities": [{"label": "x"}]}}]))),
    '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><QuestionFormAnswers>&e;</QuestionFormAnswers>',
])
def test_unparseable_payloads_raise_parse_error_only(payload):
    with pytest.raises(AnswerParseError):
        parse_answer(payload, ["t0"])


# --------------------------------------------------------------------------- retry policy
class Flaky(Exception):
    def __init__(self, retryable: bool, hint: float | None = None):
        super().__init__("flaky")
        self.retryable, self.hint, self.code, self.message = retryable, hint, "Flaky", "flaky"


def classify(exc):
    return (isinstance(exc, Flaky) and exc.retryable, getattr(exc, "hint", None))


def test_retry_retries_retryable_then_succeeds_with_backoff_and_hint():
    waits: list[float] = []
    failures = iter([Flaky(True), Flaky(True, hint=1.5), None])

    def fn():
        exc = next(failures)
        if exc:
            raise exc
        return "ok"

    policy = RetryPolicy(max_attempts=5, initial_s=0.2, max_s=10.0, jitter=False)
    assert call_with_retry(fn, classify=classify, policy=policy, provider="p", operation="op",
                           sleep=waits.append) == "ok"
    assert waits == [0.2, 1.5]


def test_retry_gives_up_as_provider_unreachable_and_never_retries_the_rest():
    calls = []

    def always():
        calls.append(1)
        raise Flaky(True)

    with pytest.raises(ProviderUnreachable) as info:
        call_with_retry(always, classify=classify, policy=RetryPolicy(max_attempts=3), provider="p",
                        operation="op", sleep=lambda s: None)
    assert len(calls) == 3 and info.value.code == "Flaky" and info.value.retryable

    def bad():
        calls.append(1)
        raise Flaky(False)

    calls.clear()
    with pytest.raises(Flaky):
        call_with_retry(bad, classify=classify, provider="p", operation="op", sleep=lambda s: None)
    assert len(calls) == 1


def test_full_jitter_backoff_stays_within_exponential_ceiling():
    policy, rng = RetryPolicy(initial_s=0.5, max_s=3.0), random.Random(1)
    for attempt in range(1, 8):
        ceiling = min(3.0, 0.5 * 2 ** (attempt - 1))
        draws = [policy.backoff(attempt, rng) for _ in range(50)]
        assert all(0 <= d <= ceiling for d in draws) and max(draws) > ceiling / 2


def test_rate_limiter_halves_on_throttle_and_recovers():
    now = [0.0]
    slept: list[float] = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    bucket = AdaptiveRateLimiter(rate=8.0, min_rate=1.0, burst=1.0, clock=lambda: now[0], sleep=sleep)
    bucket.acquire()
    bucket.acquire()
    assert slept == [pytest.approx(1 / 8)]
    bucket.on_throttle()
    bucket.on_throttle()
    assert bucket.rate == 2.0
    for _ in range(5):
        bucket.on_throttle()
    assert bucket.rate == 1.0  # floor
    for _ in range(100):
        bucket.on_success()
    assert bucket.rate == 8.0  # ceiling


# --------------------------------------------------------------------------- against the local server
FAST = RetryPolicy(max_attempts=6, initial_s=0.01, max_s=0.05)


def local():
    return pytest.importorskip("connectors.local", reason="local marketplace not available")


def one_item_pages(n: int, prefix: str = "x") -> list[Page]:
    choice = Choice(name="pick", label="?", options=[("a", "A"), ("b", "B")])
    return [Page(page_id=f"{prefix}{i}", idempotency_key=f"{prefix}-key-{i}", items=[
        PageItem(item_key=f"{prefix}{i}", widgets=[Display(name="prompt", text=f"text {i}"), choice])])
        for i in range(n)]


def spec(batch_id: str, assignments: int = 1, **kw) -> BatchSpec:
    kw.setdefault("reward", Decimal("0.05"))
    return BatchSpec(batch_id=batch_id, idempotency_key=batch_id, stage="s", kind="classify",
                     title=f"Task {batch_id}", description="Pick one",
                     assignments_per_page=assignments, lifetime_s=86400, **kw)


@pytest.fixture
def connector():
    """(connector, marketplace): real boto3 against the local MTurk server."""
    from connectors.mturk import MTurkConnector

    with local().start_local("mturk", workers=20, seed=3) as mp:
        yield MTurkConnector("local", mp.url, retry=FAST), mp


def hit_count(conn) -> int:
    """HITs on the server, counted through boto3's own paginator."""
    return sum(len(page["HITs"]) for page in conn.client.get_paginator("list_hits").paginate())


def test_republish_from_a_fresh_process_finds_existing_hits(connector):
    from connectors.mturk import MTurkConnector

    conn, mp = connector
    s = spec("idem")
    batch = conn.create_batch(s)
    first = conn.publish(batch, s, one_item_pages(5))
    other = MTurkConnector("local", mp.url, retry=FAST)  # no memory of the first publish
    second = other.publish(other.create_batch(s), s, one_item_pages(5))
    assert [p.provider_ref for p in second] == [p.provider_ref for p in first]
    assert not any(p.created for p in second) and hit_count(conn) == 5
    assert other.calls["CreateHITWithHITType"] == 5
    # the fallback used when the error message names no HIT: look it up by RequesterAnnotation
    assert other._find_hit(batch.ref, annotation(one_item_pages(5)[3])) == first[3].provider_ref


def test_bonus_once_and_poll_cost(connector):
    conn, mp = connector
    s = spec("pay", assignments=2)
    batch = conn.create_batch(s)
    conn.publish(batch, s, one_item_pages(3))
    mp.advance(4 * 3600)
    result = conn.fetch(batch, None)
    assert len(result.assignments) == 6 and len(result.finished_pages) == 3
    a = result.assignments[0]
    for _ in range(2):
        conn.pay_bonus(a.worker_id, a.assignment_id, Decimal("0.50"), "thanks", "bonus-key")
    paid = conn.list_bonuses(assignment_id=a.assignment_id)
    assert [(b["worker_id"], b["amount"]) for b in paid] == [(a.worker_id, Decimal("0.50"))]
    before = conn.calls.copy()
    idle = conn.fetch(batch, result.cursor)
    cost = conn.calls - before
    assert idle.assignments == [] and cost == {}  # every HIT finished and dropped: nothing left to ask about


def test_requirements_and_locales_reach_the_hit_type(connector):
    conn, _ = connector
    good, banned = conn.ensure_pool(PoolSpec(name="good")), conn.ensure_pool(PoolSpec(name="banned"))
    s = spec("reqs", requirements=[PoolRequirement(pool=good, min_score=70), PoolRequirement(pool=banned,
             exclude=True), PoolRequirement(pool=good)], locales=["us", "GB"])
    batch = conn.create_batch(s)
    (page,) = conn.publish(batch, s, one_item_pages(1))
    reqs = conn.client.get_hit(HITId=page.provider_ref)["HIT"]["QualificationRequirements"]
    simplified = [(r["QualificationTypeId"], r["Comparator"], r.get("IntegerValues"), r.get("LocaleValues"))
                  for r in reqs]
    assert simplified == [(good.ref, "GreaterThanOrEqualTo", [70], None),
                          (banned.ref, "DoesNotExist", None, None), (good.ref, "Exists", None, None),
                          ("00000000000000000071", "In", None, [{"Country": "US"}, {"Country": "GB"}])]


def test_pagination_past_100_hits_and_100_assignments():
    from connectors.mturk import MTurkConnector

    with local().start_local("mturk", workers=110, seed=5) as mp:
        conn = MTurkConnector("local", mp.url, retry=FAST, max_workers=8)
        s = spec("many")
        batch = conn.create_batch(s)
        conn.publish(batch, s, one_item_pages(104))
        big_spec = spec("wide", assignments=105)
        big = conn.create_batch(big_spec)
        (wide,) = conn.publish(big, big_spec, one_item_pages(1, prefix="w"))
        mp.advance(6 * 3600)
        fresh = MTurkConnector("local", mp.url, retry=FAST)  # discovers the batch's HITs via ListHITs
        result = fresh.fetch(batch, None)
        assert len(result.assignments) == 104 and len({a.page_ref for a in result.assignments}) == 104
        assert fresh.calls["ListHITs"] >= 2  # 105 HITs on the account: two pages
        wide_result = fresh.fetch(big, None)
        assert len(wide_result.assignments) == 105
        assert {a.page_ref for a in wide_result.assignments} == {wide.provider_ref}
        assert fresh.calls["ListAssignmentsForHIT"] >= 104 + 2


def test_invalid_requests_carry_turk_error_codes(connector):
    conn, _ = connector
    with pytest.raises(ConnectorError) as info:
        conn.extend("NOSUCHHIT000000000000000000000", 1)
    assert info.value.code.startswith("AWS.MechanicalTurk.") and not info.value.retryable
    assert conn.calls["GetHIT"] == 1  # RequestError is not retried
    with pytest.raises(ConnectorError) as info:
        conn.create_batch(spec("bad", reward=Decimal("0.001")))
    assert info.value.code == "InvalidAmount" and conn.calls["CreateHITType"] == 0


def test_extend_refuses_to_cross_ten_assignments(connector):
    conn, _ = connector
    s = spec("ext", assignments=5)
    (page,) = conn.publish(conn.create_batch(s), s, one_item_pages(1))
    with pytest.raises(ConnectorError, match="fewer than 10"):
        conn.extend(page.provider_ref, 5)
    assert conn.calls["CreateAdditionalAssignmentsForHIT"] == 0
    conn.extend(page.provider_ref, 4)
    assert conn.client.get_hit(HITId=page.provider_ref)["HIT"]["MaxAssignments"] == 9


def test_close_expires_every_hit_of_the_batch(connector):
    conn, mp = connector
    s = spec("close")
    batch = conn.create_batch(s)
    pages = conn.publish(batch, s, one_item_pages(3))
    conn.close(batch)
    mp.advance(3600)
    statuses = {conn.client.get_hit(HITId=p.provider_ref)["HIT"]["HITStatus"] for p in pages}
    assert statuses <= {"Unassignable", "Reviewable"} and conn.fetch(batch, None).assignments == []


def test_screening_test_is_scored_by_mturk(connector):
    conn, mp = connector
    pool = conn.ensure_screening(SCREENING)
    assert conn.ensure_screening(SCREENING).ref == pool.ref
    qt = conn.client.get_qualification_type(QualificationTypeId=pool.ref)["QualificationType"]
    assert qt["Test"] == render.question_form(SCREENING) and qt["TestDurationInSeconds"] == 300
    s = spec("screened", requirements=[PoolRequirement(pool=pool, min_score=60)])
    batch = conn.create_batch(s)
    conn.publish(batch, s, one_item_pages(3, prefix="sc"))
    mp.advance(4 * 3600)
    workers = conn.client.list_workers_with_qualification_type(QualificationTypeId=pool.ref, MaxResults=100)
    scores = [q["IntegerValue"] for q in workers["Qualifications"]]
    assert scores and all(0 <= v <= 100 for v in scores)
    got = conn.fetch(batch, None).assignments
    qualified = {q["WorkerId"] for q in workers["Qualifications"] if q["IntegerValue"] >= 60}
    assert {a.worker_id for a in got} <= qualified


def test_throttling_and_faults_are_retried_until_success():
    from connectors.local.faults import FaultConfig
    from connectors.mturk import MTurkConnector

    faults = FaultConfig(throttle_rate=0.3, error_rate=0.1, drop_rate=0.05, duplicate_rate=0.2, seed=11)
    with local().start_local("mturk", workers=10, seed=2, faults=faults) as mp:
        # faults are drawn per request in arrival order from a seeded RNG, so counts are reproducible
        conn = MTurkConnector("local", mp.url, retry=RetryPolicy(max_attempts=25, initial_s=0.01, max_s=0.05))
        s = spec("flaky")
        batch = conn.create_batch(s)
        published = conn.publish(batch, s, one_item_pages(12))
        assert len({p.provider_ref for p in published}) == 12
        assert len(mp.server.hits) == 12  # retried creates never duplicated a HIT
        assert conn.calls["CreateHITWithHITType"] > 12  # some attempts failed and were retried
        assert conn.balance() == mp.balance()
        mp.advance(4 * 3600)
        got = conn.fetch(batch, None).assignments
        assert len(got) == 12 and len({a.assignment_id for a in got}) == 12  # duplicates delivered once
        assert conn.calls == mp.calls  # every attempt, failed or not, was a real request and was counted


def test_unrelenting_throttling_gives_up_as_provider_unreachable():
    from connectors.local.faults import FaultConfig
    from connectors.mturk import MTurkConnector

    with local().start_local("mturk", workers=1, faults=FaultConfig(throttle_rate=1.0)) as mp:
        conn = MTurkConnector("local", mp.url, retry=RetryPolicy(max_attempts=3, initial_s=0.01, max_s=0.02))
        with pytest.raises(ProviderUnreachable) as info:
            conn.balance()
        assert info.value.code == "ThrottlingException" and conn.calls["GetAccountBalance"] == 3
        assert mp.calls["GetAccountBalance"] == 3  # botocore's own retries are really off
