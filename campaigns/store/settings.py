"""Process configuration from the environment (``CROWD_*``), read once per command.

Secrets are ``SecretStr`` so they print as ``**********`` in reprs, logs and tracebacks.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./crowd.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CROWD_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    # Toloka's own tools read TOLOKA_API_KEY, so accept it as well as CROWD_TOLOKA_API_KEY.
    toloka_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CROWD_TOLOKA_API_KEY", "TOLOKA_API_KEY"))
    mturk_endpoint: str | None = None  # overrides the environment's MTurk endpoint
    # MTurk's pace (connectors.mturk.connector.RATE / CONCURRENCY): requests per second for the account
    # (the ceiling its AIMD limiter halves on throttling and climbs back to) and calls in flight.
    # Unset: 5/s and 8 on production and the sandbox, 1000/s and 32 on the local server.
    mturk_rate: float | None = Field(default=None, gt=0)
    mturk_concurrency: int | None = Field(default=None, ge=1, le=256)
    toloka_endpoint: str | None = None  # overrides the environment's Toloka endpoint
    inhouse_endpoint: str | None = None  # your `crowd serve`, e.g. https://tasks.example.org
    # The task server's requester token (its CROWD_SERVE_REQUESTER_TOKEN).
    inhouse_token: SecretStr | None = None
    # Prolific: the API token (Prolific's own examples read PROLIFIC_API_TOKEN), an endpoint override,
    # the workspace to use (default: the account's first) and the address participants reach the task
    # server at (default: CROWD_INHOUSE_ENDPOINT). The task server itself is CROWD_INHOUSE_ENDPOINT/_TOKEN.
    prolific_api_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CROWD_PROLIFIC_API_TOKEN", "PROLIFIC_API_TOKEN"))
    prolific_endpoint: str | None = None
    prolific_workspace: str | None = None
    prolific_public_url: str | None = None
    log_level: str = "WARNING"
    # Pages per poll shard (campaigns.stages.shards): a bigger stage is split into shards, each with its own
    # cursor and lease, so several pollers poll it at once; fixed on a stage's first poll.
    poll_shard_pages: int = Field(default=2500, ge=1)
    # Patience with a marketplace (connectors.retry.RetryPolicy): a call that keeps failing gives up
    # (exit 2) at most retry_deadline_s + connect_timeout_s + read_timeout_s after it began.
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=20.0, gt=0)
    retry_deadline_s: float = Field(default=60.0, ge=0)
    # Key of the hash that pseudonymises worker ids in exports (default: per campaign).
    pseudonym_key: str | None = None
