"""The configuration reference page (docs/configuration.md), generated from the configuration
model itself (``sep2gw.config``: its msgspec structs, their types, defaults and each key's
``msgspec.Meta`` description), so the page cannot drift from what ``load_config`` accepts.

``scripts/gen_config_reference.py --write`` regenerates the page; ``--check`` (and a test) fails
when the committed page differs from the model.
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import msgspec.inspect as mi

from sep2gw.config import Config
from sep2gw.fleet_config import FleetConfig

__all__ = ["MINIMAL_FILE", "render"]

#: The smallest useful site file; a test loads it, so it stays valid.
MINIMAL_FILE = """\
[server]
url = "https://derms.example.net:8443"
dcap_path = "/dcap"
pin = 111115
profile = "csip-aus"

[tls]
certificate = "certs/device-chain.pem"
key = "certs/device.key"
ca = "certs/serca.pem"

[battery]
driver = "sunspec"
host = "192.0.2.10"

[log]
path = "site.sep2gw"
"""

_PREAMBLE = """\
# Configuration reference

<!-- Generated from sep2gw/config.py by scripts/gen_config_reference.py: edit the model's key
descriptions there, then run `python3 scripts/gen_config_reference.py --write`. -->

`sep2gw run --config site.toml` reads one TOML file. Unknown keys are errors (a misspelt key
silently ignored is how a site runs on defaults); every problem is reported with the key it
concerns. Relative paths are relative to the file's own folder, so a site's configuration
folder can be moved as a whole.

Check a file before running it:

```sh
sep2gw check-config site.toml            # exit 0 only if `run` can start (warnings aside), else 2
sep2gw check-config site.toml --online   # also reach the server (as `probe`) and the battery (as `modbus scan`)
```

`check-config` loads the identity as `run` does and checks what `run` needs: the certificate
chain, key and CA and their agreement, ECDSA P-256, the chain verifying to the CA, validity
windows, the key file's permissions (a warning when group or others can read it), an encrypted
key's password, the PIN's check digit, the battery driver, the log folder, no other gateway
holding the log, and an existing log opening and verifying.

## A minimal file

```toml
{minimal}```
"""


def _unwrap(t: mi.Type) -> tuple[mi.Type, dict[str, Any], str]:
    """The type under its metadata, the metadata's ``extra`` and its description."""
    extra: dict[str, Any] = {}
    description = ""
    while isinstance(t, mi.Metadata):
        extra |= t.extra or {}
        schema = t.extra_json_schema or {}
        description = schema.get("description", description)
        t = t.type
    return t, extra, description


def _declared_literal(cls: type, name: str) -> tuple[str | int | bool | None, ...]:
    """A Literal's values in the order the model declares them (``inspect`` sorts them): the
    canonical names first, a deprecated alias last."""
    hint = typing.get_type_hints(cls, include_extras=True)[name]
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return typing.get_args(hint)


def _type_text(t: mi.Type) -> str:
    match t:
        case mi.StrType():
            return "string"
        case mi.BoolType():
            return "bool"
        case mi.IntType():
            return "integer"
        case mi.FloatType():
            return "number"
        case mi.LiteralType(values=values):
            return ", ".join(f'`"{v}"`' for v in values)
        case mi.ListType(item_type=item):
            return f"list of {_type_text(item)}s"
        case mi.UnionType(types=types):
            return " or ".join(_type_text(x) for x in types if not isinstance(x, mi.NoneType))
        case _:
            raise TypeError(f"the reference cannot show the type {t!r}: add a kind")


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _default(field: mi.Field) -> str:
    if field.required:
        return "required"
    if field.default_factory is not msgspec.NODEFAULT:
        return f"`{_toml(field.default_factory())}`"
    if field.default is None:
        return "none"
    return f"`{_toml(field.default)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section(field: mi.Field) -> list[str]:
    t, _, title = _unwrap(field.type)
    header = f"[{field.encode_name}]"
    state = "required" if field.required else "optional"
    if isinstance(t, mi.UnionType):  # an optional section: ``X | None``
        (t,) = (x for x in t.types if not isinstance(x, mi.NoneType))
    elif isinstance(t, mi.VarTupleType):  # a section given any number of times: ``[[x]]``
        t = t.item_type
        header = f"[[{field.encode_name}]]"
    assert isinstance(t, mi.StructType), field.name
    lines = [f"## `{header}` — {title} ({state})", ""]
    doc = (t.cls.__doc__ or "").strip()
    if doc:  # a section's own notes (a docstring restating the title is left out of the model)
        lines += [" ".join(doc.split()), ""]
    lines += ["| key | type | default | meaning |", "|-----|------|---------|---------|"]
    for key in t.fields:
        kt, extra, meaning = _unwrap(key.type)
        if not meaning:
            raise ValueError(f"{field.encode_name}.{key.encode_name} has no description")
        if isinstance(kt, mi.LiteralType):
            kt = mi.LiteralType(values=_declared_literal(t.cls, key.name))
        kind = extra.get("kind") or _type_text(kt)
        lines.append(
            f"| `{key.encode_name}` | {_cell(kind)} | {_default(key)} | {_cell(meaning)} |"
        )
    return [*lines, ""]


_FLEET_PREAMBLE = """\
# Fleet files (aggregator mode)

A file with `[[sites]]` entries describes a fleet: one process runs one gateway per site under the
aggregator certificate (`sep2gw run --config fleet.toml`, `sep2gw check-config fleet.toml`).
`[server]`, `[tls]` (the aggregator certificate), `[rates]` and `[logging]` are the sections above,
shared by every site; the sections below are the fleet's own. Each site's LFDI is its own
certificate's, else its `lfdi`, else derived from the aggregator certificate's LFDI and the site's
name with the profile's PEN convention (stable and unique per site; decision 0022a); its log is
`<log.dir>/<name>.sep2gw`. Problems name the site: `sites[3].lfdi: ...`.
"""


def _fleet_sections() -> list[str]:
    info = mi.type_info(FleetConfig)
    assert isinstance(info, mi.StructType)
    lines = [_FLEET_PREAMBLE]
    for field in info.fields:
        if field.name not in ("fleet", "log", "sites"):
            continue
        if field.name != "sites":
            lines += [line.replace("## `[", "## fleet `[", 1) for line in _section(field)]
            continue
        t, _, title = _unwrap(field.type)
        assert isinstance(t, mi.ListType) and isinstance(t.item_type, mi.StructType)
        item = mi.Field(
            name="sites",
            encode_name="[sites]",
            type=mi.Metadata(type=t.item_type, extra_json_schema={"description": title}),
            required=True,
        )
        lines += _section(item)
    return lines


def render() -> str:
    """The whole page, as docs/configuration.md must hold it."""
    info = mi.type_info(Config)
    assert isinstance(info, mi.StructType)
    lines = [_PREAMBLE.format(minimal=MINIMAL_FILE)]
    for field in info.fields:
        _, extra, _ = _unwrap(field.type)
        if extra.get("internal"):
            continue
        lines += _section(field)
    lines += _fleet_sections()
    return "\n".join(lines).rstrip("\n") + "\n"
