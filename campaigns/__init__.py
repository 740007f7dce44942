"""crowdbridge's campaign engine: one spec in, a finished, paid, exported campaign out.

The package is a house of rooms, each a subpackage that imports only the rooms below it (checked
by ``make lint``, import-linter contracts in ``pyproject.toml``). From the top:

    cli, demo     the ``crowd`` command and the bundled demo
    reports       status, costs, exports, plots, accuracy against a known truth
    engine        launch, the poll pipeline, moving items between stages, finishing
    adaptive      more work where answers are unsure: follow-up pages, extensions, probes
    stages        a stage's plan, its pages, publishing them, ingesting their answers
    money         approving (rewards and fees), bonuses, the budget, reconciliation
    quality       worker pools, agreement, trust scores and the actions they lead to
    spec          the YAML spec: its model, its loading, the copy stored with a campaign
    store         tables, migrations, keys, crash points, settings, connectors from settings
    errors        the one error a user is shown

Where a HIT is planned: ``stages.plan`` (tasks and pages from the stage graph), published by
``stages.publish``. Where money moves: ``money`` only. Where a worker's standing is decided:
``quality.trust`` scores, ``quality.actions`` acts. Which steps a poll runs: ``engine.pipeline``.
"""
