"""The task server as a site on the internet and as a marketplace: its requester API (over the
inhouse connector and raw HTTP), its worker pages (over HTTP with cookies and CSRF tokens), and
what it must refuse. Real uvicorn on 127.0.0.1, every case on SQLite and on PostgreSQL; the clock
is simulated."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select
from taskserver_helpers import ANSWER, Site, batch, page

from connectors.base import ConnectorError, PoolRequirement, PoolSpec, ScreeningQuestion, ScreeningTest
from taskserver.models import Assignment


@pytest.fixture
def site(db_url):
    s = Site(database_url=db_url)
    yield s
    s.close()


def stored(site: Site) -> int:
    with site.server.db.read() as s:
        return s.scalar(select(func.count(Assignment.id)).where(Assignment.state == "submitted"))


def test_openapi_document_is_valid_and_describes_every_requester_call(site):
    from openapi_spec_validator import validate

    doc = httpx.get(site.url + "/openapi.json").json()
    validate(doc)  # raises on an invalid OpenAPI document
    paths = set(doc["paths"])
    assert {"/api/v1/batches", "/api/v1/lanes/{lane_id}/pages", "/api/v1/batches/{batch_id}/assignments/query",
            "/api/v1/bonuses", "/api/v1/balance", "/api/v1/pages/{page_id}/extend"} <= paths
    assert not any(p.startswith(("/work", "/join", "/ops")) for p in paths)  # worker pages are not API


def test_responses_match_the_published_schema(site):
    """What the server sends is what its OpenAPI document says (jsonschema on the real bodies)."""
    import jsonschema

    doc = httpx.get(site.url + "/openapi.json").json()
    ref = batch()
    b = site.conn.create_batch(ref)
    site.conn.publish(b, ref, [page(1)])
    w = site.worker("ann")
    w.submit(w.take(), ANSWER)
    api = httpx.Client(base_url=site.url + "/api/v1", headers={"Authorization": "Bearer local"})
    got = api.post(f"/batches/{b.extra['batch']}/assignments/query", json={}).json()
    schema = {**doc["components"]["schemas"]["AssignmentPage"], "components": doc["components"]}
    resolver_doc = json.loads(json.dumps(schema).replace("#/components/", "#/components/"))
    jsonschema.validate(got, resolver_doc)
    assert got["assignments"][0]["answers"]["item1"]["choice"] == "left"


def test_requester_api_needs_the_token(site):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic bG9jYWw="}):
        r = httpx.get(site.url + "/api/v1/balance", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "Unauthorized"


def test_bad_request_is_one_clear_error_and_writes_nothing(site):
    api = httpx.Client(base_url=site.url + "/api/v1", headers={"Authorization": "Bearer local"})
    r = api.post("/batches", json={"idempotency_key": "k", "title": "t", "reward": "-1", "assignments_per_page": 1})
    assert r.status_code == 400 and r.json()["error"]["field"] == "reward"
    r = api.post("/batches", json={"idempotency_key": "k", "title": "t", "reward": "1", "assignments_per_page": 1,
                                   "requirements": [{"pool_id": "PNOPE"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "NoSuchPool"
    with pytest.raises(ConnectorError) as info:
        site.conn.fetch(site.conn.create_batch(batch()), '{"s": "bm90LWEtY3Vyc29y"}')
    assert info.value.code == "BadCursor"


def test_a_page_is_answered_once_per_place_and_never_twice_by_one_worker(site):
    spec = batch(assignments=2)
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1)])
    a, bb, c = site.worker("a"), site.worker("b"), site.worker("c")
    first = a.take()
    assert a.take() == first  # the live reservation is resumed, not a second one
    assert a.submit(first, ANSWER).status_code == 303
    assert a.take() is None  # done it: never the same page again
    second = bb.take()
    assert second and c.take() is None  # the last place is reserved
    assert bb.submit(second, ANSWER).status_code == 303
    got = site.conn.fetch(b, None).assignments
    assert sorted(x.worker_id for x in got) == sorted([a.worker_id, bb.worker_id])


def test_never_a_real_item_twice_across_pages_but_golden_items_may_repeat(site):
    spec = batch()
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1, key="same"), page(2, key="same"), page(3, key="gold", golden=True),
                                page(4, key="gold", golden=True)])
    w = site.worker("w")
    taken = []
    while (aid := w.take()) is not None:
        w.submit(aid, ANSWER)
        taken.append(aid)
    keys = [key for a in site.conn.fetch(b, None).assignments for key in a.answers]
    assert sorted(keys) == ["gold", "gold", "same"]


def test_a_lane_is_open_only_to_its_pool(site):
    pool = site.conn.ensure_pool(PoolSpec(name="trusted"))
    spec = batch(lanes={"trusted": [PoolRequirement(pool=pool)]})
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1).model_copy(update={"lane": "trusted"})])
    outsider, member = site.worker("out"), site.worker("in")
    site.conn.grant(pool, member.worker_id, 5)
    assert outsider.take() is None
    assert member.take() is not None


def test_blocked_worker_gets_nothing(site):
    spec = batch()
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1)])
    w = site.worker("w")
    site.conn.block(w.worker_id, "spam")
    assert w.take() is None
    site.conn.unblock(w.worker_id)
    assert w.take() is not None


def test_another_workers_page_cannot_be_read_submitted_or_replayed(site):
    spec = batch(assignments=2)
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1, text="secret text of A")])
    owner, other = site.worker("owner"), site.worker("other")
    aid = owner.take()
    r = other.client.get(f"/work/page/{aid}")
    assert r.status_code == 404 and "secret text" not in r.text
    assert other.submit(aid, ANSWER, csrf=other.csrf()).status_code == 404
    assert stored(site) == 0
    csrf = owner.csrf(f"/work/page/{aid}")
    assert owner.submit(aid, ANSWER, csrf=csrf).status_code == 303
    again = owner.submit(aid, [("i0.choice", "right")], csrf=csrf)  # double click / replay
    assert again.status_code == 200 and "already received" in again.text
    assert other.submit(aid, [("i0.choice", "right")], csrf=other.csrf()).status_code == 404
    got = site.conn.fetch(b, None).assignments
    assert len(got) == 1 and got[0].answers["item1"]["choice"] == "left"


def test_every_form_needs_the_sessions_csrf_token(site):
    spec = batch()
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1)])
    w, x = site.worker("w"), site.worker("x")
    assert w.client.post("/work/next", data={}).status_code == 403
    aid = w.take()
    for token in ("", "forged", x.csrf()):  # missing, made up, another session's
        assert w.submit(aid, ANSWER, csrf=token).status_code == 403
    assert stored(site) == 0


def test_bad_submissions_get_the_page_again_with_the_reason_and_store_nothing(site):
    spec = batch()
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1, text="one two")])
    w = site.worker("w")
    aid = w.take()
    missing = w.submit(aid, [])
    assert missing.status_code == 400 and "choose an answer" in missing.text
    outside = w.submit(aid, ANSWER + [("i0.spans", "4-99")])
    assert outside.status_code == 400 and "outside the text" in outside.text
    not_option = w.submit(aid, [("i0.choice", "<script>")])
    assert not_option.status_code == 400 and "<script>" not in not_option.text
    assert stored(site) == 0
    ok = w.submit(aid, ANSWER + [("i0.spans", "0-3"), ("i0.spans", "4-7"), ("i0.fix", "uno\r\ndos")])
    assert ok.status_code == 303
    (a,) = site.conn.fetch(b, None).assignments
    assert a.answers["item1"] == {"choice": "left", "fix": "uno\ndos",
                                  "spans": [{"start": 0, "end": 7, "label": "issue"}]}
    assert json.loads(json.loads(a.raw)["raw"])[0][0] == "i0.choice"  # the form as received, kept


def test_a_lapsed_reservation_is_kept_if_needed_and_refused_politely_if_not(site):
    spec = batch()
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1), page(2)])
    slow, quick = site.worker("slow"), site.worker("quick")
    first = slow.take()
    csrf = slow.csrf(f"/work/page/{first}")
    site.clock.advance(spec.assignment_duration_s + 1)
    assert slow.submit(first, ANSWER, csrf=csrf).status_code == 303  # late, but the page still needed it
    second = slow.take()
    csrf = slow.csrf(f"/work/page/{second}")
    site.clock.advance(spec.assignment_duration_s + 1)
    taken = quick.take()
    with site.server.db.read() as s:
        assert s.get(Assignment, taken).page_id == s.get(Assignment, second).page_id  # the place went back
    quick.submit(taken, ANSWER)
    late = slow.submit(second, ANSWER, csrf=csrf)
    assert late.status_code == 409 and "not needed" in late.text
    assert len(site.conn.fetch(b, None).assignments) == 2


def test_oversized_bodies_are_refused_unread(site):
    w = site.worker("w")
    r = w.client.post("/work/next", content=b"x" * 3_000_000,
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    api = httpx.post(site.url + "/api/v1/pools", content=b"{" + b" " * 3_000_000 + b"}",
                     headers={"Authorization": "Bearer local", "content-type": "application/json"})
    assert api.status_code == 413


def test_invites_are_hashed_revocable_and_rate_limited(site):
    from taskserver.security import RateLimiter, digest

    wid, token = site.invite("Ana")
    with site.server.db.read() as s:
        from taskserver.models import Invite

        assert [i.token_hash for i in s.scalars(select(Invite))] == [digest(token)]  # only the hash is at rest
    if site.server.db.engine.dialect.name == "sqlite":
        assert token.encode() not in open(site.server.db.engine.url.database, "rb").read()
    c = httpx.Client(base_url=site.url, follow_redirects=False)
    r = c.get(f"/join/{token}")
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    with site.server.db.write() as s:
        from taskserver import team

        team.revoke(s, "Ana", site.clock.now())
    assert c.get("/work").status_code == 401  # the session ended with the revocation
    assert httpx.get(f"{site.url}/join/{token}").status_code == 404
    site.server.app.state.logins = RateLimiter(3)
    codes = [httpx.get(f"{site.url}/join/wrong{n}").status_code for n in range(5)]
    assert codes == [404, 404, 404, 429, 429]


def test_security_headers_and_no_secret_in_the_access_log(site, caplog):
    wid, token = site.invite("Bo")
    with caplog.at_level(logging.INFO, logger="taskserver.access"):
        r = httpx.get(f"{site.url}/join/{token}")
        httpx.get(site.url + "/api/v1/balance", headers={"Authorization": "Bearer local"})
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    text = caplog.text
    assert "/join/" in text and token not in text and "Bearer" not in text


def test_hostile_item_text_is_escaped(site):
    spec = batch()
    b = site.conn.create_batch(spec)
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)> \u202eRTL & \"q\""
    site.conn.publish(b, spec, [page(1, text=hostile)])
    w = site.worker("w")
    html = w.client.get(f"/work/page/{w.take()}").text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_screening_pass_joins_the_pool_fail_shows_when_to_retry(site):
    test = ScreeningTest(name="english", description="A short test", pass_score=100, retry_delay_s=600,
                         questions=[ScreeningQuestion(id="q1", text="2+2?", options=[("3", "3"), ("4", "4")],
                                                      answer=["4"])])
    pool = site.conn.ensure_screening(test)
    spec = batch(requirements=[PoolRequirement(pool=pool, min_score=50)])
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1)])
    good, bad = site.worker("good"), site.worker("bad")
    assert good.take() is None and f"/screening/{pool.ref}" in good.client.get("/work").text
    csrf = good.csrf(f"/screening/{pool.ref}")
    assert "Passed" in good.client.post(f"/screening/{pool.ref}", data={"csrf": csrf, "q.q1": "4"}).text
    assert site.conn.members(pool) == {good.worker_id: 100}
    assert good.take() is not None
    csrf = bad.csrf(f"/screening/{pool.ref}")
    failed = bad.client.post(f"/screening/{pool.ref}", data={"csrf": csrf, "q.q1": "3"}).text
    assert "You scored 0%" in failed and "again after" in failed
    assert "again after" in bad.client.get("/work").text
    site.clock.advance(601)
    assert f'href="/screening/{pool.ref}"' in bad.client.get("/work").text


def test_worker_sees_own_progress_only(site):
    spec = batch(assignments=2)
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1), page(2)])
    a, other = site.worker("Alice"), site.worker("Bob")
    a.submit(a.take(), ANSWER)
    home = a.client.get("/work").text
    assert 'data-cb="pages-done">1<' in home and "Bob" not in home and other.worker_id not in home


def test_bonuses_budget_balance_and_payouts(site):
    from taskserver import team

    spec = batch()
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1)])
    w = site.worker("Wu")
    w.submit(w.take(), ANSWER)
    (a,) = site.conn.fetch(b, None).assignments
    site.conn.approve(a.assignment_id)
    first = site.conn.pay_bonus(w.worker_id, a.assignment_id, Decimal("1.25"), "good", "bonus-1")
    again = site.conn.pay_bonus(w.worker_id, a.assignment_id, Decimal("1.25"), "good", "bonus-1")
    assert first.created and not again.created and first.provider_ref == again.provider_ref
    assert site.conn.balance() == Decimal("100.00") - Decimal("0.50") - Decimal("1.25")
    with pytest.raises(ConnectorError) as info:
        site.conn.pay_bonus(w.worker_id, a.assignment_id, Decimal("500"), "too much", "bonus-2")
    assert info.value.code == "InsufficientFunds"
    with site.server.db.read() as s:
        csv = team.payouts_csv(team.payouts(s))
    assert csv.splitlines()[1] == f"{w.worker_id},Wu,1,0.50,1.25,1.75"


def test_extend_is_safe_to_retry_and_stop_finishes_a_page(site):
    spec = batch()
    b = site.conn.create_batch(spec)
    (p,) = site.conn.publish(b, spec, [page(1)])
    site.conn.extend(p.provider_ref, 2)
    assert site.conn.page_assignments(p.provider_ref) == 3
    api = httpx.Client(base_url=site.url + "/api/v1", headers={"Authorization": "Bearer local"})
    replay = api.post(f"/pages/{p.provider_ref}/extend", json={"extra_assignments": 2, "if_assignments": 1})
    assert replay.status_code == 200 and replay.json()["assignments"] == 3  # a retried call adds nothing
    site.conn.stop(p.provider_ref)
    assert p.provider_ref in site.conn.fetch(b, None).finished_pages


def test_ops_view_needs_the_token_and_shows_work_and_spend(site):
    spec = batch()
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [page(1)])
    w = site.worker("w")
    w.submit(w.take(), ANSWER)
    anon = httpx.Client(base_url=site.url, follow_redirects=False)
    assert anon.get("/ops").headers["location"] == "/ops/login"
    assert anon.post("/ops/login", data={"token": "nope"}).status_code == 401
    assert anon.post("/ops/login", data={"token": "local"}).status_code == 303
    html = anon.get("/ops").text
    assert "c/s" in html and "<polyline" in html and 'data-cb="spent">0.50<' in html
    assert anon.get("/work").status_code == 401  # an ops session is not a worker's
