"""The campaign engine's user errors: one line a person can act on, never a traceback.

The CLI catches ``CrowdError``, prints ``str(error)`` and exits with ``error.exit_code``.
Other packages keep their own families (``decomposition.errors.InputError``,
``connectors.base.ConnectorError``, ``payouts.errors.PayoutsError``).
"""

from __future__ import annotations


class CrowdError(Exception):
    """Base of every user-facing campaign error: a one-line message, exit code 1."""

    exit_code = 1


class SpecError(CrowdError):
    """A campaign spec or item file that cannot be used; the message names ``file:line``."""
