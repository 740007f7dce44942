"""Build a connector from (provider, environment, endpoint): the one place that knows the classes."""

from __future__ import annotations

from connectors.base import Connector

DEFAULT_LOCAL = {"mturk": "http://127.0.0.1:8765", "toloka": "http://127.0.0.1:8766", "inhouse": "http://127.0.0.1:8767",
                 "prolific": "http://127.0.0.1:8768"}


def make_connector(provider: str, environment: str = "local", endpoint_url: str | None = None,
                   **options) -> Connector:
    """``endpoint_url`` overrides the environment's endpoint (e.g. a local server on another port)."""
    if provider == "mturk":
        from connectors.mturk import MTurkConnector

        return MTurkConnector(environment=environment, endpoint_url=endpoint_url, **options)
    if provider == "toloka":
        from connectors.toloka import TolokaConnector

        return TolokaConnector(environment=environment, endpoint_url=endpoint_url, **options)
    if provider == "inhouse":
        from connectors.inhouse import InhouseConnector

        return InhouseConnector(environment=environment, endpoint_url=endpoint_url, **options)
    if provider == "prolific":
        from connectors.prolific import ProlificConnector

        return ProlificConnector(environment=environment, endpoint_url=endpoint_url, **options)
    raise ValueError(f"unknown provider {provider!r} (expected mturk, toloka, inhouse or prolific)")
