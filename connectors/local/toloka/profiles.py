"""Toloker profiles for the simulated crowd, and how a pool's ``filter`` selects on them.

Toloka filters on three kinds of facts: what the Toloker wrote in the profile (``profile``:
gender, country, citizenship, education, adult_allowed, date_of_birth, city, languages,
verified), what the platform measures about the connection and device (``computed``: client
type, region by phone / IP, device, OS and browser with their versions) and skills. Every key
toloka-kit's ``toloka.client.filter`` can express is modelled here, drawn per worker from the
crowd's seed (so the same ``Crowd`` always has the same Tolokers) and consistent with the
worker's country, so a filter selects the simulated workers a real pool's filter would.

Regions are ids of Toloka's region list (https://toloka.ai/docs/api/regions). A region filter
also accepts an ISO country code in place of the id (our own connector sends those).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.local.crowd import SimWorker

# country -> (region id, [city ids], {language besides English: share of Tolokers there who list it})
_GEO: dict[str, tuple[int, list[int], dict[str, float]]] = {
    "US": (84, [202, 87, 200], {"ES": 0.2, "DE": 0.05, "FR": 0.05}),
    "IN": (994, [10558, 10552], {"HI": 0.7}),
    "GB": (102, [10393, 21125], {"FR": 0.1, "DE": 0.1}),
    "CA": (95, [10118, 21127], {"FR": 0.4}),
    "DE": (96, [177, 99], {"DE": 1.0}),
    "PH": (10108, [10112], {"TL": 0.7}),
}
_NATIVE_FIRST = {"DE"}  # countries whose Tolokers list the local language first
# toloka-kit's Languages(verified=True) expands to these skills at value 100
VERIFIED_LANGUAGE_SKILLS = {"EN": "26366", "DE": "26377", "FR": "26711", "ES": "32346"}
_DEVICES = [  # (device, client, os family, (os major range), user agent type, user agent families)
    ("PERSONAL_COMPUTER", "BROWSER", "WINDOWS", (7, 11), "BROWSER", ["CHROME", "FIREFOX", "EDGE"]),
    ("PERSONAL_COMPUTER", "BROWSER", "OS_X", (10, 14), "BROWSER", ["SAFARI", "CHROME"]),
    ("PERSONAL_COMPUTER", "BROWSER", "LINUX", (5, 6), "BROWSER", ["FIREFOX", "CHROMIUM"]),
    ("SMARTPHONE", "TOLOKA_APP", "ANDROID", (9, 14), "OTHER", ["OTHER"]),
    ("SMARTPHONE", "BROWSER", "IOS", (14, 17), "MOBILE_BROWSER", ["MOBILE_SAFARI"]),
    ("TABLET", "BROWSER", "ANDROID", (9, 13), "MOBILE_BROWSER", ["CHROME_MOBILE"]),
]
REGION_KEYS = {"region_by_phone": "country_by_phone", "region_by_ip": "country_by_ip", "city": "country"}


def worker_profile(worker: SimWorker, seed: int) -> dict[str, Any]:
    """Every filterable fact about one simulated Toloker (keys as in Toloka's filter JSON), plus
    ``_skills`` (system skills such as verified languages) and ``_country_of`` (region -> country)."""
    rng = random.Random(f"toloka-profile:{seed}:{worker.worker_id}")
    region, cities, local = _GEO.get(worker.country, (84, [202], {}))
    languages = ["EN"] + [lang for lang, share in local.items() if rng.random() < share]
    if worker.country in _NATIVE_FIRST:
        languages.reverse()
    device, client, os_family, (lo, hi), ua_type, ua_families = rng.choice(_DEVICES)
    os_major, os_minor = rng.randint(lo, hi), rng.randint(0, 9)
    ua_major, ua_minor = rng.randint(90, 120), rng.randint(0, 9)
    travelled = rng.random() < 0.1  # some connect from abroad (VPN, travel): IP region differs
    ip_country = rng.choice(sorted(_GEO)) if travelled else worker.country
    born = datetime(rng.randint(1960, 2004), rng.randint(1, 12), rng.randint(1, 28), tzinfo=UTC)
    verified_langs = [lang for lang in languages if lang in VERIFIED_LANGUAGE_SKILLS and rng.random() < 0.5]
    return {
        "gender": rng.choice(["MALE", "FEMALE"]),
        "country": worker.country,
        "citizenship": worker.country if rng.random() < 0.9 else rng.choice(sorted(_GEO)),
        "education": rng.choice(["BASIC", "MIDDLE", "MIDDLE", "HIGH", "HIGH"]),
        "adult_allowed": rng.random() < 0.7,
        "date_of_birth": int(born.timestamp()),
        "city": rng.choice(cities),
        "languages": languages,
        "verified": rng.random() < 0.8,
        "client_type": client,
        "region_by_phone": region,
        "region_by_ip": _GEO.get(ip_country, (region,))[0],
        "device_category": device,
        "os_family": os_family,
        "os_version": float(f"{os_major}.{os_minor}"),
        "os_version_major": os_major,
        "os_version_minor": os_minor,
        "os_version_bugfix": rng.randint(0, 5),
        "user_agent_type": ua_type,
        "user_agent_family": rng.choice(ua_families),
        "user_agent_version": float(f"{ua_major}.{ua_minor}"),
        "user_agent_version_major": ua_major,
        "user_agent_version_minor": ua_minor,
        "user_agent_version_bugfix": rng.randint(0, 99),
        "_skills": {VERIFIED_LANGUAGE_SKILLS[lang]: Decimal(100) for lang in verified_langs},
        "_country_of": {"region_by_phone": worker.country, "region_by_ip": ip_country, "city": worker.country},
    }


def user_metadata(user_id: str, profile: dict[str, Any]) -> dict[str, Any]:
    """``GET /user-metadata/{id}``: toloka-kit's ``User``."""
    return {
        "id": user_id,
        "country": profile["country"],
        "languages": profile["languages"],
        "adult_allowed": profile["adult_allowed"],
        "attributes": {
            "country_by_phone": profile["_country_of"]["region_by_phone"],
            "country_by_ip": profile["_country_of"]["region_by_ip"],
            **{
                k: profile[k]
                for k in (
                    "client_type",
                    "user_agent_type",
                    "device_category",
                    "os_family",
                    "os_version",
                    "os_version_major",
                    "os_version_minor",
                    "os_version_bugfix",
                )
            },
        },
    }


def condition_holds(node: dict[str, Any], profile: dict[str, Any], skill: Any) -> bool:
    """One leaf of a pool filter. ``skill`` is the worker's value of ``node["key"]`` for skill
    conditions (None when the worker has none). Keys the crowd does not model pass."""
    operator = node.get("operator", "EQ")
    value = node.get("value")
    if node.get("category") == "skill":
        return compare(skill, operator, value)
    key = node.get("key")
    if key not in profile:
        return True
    have = profile[key]
    if isinstance(have, list):  # languages: a Toloker speaks several
        wanted = value if isinstance(value, list) else [value]
        hit = any(str(w).upper() in have for w in wanted)
        return hit if operator in ("IN", "EQ") else not hit if operator in ("NOT_IN", "NE") else False
    if operator in ("IN", "NOT_IN"):
        wanted = value if isinstance(value, list) else [value]
        hit = any(_same(key, have, w, profile) for w in wanted)
        return hit if operator == "IN" else not hit
    if operator in ("EQ", "NE") and key in REGION_KEYS:
        hit = _same(key, have, value, profile)
        return hit if operator == "EQ" else not hit
    return compare(have, operator, value)


def _same(key: str, have: Any, wanted: Any, profile: dict[str, Any]) -> bool:
    if key in REGION_KEYS and isinstance(wanted, str) and not wanted.isdigit():
        return profile["_country_of"][key].upper() == wanted.upper()
    return compare(have, "EQ", wanted)


def compare(have: Any, operator: str, value: Any) -> bool:
    if operator == "EQ":
        return _num(have) == _num(value)
    if operator == "NE":
        return _num(have) != _num(value)
    if have is None or value is None:
        return False
    a, b = _num(have), _num(value)
    if type(a) is not type(b):
        return False
    return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}.get(operator, False)


def _num(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    try:
        return Decimal(str(v))
    except (ArithmeticError, InvalidOperation, ValueError):
        return str(v).upper()
