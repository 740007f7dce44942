"""The spec a campaign was launched with, read back from the store (cached per process)."""

from __future__ import annotations

from functools import lru_cache

import yaml

from campaigns.models import Campaign
from campaigns.spec import CampaignSpec


@lru_cache(maxsize=64)
def _parse(text: str) -> CampaignSpec:
    return CampaignSpec.model_validate(yaml.safe_load(text))


def campaign_spec(campaign: Campaign) -> CampaignSpec:
    return _parse(campaign.spec_yaml)
