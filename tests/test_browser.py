"""Worker pages in a real browser: Debian's chromium driven by Playwright (never a downloaded
browser). A worker opens an invite link, answers a pairwise page by keyboard, marks spans with
the mouse (and by clicking words), edits a rewrite, submits, and what reaches ``crowd poll`` is
exactly what was typed; hostile item text stays inert text. Skipped, with the reason, where no
chromium is installed (``.ci/run`` installs it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from connectors.base import Display, Page, PageItem, SpanSelect, TextInput

CHROMIUM = os.environ.get("CROWD_CHROMIUM", "/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None,
                                reason=f"no chromium at {CHROMIUM} (apt-get install chromium)")
SHOTS = Path(os.environ["CROWD_SCREENSHOTS"]) if os.environ.get("CROWD_SCREENSHOTS") else None
ARGS = ["--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        args = ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        b.close()


@pytest.fixture
def site():
    from taskserver_helpers import Site

    s = Site()
    yield s
    s.close()


def shot(page, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name), full_page=True)


def join(browser, site, name: str):
    wid, token = site.invite(name)
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{site.url}/join/{token}")
    assert page.url.endswith("/work")
    return wid, page, dialogs


def start(page) -> None:
    page.click("#start")
    page.wait_for_url("**/work/page/*")
    page.wait_for_load_state()


def submit(page) -> None:
    with page.expect_navigation():
        page.click("#submit")


def test_pairwise_by_keyboard_reaches_poll_as_answered(browser, site, tmp_path):
    from engine_helpers import launch_in_process, poll_in_process, write_campaign

    from campaigns.store.database import open_store
    from campaigns.store.models import Assignment

    spec = write_campaign(tmp_path / "c", provider="inhouse", items=2)
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    launch_in_process(spec, db, site.url)
    wid, page, _ = join(browser, site, "Kim")
    start(page)
    items = page.locator("section[data-cb-item]")
    assert items.count() == 2 and page.locator("#shortcut-hint").is_visible()
    shot(page, "pairwise-page.png", tmp_path)
    page.keyboard.press("1")  # first item: Response A
    page.keyboard.press("2")  # then the next item is current: Response B
    first = items.nth(0).locator("input[type=radio]:checked").get_attribute("value")
    second = items.nth(1).locator("input[type=radio]:checked").get_attribute("value")
    assert (first, second) == ("left", "right")
    submit(page)
    poll_in_process(db, site.url)
    with open_store(db) as store, store.session() as s:
        (a,) = s.exec(select(Assignment).where(Assignment.worker_id == wid)).all()
    assert [v["choice"] for v in a.answers.values()] == ["left", "right"]


def test_spans_by_mouse_and_by_click_and_a_typed_rewrite_arrive_exactly(browser, site, tmp_path):
    from taskserver_helpers import batch

    text = "The quick brown fox jumps over the lazy dog."
    spec = batch("find/s", title="Find what is wrong", description="Mark each part that is not true, then rewrite it.",
                 instructions="Select words with the mouse, or click them one at a time.")
    b = site.conn.create_batch(spec)
    item = PageItem(item_key="t1", widgets=[
        Display(name="goal", label="Goal", text="Make it true"),
        SpanSelect(name="spans", label="Mark each wrong part", text=text),
        TextInput(name="rewrite", label="Rewrite the marked part", default="lazy dog")])
    site.conn.publish(b, spec, [Page(page_id="f1", idempotency_key="f1-k", items=[item])])
    _, page, _ = join(browser, site, "Lee")
    start(page)
    words = page.locator("[data-cb-span-text] label.tok span")
    first = words.filter(has_text="quick").first.bounding_box()
    end = words.filter(has_text="brown").first.bounding_box()
    page.mouse.move(first["x"] + 2, first["y"] + first["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] - 2, end["y"] + end["height"] / 2, steps=8)
    page.mouse.up()
    words.filter(has_text="lazy").first.click()  # the click-only way: one word at a time
    typed = "sleepy cät —\nline two"
    page.fill("textarea", typed)
    shot(page, "find-page.png", tmp_path)
    submit(page)
    (a,) = site.conn.fetch(b, None).assignments
    assert a.answers["t1"]["spans"] == [{"start": 4, "end": 15, "label": "issue"},
                                        {"start": 35, "end": 39, "label": "issue"}]
    assert text[4:15] == "quick brown" and a.answers["t1"]["rewrite"] == typed


def test_hostile_item_text_stays_inert_text(browser, site, tmp_path):
    from taskserver_helpers import batch

    hostile = ["<script>alert('s')</script>", "<img src=x onerror=\"alert('i')\">",
               "\u202egnp.exe RTL \u05e9\u05dc\u05d5\u05dd", "x" * 1_000_000]
    spec = batch("hostile/s")
    b = site.conn.create_batch(spec)
    items = [PageItem(item_key=f"h{n}", widgets=[Display(name="prompt", text=t),
                                                  SpanSelect(name="spans", label="Mark", text=t[:2000])])
             for n, t in enumerate(hostile)]
    site.conn.publish(b, spec, [Page(page_id="h", idempotency_key="h-k", items=items)])
    _, page, dialogs = join(browser, site, "Max")
    start(page)
    shown = page.locator("[data-cb-input=prompt]")
    assert [shown.nth(n).text_content() for n in range(4)] == hostile
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    page.wait_for_timeout(200)
    assert dialogs == []  # nothing ran


def test_ops_view_in_the_browser(browser, site, tmp_path):
    from taskserver_helpers import ANSWER, batch
    from taskserver_helpers import page as make_page

    spec = batch("demo-campaign/compare", assignments=2)
    b = site.conn.create_batch(spec)
    site.conn.publish(b, spec, [make_page(n) for n in range(4)])
    for name in ("Ana", "Ben"):
        w = site.worker(name)
        for _ in range(2):
            site.clock.advance(600)
            w.submit(w.take(), ANSWER)
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.goto(f"{site.url}/ops")
    assert page.url.endswith("/ops/login")
    page.fill("#token", "local")
    page.click("button[type=submit]")
    assert page.url.endswith("/ops")
    assert page.locator("table[data-cb=lanes] tbody tr").first.text_content().count("demo-campaign/compare") == 1
    assert page.locator("svg.chart polyline").count() == 1
    shot(page, "ops-view.png", tmp_path)
