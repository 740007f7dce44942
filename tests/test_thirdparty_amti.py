"""allenai/amti's README flow, run unmodified against ``crowd local serve --provider mturk``.

amti is not on PyPI: the test takes its source from ``AMTI_SRC`` (a checkout of
github.com/allenai/amti), else tries ``pip download amti``, else skips saying so. amti runs as its
own ``scripts/amti`` in a subprocess with our venv's boto3, click and Jinja2; its hard-coded
sandbox endpoint reaches the local server through ``thirdparty_helpers.mturk_proxy``.

The HIT definitions are amti's own examples, edited only where a user must edit them: the
qualification example's ``$QUALIFICATION_TYPE_ID`` placeholder gets a real id, and (so that a fast
simulated clock cannot run out the HITs or auto-approve the work before the test reviews it) the
lifetime and auto-approval delay are raised.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from engine_helpers import served
from mturk_helpers import ONE_TRY, client, wait_until
from thirdparty_helpers import aws_env, installed, mturk_proxy

EXAMPLES = ("examples/html-question-with-qualification/definition", "examples/qualification-type/definition",
            "examples/qualification-type-without-test/definition")
METADATA = {"HITId", "AssignmentDurationInSeconds", "AutoApprovalDelayInSeconds", "Expiration", "CreationTime",
            "AssignmentId", "WorkerId", "AssignmentStatus", "AutoApprovalTime", "AcceptTime", "SubmitTime",
            "ApprovalTime"}


def _has_source(path: Path) -> bool:
    return (path / "amti" / "__init__.py").is_file() and (path / "scripts" / "amti").is_file() and all(
        (path / e).is_dir() for e in EXAMPLES)


def _amti_source(tmp: Path) -> Path:
    given = os.environ.get("AMTI_SRC")
    if given:
        if not _has_source(Path(given)):
            pytest.skip(f"AMTI_SRC={given} is not an amti checkout (amti/, scripts/amti and examples/ expected)")
        return Path(given)
    dl = tmp / "download"
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dl), "amti"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"amti's source is needed and amti is not on PyPI (`pip download amti`: {why}); "
                    "set AMTI_SRC to a checkout of github.com/allenai/amti")
    for archive in dl.iterdir():  # should amti ever be published
        out = tmp / "amti-src"
        if archive.suffix in (".whl", ".zip"):
            zipfile.ZipFile(archive).extractall(out)
        else:
            with tarfile.open(archive) as tar:
                tar.extractall(out, filter="data")
        for root in [out, *out.iterdir()]:
            if _has_source(root):
                return root
    pytest.skip("the amti distribution on PyPI carries no scripts/amti and examples/; set AMTI_SRC")


def _missing_deps() -> list[str]:
    """amti needs boto3, click and Jinja2: a folder holding those our venv lacks (usually none)."""
    wanted = {"click": "click", "Jinja2": "jinja2"}
    missing = [name for name, module in wanted.items() if not importlib.util.find_spec(module)]
    if not missing:
        return []
    target, why = installed(missing, "amti-deps")
    if target is None:
        pytest.skip(f"amti's dependencies cannot be installed here: {why}")
    return [str(target)]


@pytest.fixture(scope="module")
def amti(tmp_path_factory):
    """(run, boto3 client, work dir, amti source): ``run(*args)`` is one ``amti`` command."""
    tmp = tmp_path_factory.mktemp("amti")
    src = _amti_source(tmp)
    with served("mturk", workers=12, clock_speed=600, seed=11) as (_proc, url), mturk_proxy(url) as proxy:
        if proxy is None:
            pytest.skip("the openssl CLI is needed to make the TLS certificate amti's HTTPS endpoint is served with")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CROWD_"))}
        env.update(aws_env(tmp), **proxy, PYTHONPATH=os.pathsep.join([str(src), *_missing_deps()]))
        work = tmp / "work"
        work.mkdir()

        def run(*args: str, stdin: str | None = None) -> str:
            proc = subprocess.run([sys.executable, str(src / "scripts" / "amti"), *args], cwd=work, env=env,
                                  input=stdin, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, f"amti {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
            return proc.stdout + proc.stderr

        yield run, client(url, retries=ONE_TRY), work, src


def _definition(src: Path, work: Path, name: str, qual_id: str) -> Path:
    """amti's HTMLQuestion-with-qualification example with its placeholder filled in."""
    out = work / name
    shutil.copytree(src / EXAMPLES[0], out)
    hittype = json.loads((out / "hittypeproperties.json").read_text())
    hittype["QualificationRequirements"][0]["QualificationTypeId"] = qual_id
    hittype["AutoApprovalDelayInSeconds"] = 30 * 86400
    (out / "hittypeproperties.json").write_text(json.dumps(hittype))
    (out / "hitproperties.json").write_text(json.dumps({"MaxAssignments": 1, "LifetimeInSeconds": 7 * 86400}))
    return out


def _batch(work: Path, before: set[Path]) -> Path:
    [made] = set(work.glob("batch-*")) - before
    return made


