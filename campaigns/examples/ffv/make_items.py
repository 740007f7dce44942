"""Make the Find-Fix-Verify example: short texts with seeded errors, and the hidden truth.

Each entry is a correct paragraph and one or two errors to seed, given as (correct words, wrong
words, a plausible but still wrong fix, category). ``items.jsonl`` gets the texts with the errors
seeded; ``truth.jsonl`` (read only by the demo's simulated crowd and its scoring) records each
error's span in the seeded text, the correct replacement and the plausible wrong one.

Run: ``python examples/ffv/make_items.py`` (deterministic; rewrites both files).
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

TEXTS = [
    ("How tall is Mount Everest?", "Mount Everest is the highest mountain on Earth. Its summit is 8,849 metres "
     "above sea level, and it lies on the border between Nepal and China.",
     [("8,849 metres", "6,849 metres", "8,489 metres", "factual")]),
    ("When was the Eiffel Tower built?", "The Eiffel Tower was completed in 1889 for the World's Fair in Paris. "
     "It was designed by the company of Gustave Eiffel and is made of wrought iron.",
     [("1889", "1869", "1899", "factual"), ("is made", "are made", "were made", "grammar")]),
    ("What is the boiling point of water?", "At sea level, pure water boils at 100 degrees Celsius. At higher "
     "altitudes the air pressure is lower, so water boils at a lower temperature.",
     [("100 degrees", "90 degrees", "110 degrees", "factual")]),
    ("Who wrote Pride and Prejudice?", "Pride and Prejudice was written by Jane Austen and published in 1813. "
     "The novel follows Elizabeth Bennet as she deals with manners and marriage.",
     [("Jane Austen", "Charlotte Bronte", "Emily Bronte", "factual"), ("deals", "deal", "dealt", "grammar")]),
    ("What do plants need for photosynthesis?", "Plants use sunlight, water and carbon dioxide to make glucose. "
     "Oxygen is released as a by-product of this process.",
     [("carbon dioxide", "nitrogen", "carbon monoxide", "factual")]),
    ("How many planets are in the solar system?", "There are eight planets in the solar system. Pluto was "
     "reclassified as a dwarf planet in 2006 by the International Astronomical Union.",
     [("eight planets", "nine planets", "seven planets", "factual"), ("was reclassified", "were reclassified",
                                                                       "is reclassified", "grammar")]),
    ("What is the capital of Australia?", "The capital of Australia is Canberra. Many people assume it is "
     "Sydney, which is the largest city in the country.",
     [("is Canberra", "is Melbourne", "is Perth", "factual")]),
    ("What is the speed of light?", "Light travels at about 300,000 kilometres per second in a vacuum. "
     "Nothing that carries information can move faster than that.",
     [("300,000 kilometres", "30,000 kilometres", "3,000,000 kilometres", "factual")]),
    ("Who painted the Mona Lisa?", "The Mona Lisa was painted by Leonardo da Vinci in the early sixteenth "
     "century. It hangs in the Louvre museum in Paris.",
     [("Leonardo da Vinci", "Michelangelo", "Raphael", "factual"), ("hangs", "hang", "hanged", "grammar")]),
    ("How many bones does an adult human have?", "An adult human skeleton has 206 bones. Babies are born with "
     "more, but some of them fuse together as the body grows.",
     [("206 bones", "306 bones", "216 bones", "factual")]),
    ("What is the largest ocean?", "The Pacific Ocean is the largest and deepest ocean on Earth. It covers "
     "more area than all of the land on the planet combined.",
     [("Pacific Ocean", "Atlantic Ocean", "Indian Ocean", "factual"), ("covers", "cover", "covered", "grammar")]),
    ("What is DNA?", "DNA is the molecule that carries genetic information in living things. Its shape is a "
     "double helix, described by Watson and Crick in 1953.",
     [("double helix", "single helix", "triple helix", "factual")]),
    ("Why is the sky blue?", "The sky looks blue because air molecules scatter short blue wavelengths of "
     "sunlight more than long red ones. This effect is called Rayleigh scattering.",
     [("molecules scatter", "molecules scatters", "molecules scattered", "grammar"),
      ("Rayleigh scattering", "Compton scattering", "Raman scattering", "factual")]),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au, from the Latin word aurum. "
     "Gold does not rust, which is why it was used for coins.",
     [("is Au", "is Ag", "is Go", "factual")]),
    ("How long does the Earth take to orbit the Sun?", "The Earth takes about 365 days to orbit the Sun. "
     "The extra quarter day is why a leap year adds one day every four years.",
     [("365 days", "356 days", "366 days", "factual"), ("adds", "add", "added", "grammar")]),
    ("What is the freezing point of water in Fahrenheit?", "Water freezes at 32 degrees Fahrenheit, which is "
     "the same as zero degrees Celsius.",
     [("32 degrees", "23 degrees", "0 degrees", "factual")]),
    ("Who was the first person on the Moon?", "Neil Armstrong was the first person to walk on the Moon, in "
     "July 1969. He was the commander of the Apollo 11 mission.",
     [("Neil Armstrong", "Buzz Aldrin", "Michael Collins", "factual"), ("He was", "He were", "He is",
                                                                         "grammar")]),
    ("What is the largest planet?", "Jupiter is the largest planet in the solar system. It is a gas giant "
     "with a famous storm called the Great Red Spot.",
     [("Jupiter is", "Saturn is", "Neptune is", "factual")]),
    ("How many continents are there?", "Most geography books count seven continents. Asia is the biggest of "
     "them, both in area and in population.",
     [("seven continents", "six continents", "five continents", "factual"), ("is the biggest", "are the biggest",
                                                                             "was the biggest", "grammar")]),
    ("What gas do humans breathe out?", "When people breathe out, they release carbon dioxide that the body "
     "produces as waste. Plants later take in this gas.",
     [("release", "releases", "released", "grammar")]),
    ("Where is the Great Barrier Reef?", "The Great Barrier Reef lies off the coast of Queensland in "
     "Australia. It is the largest coral reef system in the world.",
     [("Queensland", "Tasmania", "Victoria", "factual")]),
    ("What is the smallest prime number?", "The smallest prime number is 2. It is also the only even prime, "
     "because every other even number can be divided by 2.",
     [("number is 2", "number is 1", "number is 3", "factual"), ("can be divided", "can divided",
                                                                 "could divided", "grammar")]),
    ("Who discovered penicillin?", "Penicillin was discovered by Alexander Fleming in 1928. He noticed that a "
     "mould killed the bacteria growing around it.",
     [("Alexander Fleming", "Louis Pasteur", "Robert Koch", "factual")]),
    ("What is the longest river in Africa?", "The Nile is the longest river in Africa. It flows north through "
     "several countries and reaches the Mediterranean Sea in Egypt.",
     [("flows north", "flows south", "flows west", "factual"), ("reaches", "reach", "reaching", "grammar")]),
    ("How many legs does a spider have?", "A spider has eight legs, while an insect has six. Spiders are "
     "arachnids, not insects.",
     [("eight legs", "six legs", "ten legs", "factual")]),
    ("What is the hardest natural material?", "Diamond is the hardest natural material known. It is made of "
     "carbon atoms arranged in a very strong crystal structure.",
     [("Diamond is", "Quartz is", "Granite is", "factual"), ("arranged", "arrange", "arranging", "grammar")]),
    ("When did World War II end?", "World War II ended in 1945. Germany surrendered in May and Japan "
     "surrendered in September of that year.",
     [("in 1945", "in 1948", "in 1944", "factual")]),
    ("What is the main language of Brazil?", "The main language spoken in Brazil is Portuguese. It is the "
     "only country in South America where Portuguese is the official language.",
     [("is Portuguese", "is Spanish", "is French", "factual"), ("where Portuguese is", "where Portuguese are",
                                                                "where Portuguese were", "grammar")]),
    ("How does the heart work?", "The human heart has four chambers. It pumps blood through the body, carrying "
     "oxygen to every organ.",
     [("four chambers", "three chambers", "two chambers", "factual")]),
    ("What is the tallest animal?", "The giraffe is the tallest living animal. Its long neck lets it eat "
     "leaves high up in the trees.",
     [("lets", "let", "letting", "grammar"), ("giraffe is", "elephant is", "camel is", "factual")]),
]


def seed(text: str, errors: list[tuple[str, str, str, str]]) -> tuple[str, list[dict]]:
    """Replace each correct phrase by its wrong one; spans are positions in the seeded text."""
    placed = []
    for correct, wrong, distractor, category in errors:
        at = text.index(correct)
        if text.count(correct) != 1:
            raise ValueError(f"{correct!r} is not unique in {text!r}")
        placed.append((at, correct, wrong, distractor, category))
    out, shift, truth = text, 0, []
    for at, correct, wrong, distractor, category in sorted(placed):
        start = at + shift
        out = out[:start] + wrong + out[start + len(correct):]
        truth.append({"start": start, "end": start + len(wrong), "wrong": wrong, "correct": correct,
                      "distractor": distractor, "category": category})
        shift += len(wrong) - len(correct)
    return out, truth


def main() -> None:
    items, truths = [], []
    for n, (prompt, text, errors) in enumerate(TEXTS, 1):
        seeded, truth = seed(text, errors)
        items.append({"id": f"t{n:02d}", "prompt": prompt, "text": seeded})
        truths.append({"id": f"t{n:02d}", "original": text, "errors": truth})
    (HERE / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    (HERE / "truth.jsonl").write_text("".join(json.dumps(t) + "\n" for t in truths), encoding="utf-8")
    print(f"{len(items)} texts, {sum(len(t['errors']) for t in truths)} seeded errors")


if __name__ == "__main__":
    main()
