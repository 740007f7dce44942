"""`crowd serve` and `crowd poll` killed (SIGKILL) at random moments while annotators work: every
submission the server acknowledged is stored once, in the server and in crowdbridge's store, and
nothing is paid twice (the reconcile finds the ledger and the server in agreement)."""

from __future__ import annotations

import json
import random
import re
import secrets
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest
from engine_helpers import CROWD, crowd, crowd_env, write_campaign
from sqlalchemy import func, select
from sqlmodel import select as store_select

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`crowd serve` as a child process that can be killed and started again on the same database."""

    def __init__(self, env: dict[str, str], url: str):
        self.env, self.url, self.proc = env, url, None
        self.kills = 0

    def start(self) -> None:
        self.proc = subprocess.Popen([str(CROWD), "serve"], env=crowd_env(**self.env), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("crowd serve did not come up")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1


class Annotator:
    """Takes pages and submits them as a browser would; remembers what the server acknowledged."""

    def __init__(self, url: str, token: str, rng: random.Random):
        self.url, self.token, self.rng = url, token, rng
        self.client = httpx.Client(base_url=url, follow_redirects=False, timeout=5)
        self.acked: set[str] = set()

    def work_one(self) -> None:
        try:
            if self.client.get("/work").status_code == 401:
                self.client.get(f"/join/{self.token}")
            home = self.client.get("/work").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', home)
            if not csrf:
                return
            r = self.client.post("/work/next", data={"csrf": csrf.group(1)})
            where = r.headers.get("location", "")
            if not where.startswith("/work/page/"):
                return
            html = self.client.get(where).text
            token = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
            names = sorted(set(re.findall(r'type="radio" name="([^"]+)"', html)))
            data = {"csrf": token} | {n: self.rng.choice(["left", "right"]) for n in names}
            r = self.client.post(where, data=data)
            if r.status_code == 303 or (r.status_code == 200 and "already received" in r.text):
                self.acked.add(where.rsplit("/", 1)[1])
        except httpx.TransportError:
            return  # the server is down (killed): try again later


def test_serve_and_poll_killed_at_random_lose_nothing_and_pay_nothing_twice(tmp_path):
    rng = random.Random(11)
    port, token = free_port(), secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{port}"
    server_db = f"sqlite:///{tmp_path / 'serve.db'}"
    env = {"CROWD_SERVE_REQUESTER_TOKEN": token, "CROWD_SERVE_DATABASE_URL": server_db,
           "CROWD_SERVE_PORT": str(port), "CROWD_SERVE_PUBLIC_URL": url}
    served = Served(env, url)
    served.start()
    try:
        run_and_check(served, tmp_path, rng, url, token, server_db)
    finally:
        if served.proc.poll() is None:
            served.kill()


def run_and_check(served: Served, tmp_path, rng: random.Random, url: str, token: str, server_db: str) -> None:
    from campaigns.store.database import open_store
    from campaigns.store.models import Assignment, LedgerEntry
    from taskserver import team
    from taskserver.db import open_database
    from taskserver.models import Assignment as ServerAssignment
    from taskserver.models import Bonus

    store_db = f"sqlite:///{tmp_path / 'crowd.db'}"
    db = open_database(server_db)
    with db.write() as s:
        from datetime import UTC, datetime

        invites = [team.invite(s, f"annotator {n}", datetime.now(UTC)) for n in range(6)]
    annotators = [Annotator(url, inv.token, random.Random(n)) for n, inv in enumerate(invites)]
    spec = write_campaign(tmp_path / "c", provider="inhouse", items=4, features=True, strict=False)
    spec.write_text(spec.read_text() + f"environment: production\nendpoint_url: {url}\n")
    poll_env = {"CROWD_INHOUSE_TOKEN": token}
    launched = crowd("launch", str(spec), db=store_db, **poll_env)
    assert launched.returncode == 0, launched.stderr

    poll_kills = polls = 0
    for _ in range(40):
        action = rng.random()
        if action < 0.5:
            for a in rng.sample(annotators, 3):
                a.work_one()
        elif action < 0.8:
            proc = subprocess.Popen([str(CROWD), "poll"], env=crowd_env(store_db, **poll_env),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0.3, 2.5))
                proc.send_signal(signal.SIGKILL)
                poll_kills += proc.wait() == -signal.SIGKILL
            else:
                proc.wait(timeout=120)
                polls += 1
        else:  # kill the server while submissions are in flight, then bring it back
            busy = [threading.Thread(target=a.work_one) for a in annotators]
            for t in busy:
                t.start()
            time.sleep(rng.uniform(0.0, 0.2))
            served.kill()
            for t in busy:
                t.join()
            served.start()
    for _ in range(6):  # let the poller catch up with everything
        for a in annotators:
            a.work_one()
        assert crowd("poll", db=store_db, **poll_env).returncode == 0

    acked = set().union(*(a.acked for a in annotators))
    print(f"server kills {served.kills}, poll kills {poll_kills}, polls {polls}, acknowledged {len(acked)}")
    assert served.kills >= 2 and poll_kills >= 2 and len(acked) >= 10, (served.kills, poll_kills, len(acked))
    with db.read() as s:
        on_server = dict(s.execute(select(ServerAssignment.id, ServerAssignment.state)).all())
        bonuses = s.scalar(select(func.count(Bonus.id)))
    assert all(on_server.get(aid) in ("submitted", "approved", "rejected") for aid in acked)
    with open_store(store_db) as store, store.session() as s:
        ids = [a.assignment_id for a in s.exec(store_select(Assignment)).all()]
        entries = s.exec(store_select(LedgerEntry)).all()
    assert acked <= set(ids) and len(ids) == len(set(ids))  # every acknowledged answer, each once
    rewards = [e.assignment_id for e in entries if e.kind == "reward" and e.state in ("sent", "confirmed")]
    assert len(rewards) == len(set(rewards))
    paid_bonuses = [e for e in entries if e.kind == "bonus" and e.state in ("sent", "confirmed")]
    print(f"assignments stored {len(ids)}, rewards {len(rewards)}, bonuses {bonuses}")
    assert len(paid_bonuses) == bonuses  # the ledger's bonuses are the server's, one for one
    report = crowd("reconcile", "engine", "--json", db=store_db, **poll_env)
    assert report.returncode == 0, report.stdout + report.stderr
    assert json.loads(report.stdout)["differences"] == []
    db.close()
