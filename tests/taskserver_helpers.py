"""A task server on 127.0.0.1 (real uvicorn, real SQLite) with no simulated team, a requester
connector, and workers as plain httpx clients with their own cookies: for the server's tests."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
import lxml.html

from connectors.base import BatchSpec, Choice, Display, Page, PageItem, SpanSelect, TextInput
from connectors.inhouse import InhouseConnector
from connectors.local.clock import SimClock
from connectors.local.crowd import Crowd
from connectors.local.inhouse import Server
from connectors.retry import RetryPolicy
from taskserver import team

FAST = RetryPolicy(max_attempts=3, initial_s=0.01, max_s=0.05)


class Site:
    def __init__(self, balance: Decimal = Decimal("100.00"), database_url: str | None = None):
        self.clock = SimClock()
        self.server = Server(clock=self.clock, crowd=Crowd(workers=0), balance=balance,
                             database_url=database_url).start()
        self.url = self.server.url
        self.conn = InhouseConnector("local", self.url, retry=FAST)

    def invite(self, name: str) -> tuple[str, str]:
        with self.server.db.write() as s:
            inv = team.invite(s, name, self.clock.now())
        return inv.worker_id, inv.token

    def worker(self, name: str) -> Worker:
        wid, token = self.invite(name)
        w = Worker(self.url, wid)
        assert w.client.get(f"/join/{token}").status_code == 303
        return w

    def close(self) -> None:
        self.conn.close_client()
        self.server.stop()


class Worker:
    def __init__(self, url: str, worker_id: str):
        self.worker_id = worker_id
        self.client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)

    def csrf(self, path: str = "/work") -> str:
        r = self.client.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', r.text)
        assert found, f"no CSRF token on {path}: HTTP {r.status_code}"
        return found.group(1)

    def take(self) -> str | None:
        """Take the next page; its assignment id, or None when nothing is waiting."""
        r = self.client.post("/work/next", data={"csrf": self.csrf()})
        where = r.headers.get("location", "")
        return where.rsplit("/", 1)[1] if where.startswith("/work/page/") else None

    def page(self, aid: str) -> lxml.html.HtmlElement:
        r = self.client.get(f"/work/page/{aid}")
        assert r.status_code == 200, r.text[:300]
        return lxml.html.fromstring(r.text)

    def submit(self, aid: str, pairs: list[tuple[str, str]], csrf: str | None = None) -> httpx.Response:
        token = csrf if csrf is not None else self.csrf(f"/work/page/{aid}")
        data: dict[str, list[str]] = {}
        for k, v in [("csrf", token), *pairs]:
            data.setdefault(k, []).append(v)
        return self.client.post(f"/work/page/{aid}", data=data)


def batch(batch_id: str = "c/s", assignments: int = 1, **kw) -> BatchSpec:
    kw = {"title": "Compare", "description": "Pick one", "instructions": "Read <b>both</b>", **kw}
    return BatchSpec(batch_id=batch_id, idempotency_key=f"{batch_id}-key", stage="s", kind="classify",
                     reward=Decimal("0.50"), assignments_per_page=assignments, **kw)


def page(n: int, text: str = "a text", key: str | None = None, golden: bool = False) -> Page:
    item = PageItem(item_key=key or f"item{n}", golden=golden, widgets=[
        Display(name="prompt", label="Prompt", text=text),
        Choice(name="choice", label="Which is better?", options=[("left", "A"), ("right", "B"), ("tie", "Same")]),
        TextInput(name="fix", label="Rewrite", default=text, required=False),
        SpanSelect(name="spans", label="Mark", text=text)])
    return Page(page_id=f"pg{n}", idempotency_key=f"pg{n}-key", items=[item])


ANSWER = [("i0.choice", "left")]
