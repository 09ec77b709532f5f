"""`{{name}}`: an airlock tool. Input {"name": "Ada"}, output
{"greeting": "Hello, Ada!"}; records a `greeted` note in the run's evidence.
"""

from airlock_sdk import note, tool


@tool(name="{{name}}")
def greet(name: str) -> dict:
    """Greets someone by name."""
    note("greeted", name)
    return {"greeting": f"Hello, {name}!"}
