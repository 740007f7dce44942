"""Toloka through toloka-kit: see ``connector`` for the mapping and ``forms`` for the widgets."""

from connectors.toloka.connector import TolokaConnector

__all__ = ["TolokaConnector"]
