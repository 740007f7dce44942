"""The simulated team: each simulated worker is a browser-like HTTP client of the task server.

A worker opens their invite link (a session cookie), reads the home page for work and screening
tests, takes the next page (a POST with the page's CSRF token), reads the form out of the HTML
(texts shown, the controls and their options, a span text's tokens), answers through the crowd's
oracle with the worker's skill, and posts the form back as a browser would: radio and checkbox
values, textarea text, one ticked checkbox per token a span covers. Walking away leaves the
reservation to lapse. The only thing read behind the pages is what the market itself knows: a
screening test's answer key (careful workers know those answers), and a change counter so idle
workers do not reload pages when nothing changed.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import httpx
import lxml.html
from sqlalchemy import case, func, select

from connectors.local.clock import SimClock
from connectors.local.crowd import Crowd, Job, Offer, SimField, SimTask, SimWorker
from taskserver import team as roster
from taskserver.db import Database
from taskserver.models import Assignment, Batch, Block, Member, PageRow, Pool

log = logging.getLogger(__name__)


class Team:
    def __init__(self, url: str, db: Database, crowd: Crowd, clock: SimClock):
        self.url, self.db, self.crowd, self.clock = url, db, crowd, clock
        self.clients: dict[str, httpx.Client] = {}
        self._csrf: dict[str, str] = {}
        for w in crowd.workers:
            self.join(w)

    def join(self, worker: SimWorker) -> None:
        with self.db.write() as s:
            invitation = roster.invite(s, worker.worker_id, self.clock.now(), worker_id=worker.worker_id)
        client = httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)
        r = client.get(f"/join/{invitation.token}")
        if r.status_code != 303:
            raise RuntimeError(f"simulated worker {worker.worker_id} could not join: HTTP {r.status_code}")
        self.clients[worker.worker_id] = client

    def close(self) -> None:
        for c in self.clients.values():
            c.close()
        self.clients.clear()

    def version(self) -> int:
        """Changes that may open work to someone: pages, places, pools, blocks, lapsed reservations."""
        now = self.clock.now()
        with self.db.read() as s:
            pages = s.execute(select(func.max(PageRow.n), func.sum(PageRow.assignments),
                                     func.count(PageRow.stopped_at))).one()
            lapsed = s.scalar(select(func.count(Assignment.id)).where(
                Assignment.state.in_(("reserved", "released")),
                case((Assignment.state == "released", True), else_=Assignment.deadline <= now)))
            others = (s.scalar(select(func.count()).select_from(Member)),
                      s.scalar(select(func.count()).select_from(Block)), s.scalar(select(func.count(Batch.closed_at))))
        return hash((tuple(pages), lapsed, others)) & 0x7FFFFFFF

    # ----------------------------------------------------------------- reading pages
    def offers(self, worker: SimWorker) -> list[Offer]:
        r = self.clients[worker.worker_id].get("/work")
        if r.status_code != 200:
            return []
        doc = lxml.html.fromstring(r.text)
        csrf = doc.xpath('//input[@name="csrf"]/@value')
        if csrf:
            self._csrf[worker.worker_id] = csrf[0]
        tests = doc.xpath('//a[starts-with(@href, "/screening/")]/@href')
        out = [Offer(ref=href.rsplit("/", 1)[1], kind="test") for href in tests]
        resume = doc.xpath('//a[starts-with(@href, "/work/page/")]/@href')
        if resume or doc.xpath('//form[@action="/work/next"]'):
            out.append(Offer(ref=resume[0] if resume else "next"))
        return out

    def accept(self, worker: SimWorker, offer: Offer) -> Job | None:
        client = self.clients[worker.worker_id]
        if offer.kind == "test":
            return self._test(worker, offer.ref)
        if offer.ref == "next":
            r = client.post("/work/next", data={"csrf": self._csrf.get(worker.worker_id, "")})
            where = r.headers.get("location", "")
            if r.status_code != 303 or not where.startswith("/work/page/"):
                return None
        else:
            where = offer.ref
        r = client.get(where)
        if r.status_code != 200:
            return None
        return _read_page(where, r.text)

    def _test(self, worker: SimWorker, pool_id: str) -> Job | None:
        r = self.clients[worker.worker_id].get(f"/screening/{pool_id}")
        if r.status_code != 200:
            return None
        doc = lxml.html.fromstring(r.text)
        form = doc.xpath("//form[@data-cb-screening]")
        if not form:
            return None
        with self.db.read() as s:  # the answer key: what a careful worker would know
            key = {q["id"]: q["answer"] for q in (s.get(Pool, pool_id).screening or {}).get("questions", [])}
        tasks, names = [], []
        for fs in form[0].xpath(".//fieldset[@data-cb-question]"):
            qid, kind = fs.get("data-cb-question"), fs.get("data-cb-kind")
            options = fs.xpath(".//input/@value")
            answer = key.get(qid, [])
            truth = {"answer": answer if kind == "multi_choice" else (answer[0] if answer else None)}
            tasks.append(SimTask(item=qid, inputs={"question": fs.xpath("string(./legend)")},
                                 fields=[SimField(name="answer", kind=kind, options=options)], truth=truth))
            names.append([{"name": "answer", "form": f"q.{qid}", "kind": kind}])
        handle = {"action": form[0].get("action"), "csrf": form[0].xpath('.//input[@name="csrf"]/@value')[0],
                  "fields": names}
        return Job(ref=pool_id, handle=handle, tasks=tasks, kind="test")

    # ----------------------------------------------------------------- answering
    def submit(self, worker: SimWorker, job: Job, answers: list[dict[str, Any]]) -> None:
        post_answers(self.clients[worker.worker_id], worker, job, answers)

    def abandon(self, worker: SimWorker, job: Job) -> None:
        return None  # walks away: the reservation lapses at its deadline


def post_answers(client: httpx.Client, worker: SimWorker, job: Job, answers: list[dict[str, Any]]) -> None:
    """Post a page's form as a browser would, from the worker's answers."""
    pairs: list[tuple[str, str]] = [("csrf", job.handle["csrf"])]
    for fields, answer in zip(job.handle["fields"], answers, strict=True):
        for f in fields:
            pairs += _form_values(f, answer.get(f["name"]))
    r = client.post(job.handle["action"], content=urlencode(pairs).encode(),
                    headers={"content-type": "application/x-www-form-urlencoded"})
    if r.status_code not in (200, 303):
        log.warning("simulated worker %s: submitting %s gave HTTP %s", worker.worker_id, job.ref, r.status_code)


def read_page(where: str, html: str) -> Job | None:
    """The job a task page holds: its items' texts and controls, and how to post it back."""
    return _read_page(where, html)


