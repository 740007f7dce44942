"""Money: every place it moves or is held back.

``review`` approves or rejects and books the reward and fee of each assignment; ``bonuses`` pays
wage top-ups and trust tiers (so it reads ``quality.trust``); ``budget`` is spent, committed and
the guard before every publish; ``item_costs`` shares booked money out per item; ``reconcile``
compares the ledger with what the marketplace holds. Every call that moves money is recorded
before it is made and settled from the marketplace on a replay. Imports ``quality`` and below.
"""
