"""The local Toloka behaves as Toloka does where tutorials and toloka-kit rely on it (issue 18,
defects 9-12): filters select Tolokers by their profiles, trainings gate pools, the reporting
endpoints answer, and ids are fresh on every start."""

from __future__ import annotations

import datetime
import io
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import toloka.client as tc
import toloka.client.filter as tf
import toloka.client.project.field_spec as fs
from test_local_toloka_api import known, make_pool, make_project, truth_oracle
from toloka.client.primitives.base import BaseTolokaObject
from toloka.client.primitives.operators import InclusionOperator

from connectors.local import start_local
from connectors.local.clock import SimClock
from connectors.local.crowd import Crowd
from connectors.local.toloka import Server


@pytest.fixture
def market():
    with start_local("toloka", workers=30, seed=4, oracle=truth_oracle) as mp:
        yield mp, tc.TolokaClient("any-local-token", url=mp.url, retries=0)


def selected(client: tc.TolokaClient, condition) -> set[str]:
    """Whom a filter picks, asked through the API (a message to the filter's recipients)."""
    thread = client.compose_message_thread(
        recipients_select_type="FILTER", topic={"EN": "hi"}, text={"EN": "hello"}, recipients_filter=condition
    )
    return {i.id for i in thread.interlocutors if i.role.value == "USER"}


def test_languages_are_lists_and_the_languages_filter_selects_speakers(market):
    mp, client = market
    profiles = mp.server.profiles
    user = client.get_user(next(iter(profiles)))  # /user-metadata: toloka-kit's User
    assert isinstance(user.languages, list) and "EN" in user.languages and not user._unexpected
    speakers = {w for w, p in profiles.items() if "DE" in p["languages"]}
    assert speakers and speakers != set(profiles)
    assert selected(client, tf.Languages.in_("DE")) == speakers
    assert selected(client, tf.Languages(operator=InclusionOperator.IN, value=["DE", "FR"])) == {
        w for w, p in profiles.items() if {"DE", "FR"} & set(p["languages"])
    }
    assert selected(client, tf.Languages.not_in("DE")) == set(profiles) - speakers
    assert selected(client, tf.Languages.in_("EN")) == set(profiles)

    project = make_project(client)
    pool = make_pool(client, project.id)
    pool.filter = tf.Languages.in_("DE")
    client.update_pool(pool.id, pool)
    client.create_tasks([tc.Task(pool_id=pool.id, input_values={"text": f"t {n}"}) for n in range(12)],
                        allow_defaults=True, open_pool=True)
    mp.advance(3 * 3600)
    workers = {a.user_id for a in client.get_assignments(pool_id=pool.id)}
    assert workers and workers <= speakers  # the pool gets work, and only from German speakers


CONDITIONS = [
    tf.Gender == "FEMALE", tf.Country == "US", tf.Citizenship == "US", tf.Education == "HIGH",
    tf.AdultAllowed == True, tf.DateOfBirth < int(datetime.datetime(1985, 1, 1).timestamp()),  # noqa: E712
    tf.City.in_(202), tf.Verified == True, tf.ClientType == "TOLOKA_APP",  # noqa: E712
    tf.RegionByPhone.in_(84), tf.RegionByIp.in_(84),
    tf.DeviceCategory == "SMARTPHONE", tf.OSFamily == "ANDROID", tf.OSVersion >= 12.0,
    tf.OSVersionMajor >= 12, tf.OSVersionMinor < 5, tf.OSVersionBugfix > 2, tf.UserAgentType == "BROWSER",
    tf.UserAgentFamily == "CHROME", tf.UserAgentVersion > 100.0, tf.UserAgentVersionMajor >= 105,
    tf.UserAgentVersionMinor <= 4, tf.UserAgentVersionBugfix > 50,
    tf.Languages(operator=InclusionOperator.IN, value="EN", verified=True),
]


