"""A throwaway PostgreSQL cluster for tests and CI (standard library only, so CI can run it first).

    python tests/pg.py start          # prints "<url> <dir>"; the server keeps running
    python tests/pg.py stop <dir>     # stops it and removes the directory

PostgreSQL refuses to run as root, so as root the cluster belongs to a system user
(``crowdpg``, created if missing). It listens on 127.0.0.1 only, on a free port, with trust
auth and fsync off: fast, and disposable by design.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

PG_USER = "crowdpg"


class PgUnavailable(RuntimeError):
    """No PostgreSQL binaries here, or not allowed to run them; the message says which."""


@dataclass
class Cluster:
    url: str  # postgresql://postgres@127.0.0.1:<port>/postgres
    dir: Path

    def stop(self) -> None:
        stop(self.dir)


def _bin(name: str) -> str:
    packaged = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version, reverse=True)
    found = shutil.which(name) or next(iter(packaged), None)
    if not found:
        raise PgUnavailable(f"no PostgreSQL server binary {name!r} on PATH or in /usr/lib/postgresql/*/bin")
    return found


def _version(path: str) -> tuple[int, ...]:
    """/usr/lib/postgresql/15/bin/initdb -> (15,): newest installed version first."""
    part = Path(path).parts[-3]
    return tuple(int(x) for x in part.split(".") if x.isdigit())


def _as_owner() -> list[str]:
    """Command prefix that runs a command as the cluster's owner (a non-root user)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                               PG_USER], capture_output=True, text=True)
        if made.returncode != 0 and "already exists" not in made.stderr:
            why = made.stderr.strip()
            raise PgUnavailable(f"running as root and cannot create user {PG_USER}: {why}") from None
    if not shutil.which("runuser"):
        raise PgUnavailable("running as root and no runuser to drop privileges for PostgreSQL")
    return ["runuser", "-u", PG_USER, "--"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PgUnavailable(f"{what} failed: {' | '.join(tail)}")


def start(parent: str | None = None) -> Cluster:
    """initdb + start a cluster in a new directory; raise ``PgUnavailable`` with the reason."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    prefix = _as_owner()
    root = Path(tempfile.mkdtemp(prefix="crowd-pg-", dir=parent))
    root.chmod(0o755)
    if prefix:
        owner = pwd.getpwnam(PG_USER)
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data = root / "data"
    try:
        _run(prefix + [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C",
                       "--no-sync"], "initdb")
        for _attempt in range(3):  # the free port may be taken between probing and binding
            port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
            try:
                _run(prefix + [pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o", opts,
                               "start"], "pg_ctl start")
                return Cluster(url=f"postgresql://postgres@127.0.0.1:{port}/postgres", dir=root)
            except PgUnavailable:
                if "could not bind" not in (root / "log").read_text(errors="replace"):
                    raise
        raise PgUnavailable("pg_ctl start failed: no free port")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def stop(root: str | Path) -> None:
    """Stop the cluster in ``root`` (if running) and delete it."""
    root = Path(root)
    if (root / "data" / "postmaster.pid").exists():
        subprocess.run(_as_owner() + [_bin("pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w",
                                      "stop"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str, prefix: str = "crowd_test") -> str:
    """A new empty database on ``server_url``'s server (needs CREATEDB); returns its URL."""
    import psycopg  # only the test process needs it, not `pg.py start`

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_database(server_url, name)


def drop_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(_libpq(_with_database(url, "postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq(url: str) -> str:
    """psycopg wants plain postgresql://, not SQLAlchemy's postgresql+psycopg://."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"] and len(argv) <= 2:
        try:
            cluster = start(argv[1] if len(argv) == 2 else None)
        except PgUnavailable as exc:
            print(f"PostgreSQL unavailable: {exc}", file=sys.stderr)
            return 1
        print(cluster.url, cluster.dir)
        return 0
    if argv[:1] == ["stop"] and len(argv) == 2:
        stop(argv[1])
        return 0
    print("usage: pg.py start [PARENT_DIR] | pg.py stop DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
