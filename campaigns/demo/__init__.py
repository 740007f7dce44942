"""``crowd demo``: a whole campaign on a local marketplace with a simulated crowd.

Starts the local server in-process, launches the example spec from ``campaigns/examples/``
(package data, so an installed wheel has it; the repository's ``examples/`` links there), lets the
crowd work in simulated time between polls, exports, and measures the result against the
simulated truth that only the crowd's oracle knows.
"""
