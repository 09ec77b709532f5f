"""Write airlock tools in Python.

A tool is a typed function, exported with `@tool`:

    from airlock_sdk import tool, note

    @tool
    def hello(name: str) -> dict:
        \"\"\"Greets someone by name.\"\"\"
        note("greeted", name)
        return {"greeting": f"Hello, {name}!"}

`airlock build` compiles the module (`app.py`) with `componentize-py` into
a component of world `airlock:host/http-tool` (host-api/wit). Its `run`
export parses the caller's JSON, checks it against the function's type
hints (unknown, missing and mistyped fields are refused before the function
runs), calls the function with the fields as keyword arguments and returns
its result as JSON; `describe` returns the name, the docstring's first
paragraph and the JSON Schema derived from the type hints (or the explicit
`input_schema=`).

A tool fails by raising `ToolError("what went wrong")`: the message is the
run's error. Any other exception fails the run with its type and message.

The host interfaces are wrapped by `note`, `token` and `request_approval`;
`airlock_sdk.http` sends HTTP requests through `wasi:http`, where the runner
decides each one against the profile's `[net] allow` list and injects
upstream credentials (the tool never holds them).

What it defends against: a tool function running on input it did not
declare (the input is checked first), and a failure inside the tool
escaping as a trap with no message (every exception becomes the run's
error text).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Dict, Optional, TypeVar, Union, overload

from . import _schema
from ._schema import InputError

# The bindings componentize-py generates from the WIT world. A component
# contains only the modules imported while it is built (the interpreter is
# snapshotted after importing the app), so they are imported here, at the
# top, never inside a function. Outside a component (the SDK's own tests on
# CPython) they do not exist, and the helpers that need them are not called.
try:
    from componentize_py_types import Err as _Err
    from wit_world.imports import approval as _approval
    from wit_world.imports import credentials as _credentials
    from wit_world.imports import evidence as _evidence
except ImportError:
    _Err = None  # type: ignore[assignment, misc]
    _approval = _credentials = _evidence = None  # type: ignore[assignment]

__all__ = ["tool", "note", "token", "request_approval", "ToolError", "InputError"]

F = TypeVar("F", bound=Callable[..., Any])


class ToolError(Exception):
    """Raise it to fail the run with this message (the caller sees it)."""


def note(key: str, value: str) -> None:
    """Records a `note` event with `key` and `value` in the run's evidence log.

    Raises `ToolError` when the note is too large or the evidence log cannot
    be written (the runner then aborts the run).
    """
    try:
        _evidence.note(key, value)
    except _Err as e:
        raise ToolError(f"note {key!r} was not recorded: {e.value}") from None


def token(audience: str) -> str:
    """A signed, short-lived token for calling `audience`, scoped to this run.

    Raises `ToolError` when the profile grants no credentials for that
    audience. Upstream API secrets are never handed to the tool: the
    runner injects them into matching outbound requests instead.
    """
    try:
        return _credentials.token(audience)
    except _Err as e:
        raise ToolError(f"no token for {audience!r}: {e.value}") from None


def request_approval(action: str, detail: str) -> bool:
    """Asks a human to approve `action` (with `detail` shown to them).

    Blocks until they decide or the request expires. Returns True when
    approved, False when denied or expired. Raises `ToolError` when the
    profile has no approval rule for tool requests.
    """
    try:
        return _approval.request(action, detail) == _approval.Decision.APPROVED
    except _Err as e:
        raise ToolError(f"approval for {action!r} could not be requested: {e.value}") from None


class _Tool:
    """A registered tool: the function and what `describe` says about it."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str,
        description: str,
        schema: Dict[str, Any],
    ) -> None:
        self.fn = fn
        self.name = name
        self.description = description
        self.schema = schema
        self.params, self.var_keyword = _schema.params_of(fn)

    def run(self, text: str) -> str:
        """The `run` export's logic: JSON in, the function, JSON out.

        Raises `ToolError` with the message the caller sees.
        """
        try:
            document = json.loads(text)
        except ValueError as e:
            raise ToolError(f"input is not valid JSON for {self.name}: {e}") from None
        try:
            kwargs = _schema.bind(self.params, self.var_keyword, document)
        except InputError as e:
            raise ToolError(f"input is not valid JSON for {self.name}: {e}") from None
        try:
            result = self.fn(**kwargs)
        except ToolError:
            raise
        except Exception as e:  # every failure becomes the run's error text
            raise ToolError(f"{self.name} failed: {type(e).__name__}: {e}") from None
        try:
            return _schema.to_json(result)
        except (TypeError, ValueError) as e:
            raise ToolError(f"output of {self.name} could not be serialized as JSON: {e}") from None


