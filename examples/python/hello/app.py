"""`hello`: the smallest airlock tool, in Python.

Input `{"name": "Ada"}`, output `{"greeting": "Hello, Ada!"}`; records a
`greeted` note in the run's evidence log. The same tool as examples/hello
(Rust) and examples/js/hello, under the same profile.
"""

from airlock_sdk import note, tool


@tool
def hello(name: str) -> dict:
    """Greets someone by name."""
    note("greeted", name)
    return {"greeting": f"Hello, {name}!"}
