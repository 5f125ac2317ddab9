"""The one adapter between our TOML files (site configuration, scenarios) and msgspec's decoder.

msgspec's TOML errors are plain text; the operator needs the key they concern first
(``actions[1].modes.opModExpLimW: unknown key (misspelt?)``). Reading key names out of that text
depends on the wording of a msgspec release, so it happens here only, and
``tests/sep2gw/test_tomlfile.py`` fails loudly if an installed release words them otherwise.
The bytes are decoded as UTF-8 here, before msgspec sees them: how a decoder reports bytes that
are not UTF-8 changed between msgspec releases (0.23 wraps the ``UnicodeDecodeError``).
"""

from __future__ import annotations

import re
from typing import Final, TypeVar

import msgspec

__all__ = ["TomlProblem", "decode_toml"]

T = TypeVar("T")

_PATH_IN_MESSAGE: Final = re.compile(r" - at `\$(?P<key>[^`]*)`$")


class TomlProblem(ValueError):
    """One thing wrong with a TOML document, worded for the operator and led by its key."""


def decode_toml(data: bytes | str, type: type[T]) -> T:
    """Decode ``data`` into ``type``; raises :class:`TomlProblem` naming what is wrong."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TomlProblem(
                f"not UTF-8 text (byte {exc.start}: {exc.object[exc.start]:#04x})"
            ) from None
    try:
        return msgspec.toml.decode(data, type=type)
    except msgspec.ValidationError as exc:
        raise TomlProblem(_name_the_key(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise TomlProblem(f"not valid TOML: {exc}") from None


def _name_the_key(message: str) -> str:
    """msgspec's message, led by the dotted key it concerns (``actions[1].modes.opModExpLimW``)."""
    match = _PATH_IN_MESSAGE.search(message)
    key = match["key"].lstrip(".") if match else ""
    what = message[: match.start()] if match else message
    prefix = f"{key}." if key else ""
    if what.startswith("Object missing required field"):
        return f"{prefix}{what.split('`')[1]}: required key is missing"
    if what.startswith("Object contains unknown field"):
        return f"{prefix}{what.split('`')[1]}: unknown key (misspelt?)"
    if what.startswith("Invalid value") and "kind" in what:
        return f"{prefix}kind: {what.removeprefix('Invalid value ')} is not an action kind"
    if what.startswith("Invalid enum value"):
        return f"{key}: {what.removeprefix('Invalid enum value ')} is not one of the allowed values"
    return f"{key}: {what[0].lower()}{what[1:]}" if key else what
