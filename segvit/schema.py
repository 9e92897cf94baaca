"""Strict loading of YAML mappings into frozen dataclasses (experiment and dataset files).

An unknown key, a missing key or a value of the wrong type fails with the file and the key
path in the message, before anything runs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from segvit.errors import SegvitError


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases (`*name`): none of these small files needs one, and nested
    aliases expand exponentially (a few hundred bytes can ask for gigabytes)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise SegvitError(f"line {mark.line + 1}: an alias (*name); write the value out")
        return super().compose_node(parent, index)


def read_yaml(path: Path, what: str) -> Any:
    """The parsed content of a YAML file; a missing, malformed or non-UTF-8 file, or one
    using aliases, is one line."""
    try:
        return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_NoAliasLoader)  # noqa: S506
    except SegvitError as err:
        raise SegvitError(f"{path}: {err}") from None
    except UnicodeDecodeError as err:
        raise SegvitError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except FileNotFoundError:
        raise SegvitError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise SegvitError(f"{path}: a folder, expected a {what}") from None
    except yaml.YAMLError as err:
        raise SegvitError(f"{path}: not valid YAML ({err})") from None


def from_mapping(cls: type, data: Any, *, source: str, where: str = "") -> Any:
    """Build dataclass `cls` from `data`, checking every key and type; errors name `source`."""
    if not isinstance(data, dict):
        raise SegvitError(f"{source}: {where or 'top level'}: expected a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        key = sorted(unknown)[0]
        raise SegvitError(
            f"{source}: {where}{key}: unknown key (expected one of: {', '.join(fields)})"
        )
    values = {}
    for name, f in fields.items():
        if name not in data:
            no_default = f.default is dataclasses.MISSING
            if no_default and f.default_factory is dataclasses.MISSING:
                raise SegvitError(f"{source}: {where}{name}: missing")
            continue
        values[name] = _convert(data[name], hints[name], source, f"{where}{name}")
    return cls(**values)


def _convert(value: Any, hint: Any, source: str, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, source=source, where=f"{where}.")
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _convert(value, option, source, where)
            except SegvitError:
                continue
        return _wrong(value, hint, source, where)
    if origin is Literal:
        if value in args:
            return value
        raise SegvitError(f"{source}: {where}: {value!r} is not one of {list(args)}")
    if origin is list:
        if not isinstance(value, list):
            return _wrong(value, hint, source, where)
        return [_convert(v, args[0], source, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            return _wrong(value, hint, source, where)
        return {str(k): _convert(v, args[1], source, f"{where}.{k}") for k, v in value.items()}
    if hint is type(None):
        return value if value is None else _wrong(value, hint, source, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    return _wrong(value, hint, source, where)


def _wrong(value: Any, hint: Any, source: str, where: str) -> typing.NoReturn:
    expected = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
    raise SegvitError(f"{source}: {where}: expected {expected}, got {value!r}")
