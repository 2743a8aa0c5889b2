"""The project's environment-variable prefixes, and the check that catches misspelt names.

pydantic-settings reads only the variables it knows, so ``WINEQ_MAX_BACH_ROWS=64``
would silently leave the default in place.  Each settings class calls
:func:`reject_unknown` once, when it is read at start-up: a variable under its prefix
that names no field stops the start with the closest valid name.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Any

SERVING_PREFIX = "WINEQ_"
TRAINING_PREFIX = "WINEQ_TRAIN_"
# A prefix nested in another one belongs to its own settings class, not the outer one.
PREFIXES = (SERVING_PREFIX, TRAINING_PREFIX)


class UnknownSettingError(ValueError):
    """An environment variable under a project prefix names no setting."""


class InvalidSettingError(ValueError):
    """An environment variable under a project prefix holds a value its setting refuses."""


def invalid_setting(prefix: str, errors: Iterable[Mapping[str, Any]]) -> InvalidSettingError:
    """One line naming each refused variable, its value and why (from pydantic's errors)."""
    problems = "; ".join(
        f"{prefix}{str(error['loc'][0]).upper()}={error.get('input')!r}: {error['msg']}"
        for error in errors
    )
    return InvalidSettingError(f"invalid setting: {problems}")


def _owner(name: str) -> str | None:
    """The longest project prefix ``name`` starts with."""
    matching = [prefix for prefix in PREFIXES if name.startswith(prefix)]
    return max(matching, key=len) if matching else None


def reject_unknown(
    prefix: str, fields: Iterable[str], environ: Mapping[str, str] | None = None
) -> None:
    """Raise :class:`UnknownSettingError` for a variable under ``prefix`` that is no field."""
    known = {f"{prefix}{field}".upper() for field in fields}
    env = os.environ if environ is None else environ
    unknown = sorted(
        name for name in env if _owner(name.upper()) == prefix and name.upper() not in known
    )
    if not unknown:
        return
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{name}{hint}")
    raise UnknownSettingError(
        f"unknown setting(s) under {prefix}: {', '.join(problems)}; "
        f"valid names: {', '.join(sorted(known))}"
    )
