"""An HTTPS proxy that answers for MTurk's own hostnames, so tools that hard-code Amazon's endpoint
reach the local MTurk server unmodified.

amti, Mephisto and psiTurk build their boto3 client with an explicit ``endpoint_url`` (the sandbox's
or production's), and an explicit endpoint beats every botocore setting (``AWS_ENDPOINT_URL_MTURK``,
a config file's ``endpoint_url``). What every boto3 program honours is ``HTTPS_PROXY`` and
``AWS_CA_BUNDLE``. So this proxy accepts ``CONNECT`` to the two MTurk hostnames only, completes TLS
itself with a certificate made for them at start (signed by a one-off CA whose key is deleted as
soon as it has signed, so the CA file trusts nothing else), and relays the decrypted requests to the
local server. Every other host is refused: nothing leaves the machine.

toloka-kit needs none of this: ``TolokaClient(url=...)`` takes the local server's URL.

API
---
``start_mturk_proxy(local_url, *, port=0) -> MTurkProxy`` listens on 127.0.0.1 (0: a free port);
the handle has ``.url``, ``.ca_bundle`` (the CA file's path), ``.env()`` (the variables a client's
environment needs), ``.stop()``, and is a context manager. ``ProxyError``: the proxy cannot start
here (no openssl CLI, port taken).

Why the openssl CLI: the ``cryptography`` package is not among our dependencies, and two
certificates per start do not justify adding it.
"""

from __future__ import annotations

import secrets
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

MTURK_HOSTS = ("mturk-requester-sandbox.us-east-1.amazonaws.com", "mturk-requester.us-east-1.amazonaws.com")
IDLE_SECONDS = 300  # a kept-alive client connection nobody uses is closed after this long

__all__ = ["MTURK_HOSTS", "MTurkProxy", "ProxyError", "start_mturk_proxy"]


class ProxyError(RuntimeError):
    """The proxy cannot start on this machine."""


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ProxyError(f"openssl {args[0]} failed: {proc.stderr.strip()[-300:]}")


def make_certificates(folder: Path, hosts: tuple[str, ...] = MTURK_HOSTS) -> tuple[Path, Path, Path]:
    """(CA certificate, host certificate, host key) in ``folder``: a CA made for this start only and a
    server certificate it signs for ``hosts``. The CA's key is deleted once it has signed, so trusting
    the CA file trusts these hosts' certificate and nothing else."""
    if not shutil.which("openssl"):
        raise ProxyError("the MTurk proxy needs the openssl command to make its certificate; install openssl "
                         "(apt-get install openssl, brew install openssl) or run without --proxy-port")
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr, ext = folder / "mturk.pem", folder / "mturk.key", folder / "mturk.csr", folder / "mturk.ext"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-days", "30", "-keyout", str(ca_key), "-out", str(ca),
             "-subj", "/CN=crowdbridge local MTurk proxy CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl("req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={hosts[0]}")
    ext.write_text("subjectAltName=" + ",".join(f"DNS:{h}" for h in hosts) + "\n"
                   "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
                   encoding="utf-8")
    try:
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-days", "30",
                 "-set_serial", str(secrets.randbits(63)), "-extfile", str(ext), "-out", str(cert))
    finally:
        for done in (ca_key, csr, ext):
            done.unlink(missing_ok=True)
    return ca, cert, key


class MTurkProxy:
    """A running proxy: CONNECT to an MTurk hostname reaches the local server; all else is refused."""

    def __init__(self, local_url: str, *, port: int = 0, hosts: tuple[str, ...] = MTURK_HOSTS):
        parts = urlsplit(local_url)
        self.backend = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.hosts = hosts
        self._folder = Path(tempfile.mkdtemp(prefix="crowd-mturk-proxy-"))
        try:
            self.ca_bundle, cert, key = make_certificates(self._folder, hosts)
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.minimum_version = ssl.TLSVersion.TLSv1_2
            self._tls.load_cert_chain(cert, key)
            try:
                self._listener = socket.create_server(("127.0.0.1", port))
            except OSError as exc:
                raise ProxyError(f"cannot listen on 127.0.0.1:{port} for the proxy: {exc.strerror or exc}") from None
        except BaseException:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        threading.Thread(target=self._accept, name="mturk-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a client's environment needs. NO_PROXY keeps the local servers' own http:// URLs off any
        other proxy the environment names (HTTP_PROXY of a CI runner)."""
        return {"HTTPS_PROXY": self.url, "AWS_CA_BUNDLE": str(self.ca_bundle), "NO_PROXY": "127.0.0.1,localhost"}

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._open_lock:
            for conn in list(self._open):
                conn.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> MTurkProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _track(self, *socks: socket.socket, add: bool = True) -> None:
        with self._open_lock:
            for s in socks:
                (self._open.add if add else self._open.discard)(s)

    def _handle(self, conn: socket.socket) -> None:
        self._track(conn)
        try:
            conn.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk or len(head) > 65536:
                    return
                head += chunk
            method, target = (head.split(b"\r\n", 1)[0].split(b" ") + [b"", b""])[:2]
            host, _, port = target.decode("latin-1").rpartition(":")
            if method != b"CONNECT" or host.lower() not in self.hosts or port != "443":
                reason = b"this proxy answers only CONNECT to MTurk's hostnames on port 443 (crowd local serve)\n"
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(reason), reason))
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            tls = self._tls.wrap_socket(conn, server_side=True)
            self._track(tls)
            backend = socket.create_connection(self.backend, timeout=30)
            self._track(backend)
            try:
                self._relay(tls, backend)
            finally:
                self._track(tls, backend, add=False)
                tls.close()
                backend.close()
        except (OSError, ValueError):
            return
        finally:
            self._track(conn, add=False)
            conn.close()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        """Bytes both ways until either side closes, the proxy stops, or the pair sits idle."""
        idle = 0.0
        while not self._stopping.is_set() and idle < IDLE_SECONDS:
            ready, _, _ = select.select([a, b], [], [], 1.0)
            idle = idle + 1.0 if not ready else 0.0
            for src in ready:
                dst = b if src is a else a
                data = src.recv(65536)
                if not data:
                    return
                dst.sendall(data)
                # a TLS socket may hold decrypted bytes select() cannot see: drain them now
                while isinstance(src, ssl.SSLSocket) and src.pending():
                    dst.sendall(src.recv(src.pending()))


def start_mturk_proxy(local_url: str, *, port: int = 0) -> MTurkProxy:
    """A proxy on 127.0.0.1:``port`` (0: a free one) that sends MTurk's traffic to ``local_url``."""
    return MTurkProxy(local_url, port=port)
