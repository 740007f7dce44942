"""The task server's configuration, from the environment (``CROWD_SERVE_*``) or ``crowd serve``'s flags.

The requester token is a ``SecretStr``: it prints as ``**********`` in reprs, logs and tracebacks,
and the server compares it in constant time, never stores it.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./crowd-serve.db"


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CROWD_SERVE_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    # What the requester API and the ops view accept as `Authorization: Bearer <token>`.
    requester_token: SecretStr | None = None
    # The address workers reach (behind a reverse proxy: the public https:// URL); invite links use it.
    public_url: str = "http://127.0.0.1:8780"
    host: str = "127.0.0.1"
    port: int = Field(default=8780, ge=0, le=65535)
    # Money the requester may spend here (rewards of submitted and approved work plus bonuses); None: no limit.
    budget: Decimal | None = Field(default=None, ge=0)
    currency: str = "USD"
    max_body_bytes: int = Field(default=2_000_000, gt=0)  # larger request bodies get 413 unread
    session_hours: float = Field(default=12.0, gt=0)
    login_attempts_per_minute: int = Field(default=10, ge=1)  # per client address, for invite and ops logins
    # Prolific participants (lanes served as studies): the server checks each arriving session and
    # completes it when its page is in, with the workspace's API token (never logged or stored).
    prolific_url: str = "https://api.prolific.com"
    prolific_token: SecretStr | None = None
    # Cookies get `Secure` when the public URL is https (behind a TLS-terminating proxy).

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")
