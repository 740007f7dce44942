"""The ``inhouse`` provider: crowdbridge's own task server (``crowd serve``), over its requester API."""

from connectors.inhouse.connector import InhouseConnector

__all__ = ["InhouseConnector"]
