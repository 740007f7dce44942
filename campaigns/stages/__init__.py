"""Stages: a stage's plan, its pages, publishing them, keeping their answers.

``plan`` designs a stage's tasks and pages from the campaign's stage graph and task kind (where a
HIT is planned), with its shape and price; ``pages`` writes them and describes them to a
connector; ``publish`` puts them on the marketplace, each once, under the budget guard, in waves;
``ingest`` keeps what a fetch brought. Imports ``money`` (the budget guard) and below.
"""
