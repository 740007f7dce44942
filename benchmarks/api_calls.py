"""Marketplace API calls of one adaptive pairwise campaign run to the end on a local marketplace.

Run by hand (not a test): ``.venv/bin/python benchmarks/api_calls.py --provider mturk``. Prints the
number of polls and the calls per operation as JSON; results go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from campaigns.demo.oracles import _load_truth, pairwise_oracle  # noqa: E402
from campaigns.demo.run import _spec_yaml  # noqa: E402
from campaigns.engine.launch import launch  # noqa: E402
from campaigns.engine.poll import poll  # noqa: E402
from campaigns.spec.loading import load_spec  # noqa: E402
from campaigns.store.database import open_store  # noqa: E402
from connectors.factory import make_connector  # noqa: E402
from connectors.local import start_local  # noqa: E402

EXAMPLE = REPO / "examples" / "pairwise"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--provider", default="mturk", choices=["mturk", "toloka"])
    ap.add_argument("--prompts", type=int, default=30)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    spec = load_spec(EXAMPLE / "spec.yaml")
    rows = [json.loads(x) for x in (EXAMPLE / spec.items).read_text().splitlines() if x.strip()][:args.prompts]
    work = Path(tempfile.mkdtemp())
    (work / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = spec.model_validate({**spec.model_dump(), "name": "calls", "provider": args.provider,
                                "items": str(work / "items.jsonl"), "budget": None, "wave": 8,
                                "overlap": {"min": 3, "max": 7, "target_agreement": 0.995, "extra_share": 0.56}})
    store = open_store(f"sqlite:///{work / 'crowd.db'}")
    truth = _load_truth(EXAMPLE, rows)[1]
    with start_local(args.provider, workers=40, spammers=0.25, seed=args.seed, oracle=pairwise_oracle(truth)) as mp:
        one_at_a_time = {"max_workers": 1} if args.provider == "mturk" else {}  # a run that repeats
        conn = make_connector(args.provider, "local", mp.url, **one_at_a_time)
        launch(spec, store, spec_text=_spec_yaml(spec), endpoint=mp.url, connector=conn)
        polls = 0
        while polls < 300:
            mp.advance(600)
            polls += 1
            if poll(store, spec.name, endpoint=mp.url, connector=conn).all_done:
                break
    print(json.dumps({"provider": args.provider, "polls": polls, "total": sum(conn.calls.values()),
                      "calls": dict(sorted(conn.calls.items()))}))


if __name__ == "__main__":
    main()
