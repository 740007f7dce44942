"""crowdbridge's own task server (``crowd serve``): a marketplace for the team you recruit yourself.

One ASGI process (FastAPI, Jinja2 autoescaped, uvicorn) with its own database. Two faces:
- the requester API (``api``: JSON, bearer token), which ``connectors.inhouse`` speaks;
- the worker pages (``pages``: HTML forms from the neutral widgets, ``render``), reached through an
  invite link (``team``), a screening page, and a read-only ops view (``ops``).

Rooms, top to bottom: ``app`` (assembles), ``api`` / ``pages`` / ``ops`` (the faces), ``render`` /
``forms`` (widgets to form controls and back), ``queue`` (who gets which page, reservations),
``market`` (batches, pages, reviews, bonuses, pools: the requester's operations), ``security``,
``team``, ``schemas``, ``db``, ``models``, ``settings``. It imports nothing of campaigns: the ops
view gets crowdbridge's own figures (spend, trust) through the small ``OpsSource`` protocol.
"""
