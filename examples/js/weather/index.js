// `weather`: the current weather for a city, from an HTTP API, in
// JavaScript. Input {"city": "Oslo"} (optionally with "base_url", default
// https://api.weather.example); sends GET {base_url}/v1/current?city=Oslo
// and returns the API's {"city", "temp_c", "conditions"}.
//
// The tool holds no API key and sends no Authorization header: the
// profile's [credentials.weather] makes the runner inject the key into
// requests to the weather host, and its [net] allow list decides which URLs
// the tool may reach at all. A status other than 2xx is a tool error.
import { ToolError, defineTool, httpFetch } from 'airlock-sdk';

const DEFAULT_BASE_URL = 'https://api.weather.example';

export const { run, describe } = defineTool({
  name: 'weather',
  description: 'Returns the current temperature (Celsius) and conditions for a city.',
  inputSchema: {
    type: 'object',
    properties: {
      city: { type: 'string', minLength: 1, description: 'City name, e.g. Oslo.' },
      base_url: { type: 'string', description: `Base URL of the weather API (default ${DEFAULT_BASE_URL}).` },
    },
    required: ['city'],
    additionalProperties: false,
  },
  async run({ city, base_url }) {
    city = city.trim();
    if (!city) throw new ToolError('city must not be empty');
    const base = (base_url ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    // No credentials here: the runner adds the API key on the way out.
    const response = await httpFetch(`${base}/v1/current?city=${encodeURIComponent(city)}`, {
      headers: { accept: 'application/json' },
    });
    if (!response.ok) {
      const body = (await response.text()).slice(0, 200).trim();
      throw new ToolError(`weather service returned HTTP ${response.status}${body ? `: ${body}` : ''}`);
    }
    const current = await response.json();
    return { city: current.city, temp_c: Number(current.temp_c), conditions: current.conditions };
  },
});
