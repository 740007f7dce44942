"""Generate the pairwise example: 50 prompts, 4 responses each, and a hidden quality per response.

The quality (0..1) lives in ``truth.jsonl``, which only the simulated crowd's oracle reads; the
campaign sees ``items.jsonl``. Run: ``python examples/pairwise/make_items.py`` (deterministic).
"""

import json
import random
from pathlib import Path

TOPICS = [
    ("photosynthesis", "how plants turn light into chemical energy"),
    ("compound interest", "why savings grow faster over time"),
    ("the water cycle", "how water moves between sea, air and land"),
    ("vaccines", "how the immune system learns from a vaccine"),
    ("binary search", "finding an item in a sorted list quickly"),
    ("plate tectonics", "why earthquakes cluster along certain lines"),
    ("inflation", "why prices rise over the years"),
    ("recursion", "a function that calls itself"),
    ("the French Revolution", "the causes of the 1789 revolution"),
    ("black holes", "what happens when a massive star collapses"),
    ("HTTP caching", "how browsers avoid downloading a page twice"),
    ("sourdough", "how wild yeast makes bread rise"),
    ("the Pythagorean theorem", "the sides of a right triangle"),
    ("git rebase", "replaying commits on top of another branch"),
    ("climate vs weather", "the difference between the two"),
    ("supply and demand", "how prices are set in a market"),
    ("DNS", "how a domain name becomes an IP address"),
    ("antibiotic resistance", "why some bacteria survive treatment"),
    ("the Doppler effect", "why a passing siren changes pitch"),
    ("public-key cryptography", "sharing secrets without meeting first"),
    ("tides", "why the sea rises and falls twice a day"),
    ("opportunity cost", "what you give up when you choose"),
    ("neural networks", "layers of weighted sums and nonlinearities"),
    ("the placebo effect", "improvement from a treatment with no active ingredient"),
    ("hash tables", "constant-time lookup by key"),
]
STYLES = ["Explain {t} to a beginner.", "In two or three sentences, what is {t}?"]

GOOD = ("{T} is {d}. In short: {d}, and the key idea is that each step follows from the one before, "
        "which is why {t} behaves predictably. A simple example makes it concrete.")
OK = "{T} is about {d}. It is a common topic and there is a lot to say about it."
TERSE = "{T}: {d}."
WRONG = ("{T} is mostly a myth; experts no longer think {d} matters, so you can ignore it. "
         "See also an unrelated topic.")


def main(seed: int = 7) -> None:
    rng = random.Random(seed)
    here = Path(__file__).parent
    items, truth = [], []
    n = 0
    for style in STYLES:
        for topic, desc in TOPICS:
            n += 1
            prompt = style.format(t=topic)
            fill = dict(t=topic, T=topic[0].upper() + topic[1:], d=desc)
            texts = [(GOOD, 0.9), (OK, 0.6), (TERSE, 0.45), (WRONG, 0.1)]
            responses = []
            # ids in a random order: with r0 always the best, any tie broken towards the smaller id
            # (crowd-kit's majority vote does that) would look right, and inflate measured accuracy
            suffixes = random.Random(f"ids:{seed}:{n}").sample(range(len(texts)), len(texts))
            for j, (tpl, q) in enumerate(texts):
                rid = f"q{n:02d}-r{suffixes[j]}"
                quality = round(min(1.0, max(0.0, q + rng.uniform(-0.08, 0.08))), 3)
                responses.append({"id": rid, "text": tpl.format(**fill), "source": f"model-{'abcd'[j]}"})
                truth.append({"response_id": rid, "quality": quality})
            rng.shuffle(responses)
            items.append({"id": f"q{n:02d}", "prompt": prompt, "responses": responses})
    (here / "items.jsonl").write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items))
    (here / "truth.jsonl").write_text("".join(json.dumps(t) + "\n" for t in truth))
    print(f"{len(items)} items, {len(truth)} responses")


if __name__ == "__main__":
    main()
