//! `llm-summarize`: summarizes text with an OpenAI-style chat completions
//! API.
//!
//! Input `{"text": "...", "model": "gpt-4o-mini"}` (optionally with
//! `"base_url": "http://127.0.0.1:18080"`, default
//! `https://api.openai.example`); the tool sends `POST
//! {base_url}/v1/chat/completions` with `{"model", "messages"}` and returns
//! `{"summary", "model"}` from the first choice.
//!
//! The tool decides nothing about policy: the profile's `[[providers]]`
//! entry decides which models it may ask for (the host reads `model` from
//! the request body), its detectors decide what happens to personal data
//! in the prompt before it leaves, and its credentials give the host the
//! API key to inject.

use airlock_sdk::http::Request;
use airlock_sdk::{Tool, export_tool};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where the provider lives unless the input says otherwise.
const DEFAULT_BASE_URL: &str = "https://api.openai.example";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    text: String,
    #[serde(default = "default_model")]
    model: String,
    #[serde(default)]
    base_url: Option<String>,
}

fn default_model() -> String {
    "gpt-4o-mini".to_string()
}

#[derive(Serialize)]
struct Output {
    summary: String,
    model: String,
}

#[derive(Deserialize)]
struct Completion {
    model: Option<String>,
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    content: String,
}

struct Summarize;

impl Tool for Summarize {
    const NAME: &'static str = "llm-summarize";
    const DESCRIPTION: &'static str =
        "Summarizes a text in a few sentences with a chat-completions model.";
    type Input = Input;
    type Output = Output;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "text": { "type": "string", "minLength": 1, "description": "The text to summarize." },
                "model": { "type": "string", "description": "Model name (default gpt-4o-mini)." },
                "base_url": { "type": "string", "description": format!("Provider base URL (default {DEFAULT_BASE_URL}).") },
            },
            "required": ["text"],
            "additionalProperties": false,
        })
    }

    fn run(input: Input) -> Result<Output, String> {
        let base = input.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let url = format!("{}/v1/chat/completions", base.trim_end_matches('/'));
        let body = json!({
            "model": input.model,
            "messages": [
                { "role": "system", "content": "Summarize the user's text in at most three sentences." },
                { "role": "user", "content": input.text },
            ],
        });
        let response = Request::post(url, body.to_string())
            .header("content-type", "application/json")
            .send()
            .map_err(|e| format!("the provider could not be reached: {e}"))?;
        if !response.is_success() {
            return Err(format!("the provider returned HTTP {}", response.status));
        }
        let completion: Completion = response
            .json()
            .map_err(|e| format!("the provider's answer is not a chat completion: {e}"))?;
        let summary = completion
            .choices
            .into_iter()
            .next()
            .map(|c| c.message.content)
            .ok_or("the provider returned no choices")?;
        Ok(Output {
            summary,
            model: completion.model.unwrap_or(input.model),
        })
    }
}

export_tool!(Summarize);
