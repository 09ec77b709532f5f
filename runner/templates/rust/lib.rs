//! `{{name}}`: an airlock tool. Input `{"name": "Ada"}`, output
//! `{"greeting": "Hello, Ada!"}`; records a `greeted` note in the run's
//! evidence log.

use airlock_sdk::{Tool, export_tool, note};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    name: String,
}

#[derive(Serialize)]
struct Output {
    greeting: String,
}

struct ThisTool;

impl Tool for ThisTool {
    const NAME: &'static str = "{{name}}";
    const DESCRIPTION: &'static str = "Greets someone by name.";
    type Input = Input;
    type Output = Output;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": { "name": { "type": "string" } },
            "required": ["name"],
            "additionalProperties": false,
        })
    }

    fn run(input: Input) -> Result<Output, String> {
        note("greeted", &input.name)?;
        Ok(Output {
            greeting: format!("Hello, {}!", input.name),
        })
    }
}

export_tool!(ThisTool);