@pytest.mark.parametrize("condition", CONDITIONS, ids=lambda c: f"{type(c).__name__}")
def test_every_filter_toloka_kit_can_express_divides_the_crowd(market, condition):
    mp, client = market
    everyone = set(mp.server.profiles)
    picked = selected(client, condition)
    assert picked and picked != everyone  # each filter selects on an attribute the crowd has
    if isinstance(condition, tf.Condition):
        assert selected(client, ~condition) == everyone - picked


def test_filters_agree_with_what_user_metadata_reports(market):
    mp, client = market
    for user_id in selected(client, (tf.ClientType == "TOLOKA_APP") & (tf.Country == "US")):
        user = client.get_user(user_id)
        assert user.attributes.client_type == "TOLOKA_APP" and user.country == "US"
    assert selected(client, tf.Skill("12345") == None) == set(mp.server.profiles)  # noqa: E711


def make_training(client: tc.TolokaClient, project_id: str) -> tc.Training:
    return client.create_training(tc.Training(
        project_id=project_id, private_name="training", may_contain_adult_content=False,
        assignment_max_duration_seconds=600, mix_tasks_in_creation_order=True, shuffle_tasks_in_task_suite=False,
        training_tasks_in_task_suite_count=2, task_suites_required_to_pass=2, retry_training_after_days=5,
        inherited_instructions=True,
    ))


@pytest.fixture
def mixed():
    """Half the crowd answers at random: some fail a training."""
    with start_local("toloka", workers=30, seed=4, spammers=0.5, oracle=truth_oracle) as mp:
        yield mp, tc.TolokaClient("any-local-token", url=mp.url, retries=0)


def test_trainings_share_the_pool_id_space_and_gate_the_pool(mixed):
    mp, client = mixed
    project = make_project(client)
    training = make_training(client, project.id)
    pool = make_pool(client, project.id)
    assert training.id != pool.id and int(pool.id) == int(training.id) + 1  # one counter
    assert pool.type == tc.Pool.Type.REGULAR and pool.owner.myself and not pool._unexpected
    pool.quality_control.training_requirement = tc.quality_control.QualityControl.TrainingRequirement(
        training_pool_id=training.id, training_passing_skill_value=75)
    client.update_pool(pool.id, pool)

    texts = ["good day", "bad day", "good food", "bad food"]
    client.create_tasks([tc.Task(pool_id=training.id, input_values={"text": t},
                                 known_solutions=known("pos" if "good" in t else "neg"),
                                 message_on_unknown_solution="good means pos") for t in texts])
    client.create_tasks([tc.Task(pool_id=pool.id, input_values={"text": f"good {n}"}) for n in range(10)],
                        allow_defaults=True)
    assert {t.pool_id for t in client.get_tasks(pool_id=training.id)} == {training.id}
    assert len(list(client.get_tasks(pool_id=pool.id))) == 10  # training tasks did not land here
    client.open_training(training.id)
    client.open_pool(pool.id)
    mp.advance(4 * 3600)

    trained = {a.user_id for a in client.get_assignments(pool_id=training.id)}
    workers = {a.user_id for a in client.get_assignments(pool_id=pool.id)}
    scores = {w: v for (t, w), v in mp.server.state.training_scores.items() if t == training.id}
    failed = {w for w, v in scores.items() if v < 75}
    assert workers and workers <= trained and failed and set(scores) == trained
    assert all(scores[w] >= 75 for w in workers) and failed.isdisjoint(workers)
    assert client.get_training(training.id).status == tc.Training.Status.OPEN

    retake_from = mp.clock.now() + datetime.timedelta(days=1)  # after the first round; retakes wait 5 days
    mp.advance(6 * 86400)
    again = {a.user_id for a in client.get_assignments(pool_id=training.id, created_gte=retake_from)}
    assert again and again <= set(scores)  # who trained before comes back after the retry delay
    for a in client.get_assignments(pool_id=training.id, created_gte=retake_from):
        before = client.get_assignments(pool_id=training.id, user_id=a.user_id, created_lt=retake_from)
        assert a.created >= max(b.submitted for b in before if b.submitted) + datetime.timedelta(days=5)


