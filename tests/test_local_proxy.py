"""``crowd local serve --provider mturk --proxy-port``: a tool with MTurk's endpoint built in reaches
the local server by the two lines the command prints, and nothing else passes the proxy.

The client here is plain boto3 with the sandbox's ``endpoint_url`` (what amti, Mephisto and psiTurk
do); tests/test_thirdparty_*.py run those tools themselves through the same proxy.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import certifi
import pytest
from botocore.config import Config
from botocore.exceptions import ProxyConnectionError, SSLError
from engine_helpers import CROWD, crowd_env, read_line

from connectors.local.proxy import MTURK_HOSTS, MTurkProxy, ProxyError

SANDBOX = f"https://{MTURK_HOSTS[0]}"
HTML = """<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd">
<HTMLContent><![CDATA[<!DOCTYPE html><html><body><form name="mturk_form" method="post" action="https://www.mturk.com/mturk/externalSubmit">
<input type="hidden" name="assignmentId" value=""><p>Is the sky blue?</p>
<label><input type="radio" name="answer" value="yes"> yes</label>
<label><input type="radio" name="answer" value="no"> no</label>
<input type="submit"></form></body></html>]]></HTMLContent><FrameHeight>400</FrameHeight></HTMLQuestion>"""
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, dict[str, str]]]:
    """``crowd local serve --proxy-port 0`` as a user starts it: the server's URL and the variables
    of the printed ``export`` line. The certificate's folder must be gone once it has stopped."""
    proc = subprocess.Popen([str(CROWD), "local", "serve", "--provider", "mturk", "--port", "0", "--proxy-port", "0",
                             "--workers", "4", "--clock-speed", "60", "--seed", "3"],
                            env=crowd_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = read_line(proc, 60)
        export, caveat = proc.stdout.readline(), proc.stdout.readline()  # printed with the first
        url = re.search(r"local mturk marketplace at (http://127\.0\.0\.1:\d+)", first)
        assert url, f"no URL in {first!r}"
        assert export.startswith("export "), export
        env = dict(pair.split("=", 1) for pair in export.split()[1:])
        assert set(env) == {"HTTPS_PROXY", "AWS_CA_BUNDLE"}, export
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", env["HTTPS_PROXY"]), export
        assert caveat.startswith("#") and "NO_PROXY" in caveat, caveat
        yield url.group(1), env
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(15) == 0, proc.stderr.read()
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert not Path(env["AWS_CA_BUNDLE"]).parent.exists(), "the proxy's certificates outlived the server"


@pytest.fixture
def through_proxy(served, monkeypatch, tmp_path) -> tuple[str, dict[str, str]]:
    """This process's environment as after pasting the export line (and a clean AWS account)."""
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_MTURK", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**served[1], "AWS_ACCESS_KEY_ID": "AKIDLOCALTEST", "AWS_SECRET_ACCESS_KEY": "local-secret",
                        "AWS_CONFIG_FILE": str(tmp_path / "config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials")}.items():
        monkeypatch.setenv(name, value)
    return served


def test_boto3_with_the_sandbox_endpoint_reaches_the_local_server(through_proxy):
    url, env = through_proxy
    sandbox = boto3.client("mturk", region_name="us-east-1", endpoint_url=SANDBOX, config=NO_RETRY)
    hit = sandbox.create_hit(Title="Sky colour via the proxy", Description="d", Keywords="k", Reward="0.05",
                             MaxAssignments=1, LifetimeInSeconds=3600, AssignmentDurationInSeconds=300,
                             Question=HTML)["HIT"]
    assert sandbox.get_account_balance()["AvailableBalance"] == "10000.00"
    # the HIT is on the local server, seen by a client talking to it directly (no proxy for http://)
    direct = boto3.client("mturk", region_name="us-east-1", endpoint_url=url, config=NO_RETRY)
    assert direct.get_hit(HITId=hit["HITId"])["HIT"]["Title"] == "Sky colour via the proxy"
    # production's endpoint (boto3's default for mturk) lands on the same server
    production = boto3.client("mturk", region_name="us-east-1", config=NO_RETRY)
    assert production.meta.endpoint_url == f"https://{MTURK_HOSTS[1]}"
    assert hit["HITId"] in {h["HITId"] for h in production.list_hits()["HITs"]}
    # the certificate is trusted only through AWS_CA_BUNDLE (so this was not Amazon), and the CA that
    # signed it can sign nothing more: its key is gone
    with pytest.raises(SSLError):
        boto3.client("mturk", region_name="us-east-1", endpoint_url=SANDBOX, config=NO_RETRY,
                     verify=certifi.where()).get_account_balance()
    assert sorted(p.name for p in Path(env["AWS_CA_BUNDLE"]).parent.iterdir()) == ["ca.pem", "mturk.key", "mturk.pem"]


def _ask(proxy: str, request: bytes) -> bytes:
    host, port = proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        return conn.recv(4096)


@pytest.mark.parametrize("request_line", [
    b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n",
    b"CONNECT mturk-requester-sandbox.us-east-1.amazonaws.com.evil.example:443 HTTP/1.1\r\n\r\n",
    b"CONNECT mturk-requester-sandbox.us-east-1.amazonaws.com:8443 HTTP/1.1\r\n\r\n",
    b"GET http://mturk-requester-sandbox.us-east-1.amazonaws.com/ HTTP/1.1\r\n\r\n",
])
def test_every_other_host_or_port_is_refused(served, request_line):
    assert _ask(served[1]["HTTPS_PROXY"], request_line).startswith(b"HTTP/1.1 403 ")


def test_another_aws_service_through_the_proxy_is_refused(through_proxy):
    sqs = boto3.client("sqs", region_name="us-east-1", config=NO_RETRY)
    with pytest.raises(ProxyConnectionError):
        sqs.list_queues()


def test_without_openssl_the_proxy_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProxyError, match=r"needs the openssl command.*run without --proxy-port"):
        MTurkProxy("http://127.0.0.1:9")
