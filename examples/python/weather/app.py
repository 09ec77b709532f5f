"""`weather`: the current weather for a city, from an HTTP API, in Python.

Input `{"city": "Oslo"}` (optionally with `"base_url":
"http://127.0.0.1:18080"`, default `https://api.weather.example`); sends
`GET {base_url}/v1/current?city=Oslo` and returns the API's `{"city",
"temp_c", "conditions"}`.

The tool holds no API key and sends no `Authorization` header: the profile's
`[credentials.weather]` makes the runner inject the key into requests to the
weather host, and its `[net] allow` list decides which URLs the tool may
reach at all. A status other than 2xx is a tool error naming the status.
"""

from typing import Optional

from airlock_sdk import ToolError, http, tool

DEFAULT_BASE_URL = "https://api.weather.example"


@tool
def weather(city: str, base_url: Optional[str] = None) -> dict:
    """Returns the current temperature (Celsius) and conditions for a city."""
    city = city.strip()
    if not city:
        raise ToolError("city must not be empty")
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    # No credentials here: the runner adds the API key on the way out.
    response = http.get(
        f"{base}/v1/current", params={"city": city}, headers={"accept": "application/json"}
    )
    response.raise_for_status()
    current = response.json()
    return {
        "city": current["city"],
        "temp_c": float(current["temp_c"]),
        "conditions": current["conditions"],
    }