def test_pool_reports_when_and_why_it_stopped_and_expires_on_time(market):
    mp, client = market
    pool = make_pool(client, make_project(client).id)
    pool.will_expire = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=60)
    client.update_pool(pool.id, pool)
    client.create_tasks([tc.Task(pool_id=pool.id, input_values={"text": f"x{n}"}) for n in range(100)],
                        allow_defaults=True)
    client.open_pool(pool.id)
    assert client.get_pool(pool.id).last_started is not None
    mp.advance(1800)
    got = client.get_pool(pool.id)
    assert got.status == tc.Pool.Status.CLOSED and got.last_close_reason == tc.Pool.CloseReason.EXPIRED
    assert got.last_stopped is not None and got.last_stopped >= got.last_started


def _fresh_server(id_seed=None) -> Server:
    server = Server(clock=SimClock(), crowd=Crowd(workers=3, seed=0), id_seed=id_seed)
    server.start()
    return server


def _first_ids(server: Server) -> tuple[str, str, str]:
    client = tc.TolokaClient("t", url=server.url, retries=0)
    project = make_project(client)
    pool = make_pool(client, project.id)
    task = client.create_task(tc.Task(pool_id=pool.id, input_values={"text": "x"}), allow_defaults=True)
    return project.id, pool.id, task.id


def test_ids_are_fresh_per_start_unless_seeded():
    servers = [_fresh_server(), _fresh_server(), _fresh_server(7), _fresh_server(7)]
    try:
        ids = [_first_ids(s) for s in servers]
    finally:
        for s in servers:
            s.stop()
    assert len({i[0] for i in ids[:3]}) == 3 and len({i[2] for i in ids[:3]}) == 3
    assert ids[2] == ids[3]


def _crowd_story(id_seed: int) -> list[tuple[str, str, str]]:
    with start_local("toloka", workers=8, seed=2, oracle=truth_oracle) as mp:
        mp.server.state.id_seed = id_seed
        client = tc.TolokaClient("t", url=mp.url, retries=0)
        pool = make_pool(client, make_project(client).id)
        client.create_tasks([tc.Task(pool_id=pool.id, input_values={"text": f"good {n}"}) for n in range(8)]
                            + [tc.Task(pool_id=pool.id, input_values={"text": "g"}, known_solutions=known("pos"))],
                            allow_defaults=True, open_pool=True)
        mp.advance(2 * 3600)
        return [(a.user_id, a.tasks[0].input_values["text"], json.dumps(a.solutions[0].output_values))
                for a in client.get_assignments(pool_id=pool.id, status="SUBMITTED")]


def test_what_the_crowd_does_never_depends_on_id_values():
    assert _crowd_story(1) == _crowd_story(99)


