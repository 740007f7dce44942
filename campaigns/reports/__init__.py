"""Reports: what ops and scripts read, never what decides.

``status`` (stages, pages, review) and costs (spent, committed, forecast, per stage and item),
``export`` (TRL preference pairs, JSONL, SFT, audit), ``plot`` (spend over time), ``accuracy``
(against a simulated truth, for the demo and benchmarks). Imports ``engine`` and below.
"""
