"""The spec a campaign was launched with, read back from the store (cached per process)."""

from __future__ import annotations

from functools import lru_cache

import yaml

from campaigns.spec.model import CampaignSpec
from campaigns.store.models import Campaign


@lru_cache(maxsize=64)
def _parse(text: str) -> CampaignSpec:
    return CampaignSpec.model_validate(yaml.safe_load(text))


def campaign_spec(campaign: Campaign) -> CampaignSpec:
    return _parse(campaign.spec_yaml)
