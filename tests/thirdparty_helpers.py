"""What the third-party-client tests share: the clients' code, and a way to reach the local MTurk
server from a client that hard-codes Amazon's endpoint.

amti, Mephisto and psiTurk each build their boto3 client with an explicit ``endpoint_url`` (the
sandbox's or production's), and an explicit endpoint beats every botocore setting
(``AWS_ENDPOINT_URL_MTURK``, ``endpoint_url`` in a config file). What they all honour, as every
boto3 program does, is ``HTTPS_PROXY`` and ``AWS_CA_BUNDLE``. So ``mturk_proxy`` runs the product's
proxy (``connectors.local.proxy``, what ``crowd local serve --proxy-port`` starts): it answers for
the two MTurk hostnames with a certificate made at its start and relays the decrypted requests to
the local server, so the clients run their own code, endpoint included, and reach the local
marketplace instead of Amazon. Any other host is refused, so nothing leaves the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from connectors.local.proxy import MTURK_HOSTS, ProxyError, start_mturk_proxy

SANDBOX_ENDPOINT = f"https://{MTURK_HOSTS[0]}"
CACHE = Path(os.environ.get("CROWD_THIRDPARTY_CACHE", Path.home() / ".cache" / "crowdbridge-thirdparty"))
PIP = [sys.executable, "-m", "pip"]


def installed(requirements: list[str], name: str) -> tuple[Path | None, str]:
    """``requirements`` installed with ``pip --no-deps --target`` into a cache dir named ``name``
    (outside the repository, reused across runs): (path, "") or (None, why it could not be had).
    --no-deps because these packages pin dependencies years old; the tests use our venv's own
    boto3/botocore and add only the few modules the clients import that the venv lacks."""
    target, wanted = CACHE / name, "\n".join(requirements)
    if (target / ".complete").exists() and (target / ".complete").read_text(encoding="utf-8") == wanted:
        return target, ""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    proc = subprocess.run([*PIP, "install", "--quiet", "--no-deps", "--disable-pip-version-check", "--target",
                           str(target), *requirements], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        return None, f"pip install --no-deps {' '.join(requirements)} failed: {proc.stderr.strip()[-300:]}"
    (target / ".complete").write_text(wanted, encoding="utf-8")
    return target, ""


@contextmanager
def mturk_proxy(local_url: str) -> Iterator[dict[str, str] | None]:
    """Environment variables that send every boto3 client's MTurk traffic (sandbox or production
    endpoint) to the local server at ``local_url``; None when the proxy cannot start here (no openssl)."""
    try:
        proxy = start_mturk_proxy(local_url)
    except ProxyError:
        yield None
        return
    with proxy:
        yield proxy.env()


def aws_env(tmp: Path) -> dict[str, str]:
    """AWS settings of a clean account: fake keys, and no profile or config file of this machine's user."""
    return {"AWS_ACCESS_KEY_ID": "AKIDLOCALTEST", "AWS_SECRET_ACCESS_KEY": "local-secret",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials")}


@contextmanager
def task_page(html: str) -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    """A requester's own task page on this machine, for ExternalQuestion HITs: yields its URL and the
    query of every request it got (MTurk appends assignmentId, hitId, workerId and turkSubmitTo)."""
    seen: list[dict[str, list[str]]] = []
    body = html.encode("utf-8")

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            seen.append(parse_qs(urlparse(self.path).query))
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/task", seen
    finally:
        server.shutdown()
        server.server_close()
