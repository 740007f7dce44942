"""A launch the marketplace refuses leaves nothing behind, and a campaign none of whose work
reached a worker can be planned again from a corrected spec (issue 14, defect 5). Real boto3
against the local MTurk server, which refuses a question over its size limit."""

from __future__ import annotations

import json

from engine_helpers import market, write_campaign
from sqlmodel import select
from typer.testing import CliRunner

from campaigns.cli import app
from campaigns.store.database import open_store
from campaigns.store.models import Campaign, Page, Publication


def inflate(spec, size: int = 1_000_000) -> None:
    """Make the first item's first response ``size`` characters long."""
    path = spec.parent / "items.jsonl"
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    rows[0]["responses"][0]["text"] = "word " * (size // 5)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def launch(spec, db: str, url: str):
    return CliRunner().invoke(app, ["launch", str(spec), "--db", db, "--endpoint", url], catch_exceptions=False)


def test_a_refused_launch_leaves_no_store_and_a_corrected_spec_then_launches(tmp_path):
    original = write_campaign(tmp_path / "c")
    good_items = (original.parent / "items.jsonl").read_text(encoding="utf-8")
    inflate(original)
    db_file = tmp_path / "crowd.db"
    with market("mturk") as mp:
        refused = launch(original, f"sqlite:///{db_file}", mp.url)
        assert refused.exit_code == 1 and "QuestionTooLarge" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert not list(tmp_path.glob("crowd.db*")), "a refused launch must leave no store"
        assert not mp.server.hits

        open_store(f"sqlite:///{db_file}").close()  # an existing store: the refusal adds no rows to it
        assert launch(original, f"sqlite:///{db_file}", mp.url).exit_code == 1
        with open_store(f"sqlite:///{db_file}") as store, store.session() as s:
            assert s.exec(select(Campaign)).all() == []

        (original.parent / "items.jsonl").write_text(good_items, encoding="utf-8")
        fixed = launch(original, f"sqlite:///{db_file}", mp.url)
        assert fixed.exit_code == 0, fixed.stderr
        with open_store(f"sqlite:///{db_file}") as store, store.session() as s:
            pages = s.exec(select(Page)).all()
            assert len(s.exec(select(Publication)).all()) == len(pages) == len(mp.server.hits) > 0


def test_a_planned_campaign_with_nothing_published_is_planned_again_from_a_changed_spec(tmp_path):
    """A launch killed after writing its plan and before publishing left a plan only: a changed
    spec replaces it. Once anything is published, a changed spec is refused."""
    from engine_helpers import crowd_forked

    from campaigns.engine.replan import untouched

    spec = write_campaign(tmp_path / "c")
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    with market("mturk") as mp:
        assert crowd_forked("launch", str(spec), "--endpoint", mp.url, db=db,
                            CROWD_KILL_AT="launch.batch_created") == 137
        with open_store(db) as store, store.session() as s:
            first = s.exec(select(Campaign)).one()
            assert untouched(store, first.id)
        changed = spec.read_text().replace("page_size: 2", "page_size: 1")
        spec.write_text(changed)
        assert launch(spec, db, mp.url).exit_code == 0
        with open_store(db) as store, store.session() as s:
            c = s.exec(select(Campaign)).one()
            assert c.spec_hash != first.spec_hash and not untouched(store, c.id)
            assert len(s.exec(select(Publication)).all()) == len(mp.server.hits)
        spec.write_text(changed.replace("page_size: 1", "page_size: 2"))
        again = launch(spec, db, mp.url)
        assert again.exit_code == 1 and "some of its work is on the marketplace" in again.stderr
