"""tools/call latency of `hello` through real MCP clients (the official Python
SDK), over stdio and over Streamable HTTP, next to `POST /v1/runs` on the
same server. Run by scripts/bench-mcp.sh, which sets up the home, the
binding, the token and the server.

Usage: python bench.py AIRLOCK HOME PROFILES BASE_URL TOKEN ITERATIONS

Prints one JSON line per side: {"side", "n", "p50_us", "p99_us"}.
"""

import json
import sys
import time

import anyio
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

ARGS = {"name": "Ada"}


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def report(side, samples):
    print(json.dumps({
        "side": side,
        "n": len(samples),
        "p50_us": round(percentile(samples, 50) * 1e6),
        "p99_us": round(percentile(samples, 99) * 1e6),
    }), flush=True)


async def calls(client, iterations):
    for _ in range(5):  # warm-up: compile cache, connections
        await client.call_tool("hello", ARGS)
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        result = await client.call_tool("hello", ARGS)
        samples.append(time.perf_counter() - start)
        assert not result.is_error, result
    return samples


async def main():
    airlock, home, profiles, base, token, iterations = sys.argv[1:7]
    iterations = int(iterations)
    stdio = StdioServerParameters(
        command=airlock, args=["mcp", "--profiles", profiles, "--actor", "bench"], env={"AIRLOCK_HOME": home}
    )
    async with Client(stdio, mode="legacy") as client:
        report("mcp-stdio", await calls(client, iterations))
    headers = {"Authorization": f"Bearer {token}"}
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    async with Client(streamable_http_client(f"{base}/mcp", http_client=http), mode="legacy") as client:
        report("mcp-http", await calls(client, iterations))
    async with httpx2.AsyncClient(headers=headers, timeout=60) as api:
        body = {"tool": "hello", "input": ARGS}
        for _ in range(5):
            (await api.post(f"{base}/v1/runs", json=body)).raise_for_status()
        samples = []
        for _ in range(iterations):
            start = time.perf_counter()
            answer = await api.post(f"{base}/v1/runs", json=body)
            samples.append(time.perf_counter() - start)
            answer.raise_for_status()
        report("post-v1-runs", samples)


anyio.run(main)
