"""The spec: what the user wrote, validated, and its stored copy.

``model`` is the pydantic model of the YAML file (the kind's stages come from its stage graph),
``loading`` reads a spec or an items file into one clear error per bad line, and ``stored`` gives
back the spec a campaign was launched with. May import ``store`` (for the stored copy).
"""
