"""`read-file`: a test guest in Python. Reads the text file at `path` (a
guest path) and returns its size and first line; a refused or missing file
fails the run with the OS error. The language tests run it against a
read-only mount and outside every mount.
"""

from airlock_sdk import tool


@tool(name="read-file")
def read_file(path: str) -> dict:
    """Reads a text file and returns its size in bytes and its first line."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.splitlines()
    return {"path": path, "bytes": len(text.encode("utf-8")), "first_line": lines[0] if lines else ""}
