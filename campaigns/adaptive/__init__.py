"""Adaptive work: asking for more where the answers do not settle an item or a worker yet.

``overlap`` publishes follow-up pages for unsettled items and carries out extra assignments;
``probation`` sends golden-only probe pages to suspects in a lane of their own. Both spend within
the budget. Imports ``stages`` and below.
"""