_registered: Optional[_Tool] = None


def _export(module_name: str) -> None:
    """Makes the calling module export the `http-tool` world.

    componentize-py looks for a class named `WitWorld` in the app module;
    `@tool` defines it there, so the tool author writes only the function.
    """

    import wit_world
    from componentize_py_types import Err

    try:
        from wit_world.imports.airlock_host_types import ToolInfo
    except ImportError:  # a world whose only `types` is airlock:host's
        from wit_world.imports.types import ToolInfo  # type: ignore[no-redef]

    class WitWorld(wit_world.WitWorld):  # type: ignore[misc, name-defined]
        """The component's exports: `run` and `describe` of the registered tool."""

        def run(self, input: str) -> str:
            if _registered is None:
                raise Err("no @tool function was registered in this component")
            try:
                return _registered.run(input)
            except ToolError as e:
                raise Err(str(e)) from None

        def describe(self) -> Any:
            if _registered is None:
                return ToolInfo("", "no @tool function was registered", "{}")
            return ToolInfo(
                _registered.name,
                _registered.description,
                json.dumps(_registered.schema),
            )

    module = sys.modules.get(module_name)
    if module is not None and not hasattr(module, "WitWorld"):
        setattr(module, "WitWorld", WitWorld)


def _define(
    fn: F,
    name: Optional[str],
    description: Optional[str],
    input_schema: Optional[Dict[str, Any]],
) -> F:
    global _registered
    if _registered is not None:
        raise TypeError(
            f"@tool {fn.__name__}: this component already exports tool {_registered.name!r} "
            "(one tool per component)"
        )
    tool_name = name or fn.__name__.replace("_", "-")
    text = description or _schema.description_of(fn)
    if not text:
        raise TypeError(
            f"@tool {tool_name}: give it a docstring or description= "
            "(agents read it to decide whether to call the tool)"
        )
    schema = input_schema if input_schema is not None else _schema.input_schema(fn)
    _registered = _Tool(fn, tool_name, text, schema)
    if _in_component():
        _export(fn.__module__)
    return fn


def _in_component() -> bool:
    """Whether the generated bindings are there (inside componentize-py)."""
    return _evidence is not None


@overload
def tool(fn: F) -> F: ...


@overload
def tool(
    *,
    name: Optional[str] = None,
    description: Optional[str] = None,
    input_schema: Optional[Dict[str, Any]] = None,
) -> Callable[[F], F]: ...


def tool(
    fn: Optional[F] = None,
    *,
    name: Optional[str] = None,
    description: Optional[str] = None,
    input_schema: Optional[Dict[str, Any]] = None,
) -> Union[F, Callable[[F], F]]:
    """Exports `fn` as this component's tool.

    `name` defaults to the function name with `_` as `-`; `description` to
    the docstring's first paragraph; `input_schema` to the JSON Schema of
    the function's keyword parameters, derived from their type hints (a
    parameter without a default, and not `Optional`, is required; unknown
    fields are refused unless the function takes `**kwargs`). An explicit
    `input_schema` replaces what `describe` reports; the type hints still
    decide what `run` accepts.
    """
    if fn is not None:
        return _define(fn, name, description, input_schema)

    def wrap(f: F) -> F:
        return _define(f, name, description, input_schema)

    return wrap
