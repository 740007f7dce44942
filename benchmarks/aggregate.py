"""`crowd aggregate` against crowd-kit alone (issue 19), run by hand; figures go to ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/aggregate.py [--repeats 3] [--methods ds mv] [--answers 1000000]

Both sides run as subprocesses, so interpreter start and imports count on both: ours is
``crowd aggregate FILE --method M --out OUT``; the plain side is the script a user would write
instead (``PLAIN`` below: ``pandas.read_csv``, the crowd-kit model, ``labels_.to_csv``). Inputs:
d_jn-product (real answers, from the shared data) and a seeded synthetic set of ``--answers``
answers (10 per task, 2,000 workers of uniform accuracy 0.3-0.95, 5 labels). Each repeat runs the
two sides back to back, in alternating order, so a machine busy with other work slows both; the
ratio of each pair is reported with its median, and peak RSS (``ru_maxrss`` of each child). This
process never loads pandas (the synthetic set is written by a child): a child's peak RSS starts at
its parent's size when it is forked.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JN = REPO / ".." / "shared" / "data" / "truth-inference" / "d_jn-product" / "answer.csv"

PLAIN = """
import sys
import pandas as pd
from crowdkit.aggregation import DawidSkene, MajorityVote
path, method, task, worker, label, out = sys.argv[1:]
df = pd.read_csv(path).rename(columns={task: "task", worker: "worker", label: "label"})
model = DawidSkene(n_iter=100) if method == "ds" else MajorityVote()
model.fit(df[["task", "worker", "label"]])
model.labels_.to_csv(out)
"""


def synthetic(path: Path, answers: int, seed: int = 0, per_task: int = 10, workers: int = 2_000,
              labels: int = 5) -> None:
    """``answers`` answers, ``per_task`` distinct workers on each task (a stride that never repeats)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    tasks = answers // per_task
    truth = rng.integers(0, labels, tasks)
    skill = rng.uniform(0.3, 0.95, workers)
    task = np.repeat(np.arange(tasks), per_task)
    worker = (rng.integers(0, workers, tasks)[task] + np.tile(np.arange(per_task) * 197, tasks)) % workers
    right = rng.random(len(task)) < skill[worker]
    label = np.where(right, truth[task], rng.integers(0, labels, len(task)))
    pd.DataFrame({"task": np.char.add("t", task.astype(str)), "worker": np.char.add("w", worker.astype(str)),
                  "label": np.char.add("l", label.astype(str))}).to_csv(path, index=False)


def measure(cmd: list[str], cwd: Path = REPO) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr}")
    return seconds, usage.ru_maxrss / 1024


def crowd_command() -> list[str]:
    script = Path(sys.executable).with_name("crowd")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "campaigns"]


def agreement(ours: Path, plain: Path) -> float:
    """Share of ours' tasks where crowd-kit alone chose the same label (both files: task, label first)."""
    def labels(path: Path) -> dict[str, str]:
        with path.open(newline="") as f:
            return {row[0]: row[1] for row in list(csv.reader(f))[1:]}
    a, b = labels(ours), labels(plain)
    return sum(b.get(task) == label for task, label in a.items()) / len(a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=["ds", "mv"], choices=["mv", "ds"])
    ap.add_argument("--answers", type=int, default=1_000_000, help="size of the synthetic set")
    ap.add_argument("--baseline", type=Path, help="also time `python -m campaigns aggregate` run from this "
                    "source tree (e.g. `git archive HEAD | tar -x -C DIR`: the code before a change)")
    ap.add_argument("--write-synthetic", type=Path, help=argparse.SUPPRESS)  # the child that writes it
    args = ap.parse_args()
    if args.write_synthetic:
        return synthetic(args.write_synthetic, args.answers)
    work = Path(tempfile.mkdtemp(prefix="bench-aggregate-"))
    try:
        inputs = []
        if JN.is_file():
            inputs.append(("d_jn-product", JN, ("question", "worker", "answer")))
        else:
            print(f"d_jn-product not found at {JN.resolve()}: synthetic set only", file=sys.stderr)
        synth = work / "synthetic.csv"
        subprocess.run([sys.executable, __file__, "--answers", str(args.answers), "--write-synthetic", str(synth)],
                       check=True)
        inputs.append((f"synthetic {args.answers:,}", synth, ("task", "worker", "label")))
        rows = []
        for name, path, (task, worker, label) in inputs:
            for method in args.methods:
                ours_out, plain_out = work / "ours.csv", work / "plain.csv"
                ours = [*crowd_command(), "aggregate", str(path), "--method", method, "--task-column", task,
                        "--worker-column", worker, "--label-column", label, "--out", str(ours_out)]
                plain = [sys.executable, "-c", PLAIN, str(path), method, task, worker, label, str(plain_out)]
                sides = [("ours", ours, REPO), ("plain", plain, REPO)]
                if args.baseline:
                    base = [sys.executable, "-m", "campaigns", *ours[len(crowd_command()):-1], str(work / "base.csv")]
                    sides.append(("base", base, args.baseline.resolve()))
                runs = []
                for r in range(args.repeats):
                    order = sides[r % len(sides):] + sides[:r % len(sides)]  # who goes first rotates
                    got = {side: measure(cmd, cwd) for side, cmd, cwd in order}
                    runs.append(got)
                    print(f"{name} {method} #{r + 1}: " + ", ".join(f"{k} {v[0]:.2f} s" for k, v in got.items())
                          + f", ratio {got['ours'][0] / got['plain'][0]:.2f}", file=sys.stderr)
                ratios = [g["ours"][0] / g["plain"][0] for g in runs]
                rows.append((name, method, runs, ratios, agreement(ours_out, plain_out)))
        print(f"\n{args.repeats} repeats, each ours and crowd-kit back to back; {os.cpu_count()} cores\n")
        base_note = "" if not args.baseline else " | baseline tree (s) / its ratio"
        print("| input | method | crowd aggregate (s) | crowd-kit alone (s) | ratio per repeat | median ratio "
              f"| peak RSS ours / crowd-kit (MB) | same labels{base_note} |")
        print("|---|---|---|---|---|---|---|---|" + ("---|" if args.baseline else ""))
        for name, method, runs, ratios, same in rows:
            ours_s = " / ".join(f"{g['ours'][0]:.2f}" for g in runs)
            plain_s = " / ".join(f"{g['plain'][0]:.2f}" for g in runs)
            rss = f"{max(g['ours'][1] for g in runs):.0f} / {max(g['plain'][1] for g in runs):.0f}"
            base_s = ""
            if args.baseline:
                base_ratio = statistics.median(g["base"][0] / g["plain"][0] for g in runs)
                base_times = " / ".join(f"{g['base'][0]:.2f}" for g in runs)
                base_s = f" {base_times} / **{base_ratio:.2f}** |"
            print(f"| {name} | {method} | {ours_s} | {plain_s} | {' / '.join(f'{x:.2f}' for x in ratios)} "
                  f"| **{statistics.median(ratios):.2f}** | {rss} | {same:.2%} |{base_s}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
