"""The steps of a stage's poll, one module each, all with one signature: ``run(r: StageRun)``.

Each module says why the step exists and names its crash point (``CHECKPOINT``, reached after
the step's work is committed), so a test can kill a poll between any two steps. The order they
run in is ``engine.pipeline.STEPS``; adding a step is one module here and one line there.
"""
