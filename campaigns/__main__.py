"""python -m campaigns: the crowd CLI."""

from campaigns.cli import app

app()
