"""What the MTurk tests share: a plain boto3 client for a local MTurk server, an HTMLQuestion around
an HTML page, the two-radio crowd-form QUESTION for tests to which the page does not matter, a wait
for servers that run on their own clock, and the ``mturk``/``raw`` client fixtures. One copy, so
every test talks to the server alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config

HTML_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
FORM = (
    '<!DOCTYPE html><html><head><script src="https://assets.crowd.aws/crowd-html-elements.js"></script>'
    '</head><body><crowd-form><crowd-radio-group>'
    '<crowd-radio-button name="a" value="a">A</crowd-radio-button>'
    '<crowd-radio-button name="b" value="b">B</crowd-radio-button>'
    "</crowd-radio-group></crowd-form></body></html>"
)
ONE_TRY = {"total_max_attempts": 1}  # ``retries=ONE_TRY``: a refusal is the answer, not a retry


def client(url: str, **config: Any):
    """Plain boto3 on the local server at ``url``; keywords go to botocore's Config, e.g.
    ``parameter_validation=False`` so the server's own validation answers, or ``retries=ONE_TRY``."""
    return boto3.client("mturk", endpoint_url=url, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local", config=Config(**config) if config else None)


def html_question(html: str, frame_height: int | None = 600) -> str:
    """``html`` as MTurk's HTMLQuestion (the page unescaped, in CDATA); ``frame_height=None`` leaves
    out the FrameHeight MTurk requires, to see it refused."""
    height = "" if frame_height is None else f"<FrameHeight>{frame_height}</FrameHeight>"
    return f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent><![CDATA[{html}]]></HTMLContent>{height}</HTMLQuestion>'


QUESTION = html_question(FORM)


# Fixtures on the using module's own ``mp`` (its crowd differs per module); a module takes them with
# ``mturk, raw = mturk_fixture, raw_fixture``, since pytest finds fixtures among a module's names.
@pytest.fixture(name="mturk")
def mturk_fixture(mp):
    """boto3 as users run it."""
    return client(mp.url)


@pytest.fixture(name="raw")
def raw_fixture(mp):
    """A client that sends whatever it is given, so the server's own validation is what answers."""
    return client(mp.url, parameter_validation=False, retries=ONE_TRY)


def wait_until(predicate: Callable[[], Any], seconds: float, every: float = 0.2) -> Any:
    """The first true value of ``predicate``, asked every ``every`` seconds of wall time, for a
    server whose crowd works on its own clock; AssertionError after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")