def _read_page(where: str, html: str) -> Job | None:
    doc = lxml.html.fromstring(html)
    form = doc.xpath('//form[@id="task-form"]')
    if not form:
        return None
    tasks, fields_of = [], []
    for section in form[0].xpath(".//section[@data-cb-item]"):
        inputs = {d.get("data-cb-input"): d.text_content() for d in section.xpath(".//*[@data-cb-input]")}
        fields, names = [], []
        for el in section.xpath(".//*[@data-cb-field]"):
            name, kind = el.get("data-cb-field"), el.get("data-cb-kind")
            if kind in ("choice", "multi_choice"):
                controls = el.xpath(".//input")
                fields.append(SimField(name=name, kind=kind, options=[c.get("value") for c in controls]))
                names.append({"name": name, "form": controls[0].get("name"), "kind": kind})
            elif kind == "text":
                box = el.xpath(".//textarea|.//input")[0]
                default = box.text_content() if box.tag == "textarea" else box.get("value", "")
                fields.append(SimField(name=name, kind="text", default=default.removeprefix("\n")))
                names.append({"name": name, "form": box.get("name"), "kind": "text"})
            elif kind == "spans":
                text_el = el.xpath(".//*[@data-cb-span-text]")[0]
                boxes = text_el.xpath(".//input[@type='checkbox']")
                radios = el.xpath(".//div[@class='span-labels']//input")
                labels = [r.get("value") for r in radios] or ["issue"]
                fields.append(SimField(name=name, kind="spans", options=labels, text=text_el.text_content()))
                names.append({"name": name, "form": boxes[0].get("name") if boxes else "", "kind": "spans",
                              "label_form": radios[0].get("name") if radios else None,
                              "tokens": [(int(b.get("data-start")), int(b.get("data-end"))) for b in boxes]})
        tasks.append(SimTask(item=section.get("data-cb-item"), inputs=inputs, fields=fields))
        fields_of.append(names)
    handle = {"action": form[0].get("action"), "csrf": form[0].xpath('.//input[@name="csrf"]/@value')[0],
              "fields": fields_of}
    return Job(ref=where, handle=handle, tasks=tasks)


def _form_values(f: dict, value: Any) -> list[tuple[str, str]]:
    """The (name, value) pairs a browser sends for one control given the worker's answer."""
    if value is None:
        return []
    if f["kind"] == "choice":
        return [(f["form"], str(value))] if value != "" else []
    if f["kind"] == "multi_choice":
        return [(f["form"], str(v)) for v in value]
    if f["kind"] == "text":
        return [(f["form"], str(value))]
    out = []
    for span in value:
        start, end = int(span["start"]), int(span["end"])
        out += [(f["form"], f"{a}-{b}") for a, b in f["tokens"] if a < end and start < b]
    labels = {span.get("label") for span in value} - {None}
    if len(labels) == 1 and f.get("label_form"):
        out.append((f["label_form"], labels.pop()))
    return sorted(set(out), key=out.index)
