"""Input schemas from type hints, and checking an input against them.

Pure Python (no WebAssembly bindings), so it is tested on CPython.

What it defends against: a tool function called with input the caller
made up. The `run` export parses the caller's JSON and checks it against
the function's parameters *before* calling it: unknown fields, missing
required fields and values of the wrong JSON type are refused with a
message naming the field, the way the Rust SDK's serde deserialization
refuses them. A value that is not JSON never reaches the function.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from typing import Any, Callable, Dict, List, Optional, Tuple

# A JSON Schema, as a JSON-compatible dict.
Schema = Dict[str, Any]


class InputError(ValueError):
    """The input does not fit the tool's parameters (names the field)."""


def _is_optional(hint: Any) -> Tuple[bool, Any]:
    """`Optional[T]` / `T | None` -> (True, T); anything else -> (False, hint)."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)):
            if len(args) == 1:
                return True, args[0]
            return True, typing.Union[tuple(args)]
    return False, hint


def schema_of(hint: Any) -> Schema:
    """The JSON Schema of one type hint.

    Supported: `str`, `int`, `float`, `bool`, `None`, `list[T]`,
    `dict[str, T]`, `Optional[T]` / `T | None`, unions, `Literal[...]`,
    `Any` (or no hint: any JSON value) and dataclasses (an object with
    their fields). Anything else is a `TypeError` at import time, naming
    the hint, so a tool never describes a schema it does not check.
    """
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    optional, inner = _is_optional(hint)
    if optional:
        return {"anyOf": [schema_of(inner), {"type": "null"}]}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is type(None) or hint is None:
        return {"type": "null"}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is typing.Union or origin is types.UnionType:
        return {"anyOf": [schema_of(a) for a in args]}
    if hint is list or origin is list:
        return {"type": "array", "items": schema_of(args[0])} if args else {"type": "array"}
    if hint is dict or origin is dict:
        if args and args[0] is not str:
            raise TypeError(f"dict keys must be str in a tool's input (got {hint!r})")
        schema: Schema = {"type": "object"}
        if args:
            schema["additionalProperties"] = schema_of(args[1])
        return schema
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint)
        props = {f.name: schema_of(hints.get(f.name, Any)) for f in dataclasses.fields(hint)}
        required = [
            f.name
            for f in dataclasses.fields(hint)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        return {
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": False,
        }
    raise TypeError(
        f"type hint {hint!r} has no JSON Schema; use str, int, float, bool, list[...], "
        "dict[str, ...], Optional[...], Literal[...], a dataclass, or pass input_schema= to @tool"
    )


@dataclasses.dataclass(frozen=True)
class Param:
    """One keyword parameter of a tool function."""

    name: str
    hint: Any
    required: bool


def params_of(fn: Callable[..., Any]) -> Tuple[List[Param], bool]:
    """The function's keyword parameters, and whether it takes `**kwargs`.

    Positional-only parameters and `*args` are refused (`TypeError`): a tool
    is called with the input object's fields as keyword arguments.
    """
    hints = typing.get_type_hints(fn)
    params: List[Param] = []
    var_keyword = False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_keyword = True
            continue
        if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL):
            raise TypeError(
                f"tool {fn.__name__}: parameter {p.name!r} cannot be passed by keyword; "
                "a tool is called with the input object's fields as keyword arguments"
            )
        hint = hints.get(p.name, inspect.Parameter.empty)
        optional, _ = _is_optional(hint)
        params.append(Param(p.name, hint, p.default is inspect.Parameter.empty and not optional))
    return params, var_keyword


def input_schema(fn: Callable[..., Any]) -> Schema:
    """The JSON Schema of the input object `fn` accepts (from its type hints)."""
    params, var_keyword = params_of(fn)
    schema: Schema = {
        "type": "object",
        "properties": {p.name: schema_of(p.hint) for p in params},
        "required": [p.name for p in params if p.required],
    }
    if not var_keyword:
        schema["additionalProperties"] = False
    return schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def convert(hint: Any, value: Any, where: str) -> Any:
    """Checks `value` (parsed JSON) against `hint`; returns the value to pass.

    Dataclass hints get an instance built from the object. Raises
    `InputError` naming `where` (e.g. `field "name"`) on a mismatch.
    """
    if hint is inspect.Parameter.empty or hint is Any:
        return value
    optional, inner = _is_optional(hint)
    if optional:
        return None if value is None else convert(inner, value, where)
    got = _json_type(value)

    def wrong(expected: str) -> InputError:
        return InputError(f"{where}: expected {expected}, got {got}")

    if hint is str:
        if got != "string":
            raise wrong("a string")
        return value
    if hint is bool:
        if got != "boolean":
            raise wrong("true or false")
        return value
    if hint is int:
        if got != "integer":
            raise wrong("an integer")
        return value
    if hint is float:
        if got not in ("integer", "number"):
            raise wrong("a number")
        return float(value)
    if hint is type(None) or hint is None:
        if got != "null":
            raise wrong("null")
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        if value not in args or any(a == value and type(a) is not type(value) for a in args):
            raise InputError(f"{where}: expected one of {json.dumps(list(args))}")
        return value
    if origin is typing.Union or origin is types.UnionType:
        for option in args:
            try:
                return convert(option, value, where)
            except InputError:
                continue
        raise InputError(f"{where}: does not match any of {hint!r}")
    if hint is list or origin is list:
        if got != "array":
            raise wrong("an array")
        if not args:
            return value
        return [convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if hint is dict or origin is dict:
        if got != "object":
            raise wrong("an object")
        if not args:
            return value
        return {k: convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if got != "object":
            raise wrong("an object")
        hints = typing.get_type_hints(hint)
        fields = {f.name: f for f in dataclasses.fields(hint)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise InputError(f"{where}: unknown field {unknown[0]!r}")
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = convert(hints.get(name, Any), value[name], f"{where}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputError(f"{where}: missing field {name!r}")
        return hint(**kwargs)
    return value


def bind(params: List[Param], var_keyword: bool, document: Any) -> Dict[str, Any]:
    """The keyword arguments for a tool call from its parsed input document."""
    if not isinstance(document, dict):
        raise InputError(f"expected a JSON object, got {_json_type(document)}")
    known = {p.name for p in params}
    if not var_keyword:
        unknown = sorted(set(document) - known)
        if unknown:
            raise InputError(f"unknown field {unknown[0]!r}")
    kwargs: Dict[str, Any] = {}
    for p in params:
        if p.name in document:
            kwargs[p.name] = convert(p.hint, document[p.name], f"field {p.name!r}")
        elif p.required:
            raise InputError(f"missing field {p.name!r}")
    for name, value in document.items():
        if name not in known:
            kwargs[name] = value
    return kwargs


def to_json(value: Any) -> str:
    """Serializes a tool's return value (dataclasses become objects)."""

    def default(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    return json.dumps(value, default=default, ensure_ascii=False, allow_nan=False)


def description_of(fn: Callable[..., Any]) -> Optional[str]:
    """The first paragraph of the function's docstring, on one line."""
    doc = inspect.getdoc(fn)
    if not doc:
        return None
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(first.split())
