"""MTurk writes whose response is lost, and reads scoped to a campaign's own HITs (issue 14,
defects 1 and 3). Real boto3 against the local MTurk server; the server carries the write out and
then closes the connection (``FaultInjector.lose_next``), so the client retries a write that happened.
"""

from __future__ import annotations

from test_mturk_connector import FAST, one_item_pages, spec

from connectors.local import start_local
from connectors.mturk import MTurkConnector


def test_an_extend_whose_response_is_lost_extends_once():
    with start_local("mturk", workers=5, seed=3) as mp:
        conn = MTurkConnector("local", mp.url, retry=FAST)
        s = spec("ext-lost", assignments=3)
        (page,) = conn.publish(conn.create_batch(s), s, one_item_pages(1))
        mp.server.faults.lose_next("CreateAdditionalAssignmentsForHIT")
        conn.extend(page.provider_ref, 2)
        assert mp.server.calls["CreateAdditionalAssignmentsForHIT"] == 2  # the lost one and its retry
        assert conn.client.get_hit(HITId=page.provider_ref)["HIT"]["MaxAssignments"] == 5


def test_fetch_with_pages_reads_only_those_hits_of_a_shared_hit_type():
    with start_local("mturk", workers=12, seed=4) as mp:
        ours, theirs = MTurkConnector("local", mp.url, retry=FAST), MTurkConnector("local", mp.url, retry=FAST)
        s = spec("shared", assignments=2)
        batch = ours.create_batch(s)
        assert theirs.create_batch(s).ref == batch.ref  # identical fields: one HIT type
        mine = ours.publish(batch, s, one_item_pages(2, "a"))
        other = theirs.publish(batch, s, one_item_pages(2, "b"))
        mp.advance(3600)
        refs = [p.provider_ref for p in mine]
        fresh = MTurkConnector("local", mp.url, retry=FAST)  # a later process: nothing in memory
        got = fresh.fetch(batch, None, refs)
        assert got.assignments and {a.page_ref for a in got.assignments} <= set(refs)
        # what the HITs are comes from one ListHITs pass, not a GetHIT per HIT
        assert (fresh.calls["ListHITs"], fresh.calls["GetHIT"]) == (1, 0), fresh.calls
        assert {a.page_ref for a in fresh.fetch(batch, None).assignments} >= {p.provider_ref for p in other}
        fresh.close(batch, refs)
        status = {p.provider_ref: fresh.client.get_hit(HITId=p.provider_ref)["HIT"]["HITStatus"]
                  for p in mine + other}
        assert all(status[r] != "Assignable" for r in refs)
