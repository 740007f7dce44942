"""The pairwise example through the library API instead of the CLI.

Starts a local MTurk marketplace with a simulated crowd, launches ``spec.yaml``, polls until the
campaign is done, and writes the TRL preference export. Run: ``python examples/pairwise/run.py``.
"""

import json
import tempfile
from pathlib import Path

from campaigns.demo.oracles import pairwise_oracle
from campaigns.engine.launch import launch
from campaigns.engine.poll import poll
from campaigns.reports.export import export
from campaigns.spec.loading import load_spec
from campaigns.store.database import open_store
from connectors.local import start_local

HERE = Path(__file__).parent


def main() -> None:
    spec_path = HERE / "spec.yaml"
    spec = load_spec(spec_path)
    items = [json.loads(x) for x in (HERE / "items.jsonl").read_text().splitlines() if x.strip()]
    quality = {json.loads(x)["response_id"]: json.loads(x)["quality"]
               for x in (HERE / "truth.jsonl").read_text().splitlines() if x.strip()}
    by_text = {r["text"].strip(): quality[r["id"]] for it in items for r in it["responses"]}
    work = Path(tempfile.mkdtemp(prefix="crowd-example-"))
    store = open_store(f"sqlite:///{work / 'crowd.db'}")
    with start_local("mturk", workers=30, seed=1, oracle=pairwise_oracle(by_text)) as market:
        report = launch(spec, store, spec_text=spec_path.read_text(), endpoint=market.url)
        print(f"published {report.published} pages at {report.reward_per_page} each")
        while True:
            market.advance(1800)  # half an hour of simulated crowd work
            result = poll(store, spec.name, endpoint=market.url)
            print(result.summary_line())
            if result.all_done:
                break
    out = export(store, spec.name, "trl", work / "preferences.jsonl")
    print(f"wrote {out['rows']} preference rows to {out['path']}")


if __name__ == "__main__":
    main()
