"""Which connector a campaign talks to: its provider and environment, an endpoint override,
and credentials from the settings (never from the store)."""

from __future__ import annotations

from connectors.base import Connector
from connectors.factory import make_connector
from connectors.retry import RetryPolicy


def check_endpoint(endpoint: str) -> str:
    """An endpoint must be an http(s) URL with a host and a valid port: one line otherwise."""
    from urllib.parse import urlsplit

    from campaigns.errors import CrowdError

    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CrowdError(f"endpoint {endpoint!r} is not an http:// or https:// URL (e.g. http://127.0.0.1:8765)")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise CrowdError(f"endpoint {endpoint!r}: the port must be 0-65535") from None
    return endpoint


def connector_for(provider: str, environment: str, endpoint: str | None = None) -> Connector:
    """``endpoint`` (the spec's ``endpoint_url``) else ``CROWD_<PROVIDER>_ENDPOINT`` else the environment's."""
    from campaigns.store.settings import Settings

    settings = Settings()
    endpoint = endpoint or getattr(settings, f"{provider}_endpoint", None)
    if endpoint is not None:
        check_endpoint(endpoint)
    options: dict = {"retry": RetryPolicy(connect_timeout_s=settings.connect_timeout_s,
                                          read_timeout_s=settings.read_timeout_s,
                                          deadline_s=settings.retry_deadline_s)}
    key = {"toloka": settings.toloka_api_key, "inhouse": settings.inhouse_token,
           "prolific": settings.prolific_api_token}.get(provider)
    if key is not None:
        options["token"] = key.get_secret_value()
    if provider == "mturk":
        options.update({k: v for k, v in (("rate", settings.mturk_rate),
                                          ("max_workers", settings.mturk_concurrency)) if v is not None})
    if provider == "prolific":  # participants are sent to the task server: CROWD_INHOUSE_*
        if settings.inhouse_endpoint:
            options["taskserver_url"] = check_endpoint(settings.inhouse_endpoint)
        if settings.inhouse_token is not None:
            options["taskserver_token"] = settings.inhouse_token.get_secret_value()
        options["workspace_id"] = settings.prolific_workspace
        options["public_url"] = settings.prolific_public_url
    return make_connector(provider, environment, endpoint, **options)
