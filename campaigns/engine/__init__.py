"""The engine: launching, polling, moving items on, finishing; it names no task kind.

``launch`` plans, prices, checks and publishes the first stage (``replan`` redoes an untouched
plan); ``poll`` takes each open stage's lease and runs ``pipeline``: the ``cursor`` fetches what
is new, then the ``steps`` (one module each) keep it, review, score, pay and ask for more;
``advance`` moves the items of a per-item stage graph to their next stage, and ``finish`` closes
stages and stores their results. Imports every room below it.
"""
