"""A marketplace endpoint that accepts connections and never answers: every client has connect and
read timeouts, a failing call is retried within a bounded time (``CROWD_RETRY_DEADLINE_S`` plus one
last attempt), and the user sees on stderr, at the default log level, what is being retried, then
one line naming the endpoint, exit 2. A raw socket server, so nothing in the loop is simulated."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import tenacity
from engine_helpers import crowd, write_campaign

from connectors.base import ProviderUnreachable
from connectors.retry import RetryPolicy, call_with_retry


@contextmanager
def silent_server() -> Iterator[str]:
    """http://127.0.0.1:PORT of a server that accepts every connection, reads, and never replies."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])  # kept open, never answered
            except TimeoutError:
                continue
            except OSError:
                return

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        t.join(5)
        for c in held:
            c.close()
        sock.close()


@pytest.mark.parametrize("provider", ["mturk", "toloka"])
def test_launch_against_a_hanging_endpoint_gives_up_with_one_line_and_exit_2(tmp_path, provider):
    spec = write_campaign(tmp_path / "c", provider)
    with silent_server() as url:
        # 1 s read timeout and a 6 s deadline; the subprocess timeout is only a guard against a hang
        r = crowd("launch", str(spec), "--endpoint", url, db=f"sqlite:///{tmp_path / 'crowd.db'}", timeout=60,
                  CROWD_READ_TIMEOUT_S="1", CROWD_CONNECT_TIMEOUT_S="1", CROWD_RETRY_DEADLINE_S="6")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and url in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    notices = [line for line in lines if "WARNING" in line and "retrying in" in line]
    assert notices and all(url in n for n in notices), r.stderr  # what is retried, where, at the default level


def test_the_deadline_stops_retries_before_the_attempts_run_out(monkeypatch):
    """With attempts to spare, the deadline alone ends the loop: no wait runs past it."""
    clock = [0.0]
    waits: list[float] = []

    def failing() -> None:
        raise TimeoutError("no answer")

    def sleep(s: float) -> None:
        waits.append(s)
        clock[0] += s

    policy = RetryPolicy(max_attempts=1000, initial_s=4.0, max_s=4.0, jitter=False, deadline_s=10.0,
                         endpoint="http://example.invalid")
    monkeypatch.setattr(tenacity.time, "monotonic", lambda: clock[0])  # tenacity's clock follows the sleeps
    with pytest.raises(ProviderUnreachable) as caught:
        call_with_retry(failing, classify=lambda e: (True, None), policy=policy, provider="mturk",
                        operation="ListHITs", sleep=sleep)
    assert waits == [4.0, 4.0, 2.0]  # the last wait is cut to the deadline, then no more attempts
    assert "http://example.invalid" in str(caught.value)
