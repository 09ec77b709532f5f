"""A real MCP client (the official Python SDK, `mcp` on PyPI) driven by tests/mcp.rs.

Usage: python client.py CONFIG_JSON

CONFIG_JSON: {"transport": "stdio", "command": ..., "args": [...], "env": {...}}
          or {"transport": "http", "url": ..., "token": ... (optional)}
          plus "steps": a list of operations run in order in one session:
  {"op": "list_tools"}
  {"op": "call", "tool": NAME, "arguments": {...}, "meta": {...}, "progress": bool}
  {"op": "call_and_cancel", "tool": NAME, "arguments": {...}, "meta": {...}}
      cancels the call at its first progress notification, then waits (in the
      same session) until that run's resource says "cancelled"
  {"op": "wait_tools_changed"}   prints {"op": "waiting"}, then the step's
      line once notifications/tools/list_changed arrives
  {"op": "list_resources"}
  {"op": "read_resource", "uri": URI}   (URI "last-run" = the last result's run)

Each step prints one JSON line to stdout (progress notifications print their
own lines first); a failed step prints {"op": ..., "error": "..."}.
"""

import json
import re
import sys

import anyio
import httpx2
import mcp_types
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def emit(value):
    print(json.dumps(value), flush=True)


def result_json(op, result):
    text = "".join(getattr(c, "text", "") for c in result.content)
    return {
        "op": op,
        "isError": bool(result.is_error),
        "text": text,
        "structuredContent": result.structured_content,
        "meta": result.meta or {},
    }


def server(config):
    if config["transport"] == "stdio":
        return StdioServerParameters(command=config["command"], args=config["args"], env=config["env"])
    headers = {}
    if config.get("token"):
        headers["Authorization"] = f"Bearer {config['token']}"
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
    return streamable_http_client(config["url"], http_client=http)


async def step(client, s, state):
    op = s["op"]
    if op == "list_tools":
        tools = await client.list_tools()
        emit({
            "op": op,
            "tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools.tools],
        })
    elif op == "call":
        async def progress(value, total, message):
            emit({"op": "progress", "progress": value, "message": message})

        result = await client.call_tool(
            s["tool"],
            s.get("arguments", {}),
            progress_callback=progress if s.get("progress") else None,
            meta=s.get("meta"),
        )
        out = result_json(op, result)
        state["last_run"] = out["meta"].get("airlock/run-id")
        emit(out)
    elif op == "call_and_cancel":
        waiting = {}
        with anyio.CancelScope() as scope:
            async def progress(value, total, message):
                emit({"op": "progress", "progress": value, "message": message})
                waiting["run"] = re.search(r"run ([0-9a-f-]{36})", message).group(1)
                scope.cancel()

            await client.call_tool(
                s["tool"], s.get("arguments", {}), progress_callback=progress, meta=s.get("meta")
            )
        with anyio.fail_after(30):
            while True:
                resources = await client.list_resources()
                done = [r for r in resources.resources if waiting["run"] in r.uri and "cancelled" in r.name]
                if done:
                    emit({"op": op, "cancelled": done[0].uri})
                    return
                await anyio.sleep(0.1)
    elif op == "wait_tools_changed":
        emit({"op": "waiting"})
        with anyio.fail_after(30):
            await state["tools_changed"].wait()
        emit({"op": op, "changed": True})
    elif op == "list_resources":
        resources = await client.list_resources()
        emit({
            "op": op,
            "resources": [{"uri": r.uri, "name": r.name, "mimeType": r.mime_type} for r in resources.resources],
        })
    elif op == "read_resource":
        uri = s["uri"]
        if uri == "last-run":
            uri = f"airlock://runs/{state['last_run']}"
        result = await client.read_resource(uri)
        emit({"op": op, "uri": uri, "text": "".join(getattr(c, "text", "") for c in result.contents)})
    else:
        raise ValueError(f"unknown op {op}")


async def main():
    config = json.loads(sys.argv[1])
    state = {"tools_changed": anyio.Event()}

    async def on_message(message):
        if isinstance(message, mcp_types.ToolListChangedNotification):
            state["tools_changed"].set()

    try:
        async with Client(
            server(config), mode="legacy", read_timeout_seconds=120, message_handler=on_message
        ) as client:
            emit({"op": "connected", "protocolVersion": client.protocol_version})
            for s in config["steps"]:
                try:
                    await step(client, s, state)
                except Exception as e:  # the step's failure is the test's data
                    emit({"op": s["op"], "error": f"{type(e).__name__}: {e}"})
    except BaseException as e:  # connecting failed (e.g. 401)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        emit({"op": "connect", "error": f"{type(e).__name__}: {e!r}"})


anyio.run(main)
