"""Turn a bad configuration into one line that names the variable and the form it expects.

``python -m service`` with a mistyped or misspelt ``SEQSERVE_*`` variable used to print a pydantic
traceback of twenty lines. :func:`load_settings` prints a single line instead, such as::

    seqserve: configuration error: SEQSERVE_PORT='abc': expected an integer from 0 to 65535 (...)

and exits with status 2 (the usual status for a usage error). Values of secret settings are never printed.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import typing
from collections.abc import Mapping

import annotated_types
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError

from service.config import Settings

PREFIX = "SEQSERVE_"
EXIT_USAGE = 2
_SECRET_FIELDS = frozenset({"api_keys"})
_FORMS = {
    "model_versions": 'a JSON object {"m4-hourly": 1} or name=version pairs m4-hourly=1,sst2-bilstm=2',
    "api_keys": 'comma-separated keys k1,k2 or a JSON list ["k1", "k2"], none blank',
    "cors_allow_origins": "comma-separated origins https://a.example,https://b.example or a JSON list",
}


class ConfigurationError(Exception):
    """A configuration problem, already worded for a person."""


def variable(field: str) -> str:
    return PREFIX + field.upper()


def expected_form(field: str) -> str:
    """A short description of the values a setting accepts, from its type and constraints."""
    if field in _FORMS:
        return _FORMS[field]
    info: FieldInfo = Settings.model_fields[field]
    annotation = info.annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(str(arg) for arg in args)
    if annotation is bool:
        return "true or false"
    if annotation is int or annotation is float:
        noun = "an integer" if annotation is int else "a number"
        return noun + _bounds(info)
    if type(None) in args:
        return "a path, or unset"
    return "a path" if annotation is not None and "Path" in str(annotation) else "a string"


def _bounds(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            parts.append(f">= {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Le):
            parts.append(f"<= {item.le}")
        elif isinstance(item, annotated_types.Lt):
            parts.append(f"< {item.lt}")
    return " " + " and ".join(parts) if parts else ""


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``SEQSERVE_*`` names that match no setting (pydantic-settings would silently ignore them)."""
    known = {variable(name) for name in Settings.model_fields}
    return sorted(name for name in environ if name.upper().startswith(PREFIX) and name.upper() not in known)


def describe(exc: ValidationError | SettingsError, environ: Mapping[str, str]) -> str:
    """One line for the first problem of a failed Settings() (the rest follow once it is fixed)."""
    if isinstance(exc, SettingsError):
        match = re.search(r'field "(\w+)"', str(exc))
        field = match.group(1) if match else ""
        reason = str(exc.__cause__ or exc)
    else:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        # pydantic prefixes a validator's own message with "Value error, "; the line says it already.
        reason = error["msg"].removeprefix("Value error, ")
        if len(error["loc"]) > 1:
            reason = f"item {'.'.join(str(part) for part in error['loc'][1:])}: {reason}"
    if field not in Settings.model_fields:
        return f"invalid configuration: {reason}"
    name = variable(field)
    shown = _shown_value(field, environ)
    return f"{name}{shown}: {reason}; expected {expected_form(field)}"


def _shown_value(field: str, environ: Mapping[str, str]) -> str:
    raw = next((value for key, value in environ.items() if key.upper() == variable(field)), None)
    if raw is None:
        return ""
    if field in _SECRET_FIELDS:
        return "=<hidden>"
    return "=" + repr(raw if len(raw) <= 80 else raw[:77] + "...")


def settings_or_error() -> Settings:
    """Settings from the process environment, or :class:`ConfigurationError` with a one-line explanation."""
    environ = dict(os.environ)
    unknown = unknown_variables(environ)
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(
            name.upper(), [variable(f) for f in Settings.model_fields], n=1, cutoff=0.8
        )
        hint = f"; did you mean {close[0]}?" if close else "; the settings are listed in service/config.py"
        raise ConfigurationError(f"{name} is not a seqserve setting{hint}")
    try:
        return Settings()
    except (ValidationError, SettingsError) as exc:
        raise ConfigurationError(describe(exc, environ)) from None


def load_settings() -> Settings:
    """Settings from the process environment; on a bad configuration print one line and exit with 2."""
    try:
        return settings_or_error()
    except ConfigurationError as exc:
        print(f"seqserve: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USAGE) from None
