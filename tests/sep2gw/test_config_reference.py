"""Issue 20 point 6: the configuration reference (docs/configuration.md) is generated from the
configuration model, so it cannot drift: every key of every section is on the page with its type,
default and meaning, and the page is exactly what the generator writes."""

from __future__ import annotations

import subprocess
import sys
import types
import typing
from pathlib import Path

import msgspec
import pytest

from sep2gw import config_reference
from sep2gw.config import Config, parse_config

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"


def test_the_committed_page_is_what_the_model_generates() -> None:
    assert PAGE.read_text(encoding="utf-8") == config_reference.render(), (
        "docs/configuration.md is stale: run python3 scripts/gen_config_reference.py --write"
    )


def test_every_key_of_the_model_is_documented_with_its_default() -> None:
    page = config_reference.render()
    for section in msgspec.structs.fields(Config):
        if section.name == "base_dir":
            continue
        struct, header = section.type, f"[{section.name}]"
        if typing.get_origin(struct) is typing.Annotated:
            struct = typing.get_args(struct)[0]
        if typing.get_origin(struct) is tuple:  # any number of them: ``[[ders]]``
            struct, header = typing.get_args(struct)[0], f"[[{section.name}]]"
        elif typing.get_origin(struct) in (typing.Union, types.UnionType):  # ``X | None``
            (struct,) = (t for t in typing.get_args(struct) if t is not type(None))
        assert f"## `{header}`" in page
        for key in msgspec.structs.fields(struct):
            assert f"| `{key.name}` |" in page, f"{section.name}.{key.name} is not on the page"
    assert "| `request_timeout_s` | seconds > 0 | `30` |" in page
    assert "| `max_bytes` | bytes ≥ 1 MiB (1048576) | none |" in page
    assert "base_dir" not in page


class Bare(msgspec.Struct, kw_only=True, frozen=True):
    undocumented: int = 1


class WithBare(msgspec.Struct, kw_only=True, frozen=True):
    bare: Bare = Bare()


def test_a_key_without_a_description_fails_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_reference, "Config", WithBare)
    with pytest.raises(ValueError, match="bare.undocumented has no description"):
        config_reference.render()


def test_the_minimal_file_on_the_page_loads(tmp_path: Path) -> None:
    config = parse_config(
        config_reference.MINIMAL_FILE, source="minimal", base_dir=tmp_path, check_files=False
    )
    assert config.server.profile == "csip-aus"


def test_the_script_checks_and_writes(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "gen_config_reference.py"
    check = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    bad = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
