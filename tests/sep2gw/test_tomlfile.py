"""The TOML adapter: what an operator reads when a configuration or scenario file is wrong.

These pin the wording of the installed msgspec's errors that the adapter reads key names out of:
a release that words them otherwise fails here, not as a vague message on a site."""

from __future__ import annotations

from typing import Literal

import msgspec
import pytest

from sep2gw.tomlfile import TomlProblem, decode_toml


class Inner(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    limit_w: int
    mode: Literal["hold", "follow"] = "hold"


class Outer(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    items: list[Inner] = []


def problem(text: str | bytes) -> str:
    with pytest.raises(TomlProblem) as caught:
        decode_toml(text, Outer)
    return str(caught.value)


def test_a_missing_key_is_named_with_its_path() -> None:
    assert problem('name = "x"\n[[items]]\nmode = "hold"\n') == "items[0].limit_w: required key is missing"


def test_an_unknown_key_is_named_with_its_path() -> None:
    assert problem('name = "x"\n[[items]]\nlimit_w = 1\nlimt = 2\n') == (
        "items[0].limt: unknown key (misspelt?)"
    )


def test_a_value_outside_the_allowed_ones_is_named() -> None:
    assert problem('name = "x"\n[[items]]\nlimit_w = 1\nmode = "x"\n') == (
        "items[0].mode: 'x' is not one of the allowed values"
    )


def test_a_wrong_type_is_led_by_its_key() -> None:
    assert problem('name = 3\n') == "name: expected `str`, got `int`"


def test_bytes_that_are_not_utf_8_name_the_byte() -> None:
    assert problem(b"\xff\xfename = 'x'\n") == "not UTF-8 text (byte 0: 0xff)"


def test_text_that_is_not_toml_says_so() -> None:
    assert problem("[name\n").startswith("not valid TOML: ")


def test_a_good_document_decodes() -> None:
    assert decode_toml(b'name = "x"\n[[items]]\nlimit_w = 5\n', Outer) == Outer(
        name="x", items=[Inner(limit_w=5)]
    )
