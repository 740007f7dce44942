"""Which connector a campaign talks to: its provider and environment, an endpoint override,
and credentials from the settings (never from the store)."""

from __future__ import annotations

from connectors.base import Connector
from connectors.factory import make_connector


def connector_for(provider: str, environment: str, endpoint: str | None = None) -> Connector:
    options: dict = {}
    if provider == "toloka":
        from campaigns.settings import Settings

        key = Settings().toloka_api_key
        if key is not None:
            options["token"] = key.get_secret_value()
    return make_connector(provider, environment, endpoint, **options)