class _Hook(BaseHTTPRequestHandler):
    got: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        _Hook.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_reports_aggregation_clone_messages_attachments_and_webhooks(market):
    mp, client = market
    receiver = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    project = make_project(client)
    pool = make_pool(client, project.id, overlap=3)
    subs = client.upsert_webhook_subscriptions([{
        "webhook_url": f"http://127.0.0.1:{receiver.server_port}/hook", "event_type": "ASSIGNMENT_SUBMITTED",
        "pool_id": pool.id}])
    sub = subs.items["0"]
    assert client.get_webhook_subscription(sub.id).pool_id == pool.id and not subs.validation_errors
    texts = [f"{'good' if n % 2 else 'bad'} {n}" for n in range(6)]
    client.create_tasks([tc.Task(pool_id=pool.id, input_values={"text": t}) for t in texts]
                        + [tc.Task(pool_id=pool.id, input_values={"text": "good g"}, known_solutions=known("pos"))],
                        allow_defaults=True, open_pool=True)
    mp.advance(6 * 3600)
    submitted = list(client.get_assignments(pool_id=pool.id, status="SUBMITTED"))
    assert submitted
    client.accept_assignment(submitted[0].id, "ok")

    df = client.get_assignments_df(pool.id, status=["APPROVED", "SUBMITTED"],
                                   field=["ASSIGNMENT:assignment_id", "ASSIGNMENT:worker_id", "ASSIGNMENT:status"])
    assert list(df.columns) == ["INPUT:text", "OUTPUT:label", "GOLDEN:label", "ASSIGNMENT:assignment_id",
                                "ASSIGNMENT:worker_id", "ASSIGNMENT:status"]
    assert set(df["ASSIGNMENT:status"]) == {"APPROVED", "SUBMITTED"}
    assert len(df) == sum(len(a.tasks) for a in submitted)
    assert set(df.loc[df["INPUT:text"] == "good g", "GOLDEN:label"]) <= {"pos"}

    op = client.wait_operation(client.aggregate_solutions_by_pool(
        type="DAWID_SKENE", pool_id=pool.id, fields=[{"name": "label"}]))
    agg = {s.task_id: s for s in client.get_aggregated_solutions(op.id)}
    by_text = {t.id: t.input_values["text"] for t in client.get_tasks(pool_id=pool.id)}
    assert agg and all(by_text[k].startswith("good") == (s.output_values["label"] == "pos") for k, s in agg.items())
    task_id = next(iter(agg))
    one = client.aggregate_solutions_by_task(task_id=task_id, pool_id=pool.id, fields=[{"name": "label"}],
                                             answer_weight_skill_id=client.create_skill(name="w").id)
    assert one.task_id == task_id and one.output_values == agg[task_id].output_values

    stats = client.wait_operation(client.get_analytics([
        tc.analytics_request.SubmittedAssignmentsCountPoolAnalytics(subject_id=pool.id),
        tc.analytics_request.CompletionPercentagePoolAnalytics(subject_id=pool.id)]))
    values = {v["request"]["name"]: v["result"] for v in stats.details["value"]}
    assert values["submitted_assignments_count"] == len(submitted) - 1
    assert 0 < values["completion_percentage"]["value"] <= 100

    copy = client.clone_pool(pool.id)
    assert copy.id != pool.id and copy.private_name == pool.private_name and copy.status == tc.Pool.Status.CLOSED
    assert not list(client.get_tasks(pool_id=copy.id))

    thread = client.compose_message_thread(recipients_select_type="DIRECT", recipients_ids=[submitted[0].user_id],
                                           topic={"EN": "Thanks"}, text={"EN": "Well done"}, answerable=True)
    client.reply_message_thread(thread.id, tc.message_thread.MessageThreadReply(text={"EN": "One more thing"}))
    client.add_message_thread_to_folders(thread.id, ["IMPORTANT"])
    [found] = [t for t in client.get_message_threads(folder="IMPORTANT") if t.id == thread.id]
    assert [m.text["EN"] for m in found.messages] == ["One more thing", "Well done"]
    client.remove_message_thread_from_folders(thread.id, ["IMPORTANT"])
    assert thread.id not in {t.id for t in client.get_message_threads(folder="IMPORTANT")}

    assert _Hook.got and all(e["type"] == "ASSIGNMENT_SUBMITTED" and e["pool_id"] == pool.id
                             for body in _Hook.got for e in body["events"])
    client.delete_webhook_subscription(sub.id)
    assert not list(client.get_webhook_subscriptions(pool_id=pool.id))
    receiver.shutdown()


