"""Which connector a campaign talks to: its provider and environment, an endpoint override,
and credentials from the settings (never from the store)."""

from __future__ import annotations

from connectors.base import Connector
from connectors.factory import make_connector
from connectors.retry import RetryPolicy


def connector_for(provider: str, environment: str, endpoint: str | None = None) -> Connector:
    from campaigns.settings import Settings

    settings = Settings()
    options: dict = {"retry": RetryPolicy(connect_timeout_s=settings.connect_timeout_s,
                                          read_timeout_s=settings.read_timeout_s,
                                          deadline_s=settings.retry_deadline_s)}
    if provider == "toloka":
        key = settings.toloka_api_key
        if key is not None:
            options["token"] = key.get_secret_value()
    return make_connector(provider, environment, endpoint, **options)
