"""Prolific: participants recruited and paid by Prolific, pages served by crowdbridge's task server."""

from connectors.prolific.connector import ProlificConnector

__all__ = ["ProlificConnector"]
