"""The ``crowd`` command: a thin Typer layer over library functions a script can call.

Exit codes: 0 ok; 1 user error (one line on stderr, no traceback); 2 provider unreachable
after retries; 3 a reconcile that left differences. Read commands take ``--json`` (one JSON
object on stdout). ``app`` holds the frame; ``campaign`` and ``demo`` register their commands
on it when imported here.
"""

from campaigns.cli import campaign, demo, serve  # noqa: F401  (registers the commands)
from campaigns.cli.app import app

__all__ = ["app"]