def test_file_answers_are_attachments(market):
    mp, client = market
    project = client.create_project(tc.Project(
        public_name="Upload", public_description="Upload a photo",
        task_spec=tc.project.task_spec.TaskSpec(
            input_spec={"text": fs.StringSpec()}, output_spec={"photo": fs.FileSpec()},
            view_spec=tc.project.view_spec.ClassicViewSpec(script="", markup="<p>{{text}}</p>", styles=""))))
    pool = make_pool(client, project.id, overlap=1)
    client.create_tasks([tc.Task(pool_id=pool.id, input_values={"text": "cat"})], allow_defaults=True, open_pool=True)
    mp.advance(3600)
    [a] = client.get_assignments(pool_id=pool.id)
    att = client.get_attachment(a.solutions[0].output_values["photo"])
    assert att.details.assignment_id == a.id and att.details.user_id == a.user_id and not att._unexpected
    assert [x.id for x in client.get_attachments(assignment_id=a.id)] == [att.id]
    out = io.BytesIO()
    client.download_attachment(att.id, out)
    assert out.getvalue()


def _unexpected(obj, path: str = "") -> list[tuple[str, dict]]:
    """Fields toloka-kit's structures did not expect, anywhere inside ``obj``."""
    if isinstance(obj, BaseTolokaObject):
        found = [(path or type(obj).__name__, obj._unexpected)] if obj._unexpected else []
        return found + [x for a in obj.__attrs_attrs__ for x in _unexpected(getattr(obj, a.name), f"{path}.{a.name}")]
    if isinstance(obj, list | tuple):
        return [x for i, v in enumerate(obj) for x in _unexpected(v, f"{path}[{i}]")]
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in _unexpected(v, f"{path}[{k}]")]
    return []


def test_every_object_fits_toloka_kits_structures(market):
    mp, client = market
    project = make_project(client)
    skill = client.create_skill(name="s")
    training = make_training(client, project.id)
    pool = make_pool(client, project.id, skill_id=skill.id)
    client.create_tasks([tc.Task(pool_id=training.id, input_values={"text": "good"}, known_solutions=known("pos"),
                                 message_on_unknown_solution="good is pos")])
    client.create_tasks([tc.Task(pool_id=pool.id, input_values={"text": f"good {n}"}) for n in range(4)]
                        + [tc.Task(pool_id=pool.id, input_values={"text": "g"}, known_solutions=known("pos"))],
                        allow_defaults=True, open_pool=True)
    client.open_training(training.id)
    mp.advance(3600)
    a = list(client.get_assignments(pool_id=pool.id))
    agg = client.wait_operation(client.aggregate_solutions_by_pool(
        type="WEIGHTED_DYNAMIC_OVERLAP", pool_id=pool.id, answer_weight_skill_id=skill.id, fields=[{"name": "label"}]))
    objects = {
        "project": client.get_project(project.id), "pool": client.get_pool(pool.id), "assignments": a,
        "training": client.get_training(training.id),
        "training work": list(client.get_assignments(pool_id=training.id)),
        "tasks": list(client.get_tasks(pool_id=pool.id)) + list(client.get_tasks(pool_id=training.id)),
        "suites": list(client.get_task_suites(pool_id=pool.id)), "requester": client.get_requester(),
        "skill": client.get_skill(skill.id), "user skills": list(client.get_user_skills()),
        "operations": list(client.get_operations()), "user": client.get_user(a[0].user_id),
        "restriction": client.set_user_restriction(tc.user_restriction.PoolUserRestriction(
            user_id=a[0].user_id, pool_id=pool.id)),
        "bonus": client.create_user_bonus(tc.user_bonus.UserBonus(
            user_id=a[0].user_id, amount=Decimal("0.1"), public_title={"EN": "t"}, public_message={"EN": "m"})),
        "webhooks": client.upsert_webhook_subscriptions([
            {"webhook_url": "http://127.0.0.1:9/x", "event_type": "POOL_CLOSED", "pool_id": pool.id}]),
        "thread": client.compose_message_thread(recipients_select_type="ALL", topic={"EN": "t"}, text={"EN": "x"}),
        "clones": [client.clone_pool(pool.id), client.clone_training(training.id)],
        "aggregated": list(client.get_aggregated_solutions(agg.id)),
    }
    assert {k: _unexpected(v) for k, v in objects.items() if _unexpected(v)} == {}
