"""Amazon Mechanical Turk connector (boto3): see ``connector.py`` for the mapping and costs."""

from connectors.mturk.connector import ENDPOINTS, MTurkConnector, request_token

__all__ = ["ENDPOINTS", "MTurkConnector", "request_token"]
