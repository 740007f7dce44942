"""Quality: who may work, and how much each worker is trusted.

``pools`` keeps pool membership, screening and the lanes a stage's pages go to; ``labels`` fits
the stage's labels for agreement; ``trust`` scores every worker from golden answers, agreement,
speed and screening; ``actions`` carries out what the policy decides (block, unblock, grant,
revoke), each a recorded action; ``workers`` is what an operator does by hand. Imports ``spec``
and ``store``.
"""