def _status(run, batch: Path) -> dict[str, int]:
    """amti's "HIT Status Counts" lines, e.g. ``{"Reviewable": 2}``."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^\s+(\w+): (\d+)$", run("status-batch", str(batch)), re.M)}


def test_amti_readme_flow(amti):
    run, mt, work, src = amti
    data = str(src / "examples/html-question-with-qualification/data.jsonl")

    # create-qualificationtype: the test form is QuestionForm 2017-11-06; a type without a test too
    run("create-qualificationtype", str(src / EXAMPLES[1]), str(work))
    run("create-qualificationtype", str(src / EXAMPLES[2]), str(work))
    quals = {}
    for made in work.glob("qualification-type-*"):
        saved = json.loads(next(made.glob("qualificationtype-*.jsonl")).read_text())["QualificationType"]
        quals[saved["Name"]] = saved["QualificationTypeId"]
    tested, untested = quals["Qualification Type Example"], quals["Qualification Type Without a Test Example"]

    # create-batch: batch A needs the tested qualification (the crowd takes the test), batch B the
    # untested one, which nobody holds, so its HITs stay open until expire-batch
    before = set(work.glob("batch-*"))
    run("create-batch", "--no-check-cost", str(_definition(src, work, "def-a", tested)), data, str(work))
    batch_a = _batch(work, before)
    before = set(work.glob("batch-*"))
    run("create-batch", "--no-check-cost", str(_definition(src, work, "def-b", untested)), data, str(work))
    batch_b = _batch(work, before)
    hits_a = json.loads((batch_a / "_INCOMPLETE").read_text())["hit_ids"]
    assert len(hits_a) == 2

    # status-batch until the crowd has done batch A; B is untouched
    assert wait_until(lambda: _status(run, batch_a) == {"Reviewable": 2}, 45, every=0.5)
    assert _status(run, batch_b) == {"Assignable": 2}
    scores = {q["WorkerId"]: q["IntegerValue"] for q in mt.list_workers_with_qualification_type(
        QualificationTypeId=tested, MaxResults=100)["Qualifications"]}
    assert scores and set(scores.values()) <= {0, 50, 100}

    # review-batch, interactively as its README shows: accept the first, mark then accept the second
    # (not reject: amti's `extract tabular` reads every assignment's ApprovalTime, which MTurk does
    # not return for rejected work)
    marks = work / "marks.jsonl"
    run("review-batch", str(batch_a), "-m", str(marks), stdin="a\nm\na\nTerse comment.\n")
    done = [mt.list_assignments_for_hit(HITId=h)["Assignments"] for h in hits_a]
    assert [[a["AssignmentStatus"] for a in x] for x in done] == [["Approved"], ["Approved"]]
    assert json.loads(marks.read_text()) == {"assignment_id": done[1][0]["AssignmentId"], "action": "a",
                                             "reason": "Terse comment."}
    workers = [x[0]["WorkerId"] for x in done]
    assert all(scores[w] == 100 for w in workers)  # only those who passed the test worked

    # expire-batch: ExpireAt=now ends B's open HITs at once (A's are done and stay Reviewable)
    run("expire-batch", str(batch_b))
    run("expire-batch", str(batch_a))
    assert _status(run, batch_b) == {"Reviewable": 2}
    assert _status(run, batch_a) == {"Reviewable": 2}
    assert "Reviewable: 2" in run("status-batch", "--live", str(batch_a))  # production's endpoint reaches it too

    # save-batch, then extract: tabular has the form's own fields as its columns; xml one file each
    run("save-batch", str(batch_a))
    run("save-batch", str(batch_b))
    for saved in (batch_a / "results").glob("hit-*/assignments.jsonl"):
        [assignment] = [json.loads(x) for x in saved.read_text().splitlines()]
        hit = json.loads((saved.parent / "hit.jsonl").read_text())["HIT"]
        assert hit["CreationTime"] <= assignment["AcceptTime"] <= assignment["SubmitTime"]
    table = work / "batch-data.jsonl"
    run("extract", "tabular", str(batch_a), str(table))
    rows = [json.loads(x) for x in table.read_text().splitlines()]
    assert len(rows) == 2 and {r["AssignmentId"] for r in rows} == {x[0]["AssignmentId"] for x in done}
    for row in rows:
        assert set(row) - METADATA == {"comment"}  # the form's one field (assignmentId is MTurk's own)
        assert isinstance(row["comment"], str) and row["comment"].strip()
    xml_out = work / "xml"
    xml_out.mkdir()
    run("extract", "xml", str(batch_a), str(xml_out))
    files = sorted(xml_out.glob("batch-*-xml/hit-*/assignment-*.xml"))
    assert len(files) == 2
    assert all("<QuestionIdentifier>comment</QuestionIdentifier>" in f.read_text() for f in files)

    # delete-batch: the HITs are gone from the account
    run("delete-batch", str(batch_a))
    run("delete-batch", str(batch_b))
    listed = {h["HITId"] for h in mt.list_hits(MaxResults=100)["HITs"]}
    for hit_id in hits_a:
        assert hit_id not in listed
        try:
            assert mt.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Disposed"
        except ClientError as gone:
            assert gone.response["Error"]["Code"] == "RequestError"

    # associate-qual by name (a requester's own type without a test is requestable), notify, block
    worker = workers[0]
    run("associate-qual", worker, "--qual", "Qualification Type Without a Test Example", "--name", "-i", "7")
    score = mt.get_qualification_score(QualificationTypeId=untested, WorkerId=worker)["Qualification"]
    assert score["IntegerValue"] == 7 and score["Status"] == "Granted"
    out = run("notify-workers", worker, "-s", "Thanks", "-m", "Thank you for your work.")
    assert "Notification failed" not in out
    run("block-workers", workers[1])
    blocks = {b["WorkerId"]: b["Reason"] for b in mt.list_worker_blocks(MaxResults=100)["WorkerBlocks"]}
    assert blocks.get(workers[1], "").startswith("Worker has produced low quality work")

    # and their undoing: disassociate-qual, unblock-workers
    run("disassociate-qual", worker, "--qual", untested, "-r", "Granted by mistake.")
    holders = mt.list_workers_with_qualification_type(QualificationTypeId=untested, Status="Granted")
    assert worker not in {q["WorkerId"] for q in holders["Qualifications"]}
    run("unblock-workers", workers[1])
    assert workers[1] not in {b["WorkerId"] for b in mt.list_worker_blocks(MaxResults=100)["WorkerBlocks"]}
