"""Local MTurk-compatible requester service (AWS JSON 1.1) with a simulated crowd.

``Server`` is what ``connectors.local.start_local("mturk")`` runs; plain boto3 reaches it with
``endpoint_url=mp.url``, ``region_name="us-east-1"`` and any credentials.
"""

from connectors.local.mturk.server import Server

__all__ = ["Server"]
