//! `weather`: the current weather for a city, from an HTTP API.
//!
//! Input `{"city": "Oslo"}` (optionally with `"base_url":
//! "http://127.0.0.1:18080"`, default `https://api.weather.example`); the
//! tool sends `GET {base_url}/v1/current?city=Oslo` and expects a JSON body
//! like `{"city": "Oslo", "temp_c": 3.5, "conditions": "snow"}`, which it
//! returns as `{"city": "Oslo", "temp_c": 3.5, "conditions": "snow"}`.
//!
//! The tool holds no API key and sends no `Authorization` header: the
//! profile's `[credentials.weather]` makes the runner inject the key into
//! requests to the weather host, and its `[net] allow` list decides which
//! URLs the tool may reach at all. A status other than `2xx` (including a
//! redirect, which is not followed) is a tool error naming the status.

use airlock_sdk::http::Request;
use airlock_sdk::{Tool, export_tool};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where the weather API lives unless the input says otherwise.
const DEFAULT_BASE_URL: &str = "https://api.weather.example";

/// How much of an error response's body goes into the error message.
const ERROR_BODY_CHARS: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    city: String,
    #[serde(default)]
    base_url: Option<String>,
}

/// The API's answer, and the tool's output.
#[derive(Deserialize, Serialize)]
struct Current {
    city: String,
    temp_c: f64,
    conditions: String,
}

struct Weather;

impl Tool for Weather {
    const NAME: &'static str = "weather";
    const DESCRIPTION: &'static str =
        "Returns the current temperature (Celsius) and conditions for a city.";
    type Input = Input;
    type Output = Current;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "city": {
                    "type": "string",
                    "minLength": 1,
                    "description": "City name, e.g. Oslo.",
                },
                "base_url": {
                    "type": "string",
                    "description": format!(
                        "Base URL of the weather API (default {DEFAULT_BASE_URL})."
                    ),
                },
            },
            "required": ["city"],
            "additionalProperties": false,
        })
    }

    fn run(input: Input) -> Result<Current, String> {
        let city = input.city.trim();
        if city.is_empty() {
            return Err("city must not be empty".to_string());
        }
        let base = input.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let url = format!("{}/v1/current", base.trim_end_matches('/'));
        // No credentials here: the runner adds the API key on the way out.
        let response = Request::get(url)
            .query("city", city)
            .header("accept", "application/json")
            .send()
            .map_err(|e| format!("weather request for {city} failed: {e}"))?;
        if !response.is_success() {
            let body: String = String::from_utf8_lossy(&response.body)
                .chars()
                .take(ERROR_BODY_CHARS)
                .collect();
            let body = body.trim();
            return Err(if body.is_empty() {
                format!("weather service returned HTTP {}", response.status)
            } else {
                format!("weather service returned HTTP {}: {body}", response.status)
            });
        }
        response
            .json::<Current>()
            .map_err(|e| format!("weather service answered for {city}, but: {e}"))
    }
}

export_tool!(Weather);
