"""The textual forms a list or mapping setting may take in the environment.

pydantic-settings reads complex settings from the environment as JSON only, so ``SEQSERVE_API_KEYS=k1``
failed with a JSON error. These accept the JSON form and the plain one people type in a shell:
``k1,k2`` for a list and ``m4-hourly=1,sst2-bilstm=2`` for a mapping. Error messages never quote the
value: a list may hold API keys.
"""

from __future__ import annotations

import json


def parse_list(text: str) -> list[object]:
    """``["a", "b"]`` (JSON) or ``a,b`` (items stripped of blanks around them); blank text: empty list."""
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"starts with '[' but is not a valid JSON list ({exc.msg} at char {exc.pos})"
            ) from None
        if not isinstance(value, list):
            raise ValueError("is not a JSON list")
        return value
    items = [item.strip() for item in stripped.split(",")]
    for index, item in enumerate(items):
        if not item:
            raise ValueError(f"item {index} of the comma-separated list is empty")
    return list(items)


def parse_mapping(text: str) -> dict[str, object]:
    """``{"a": 1}`` (JSON) or ``a=1,b=2``; blank text is an empty mapping."""
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"starts with '{{' but is not a valid JSON object ({exc.msg} at char {exc.pos})"
            ) from None
        if not isinstance(value, dict):
            raise ValueError("is not a JSON object")
        return value
    mapping: dict[str, object] = {}
    for index, pair in enumerate(stripped.split(",")):
        name, sep, version = (part.strip() for part in pair.partition("="))
        if not sep or not name or not version:
            raise ValueError(f"pair {index} is not of the form name=value")
        if name in mapping:
            raise ValueError(f"name {name!r} is given twice")
        mapping[name] = version
    return mapping
