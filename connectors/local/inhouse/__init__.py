"""A local task server with a simulated team: ``crowd serve``'s app on 127.0.0.1, worked by
annotators who do what a browser does.

``Server(clock=, crowd=, faults=, port=, balance=)`` is what ``connectors.local.start_local("inhouse")``
builds: the real task server (its own SQLite file in a temporary folder, the simulated clock as its
time, ``balance`` as its budget, requester token ``local``) served by uvicorn in a thread, with
request counting and fault injection on the requester API, and the ``crowd.Market`` adapter
(``team.Team``) through which the simulated workers open their invite links and work the pages.
"""

from connectors.local.inhouse.server import Server

__all__ = ["Server"]
