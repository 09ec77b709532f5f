//! `write-report`: writes a Markdown report to `/out/report.md`.
//!
//! Input `{"title": "Q3", "lines": ["- revenue up", "- costs flat"]}`;
//! output `{"path": "/out/report.md", "bytes": 42}`. Runs under a profile
//! that mounts an output directory read-write at `/out`. Each entry of
//! `lines` becomes one line of the report, as given (so it may itself be
//! Markdown: a bullet, a heading, a table row).

use airlock_sdk::{Tool, export_tool};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where the report goes (inside the `/out` mount).
const REPORT: &str = "/out/report.md";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    title: String,
    #[serde(default)]
    lines: Vec<String>,
}

#[derive(Serialize)]
struct Output {
    path: &'static str,
    bytes: u64,
}

struct WriteReport;

impl Tool for WriteReport {
    const NAME: &'static str = "write-report";
    const DESCRIPTION: &'static str =
        "Writes a Markdown report with a title and lines of text to /out/report.md.";
    type Input = Input;
    type Output = Output;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "title": { "type": "string", "description": "Report title (one line)." },
                "lines": {
                    "type": "array",
                    "items": { "type": "string" },
                    "description": "Lines of the report body, Markdown allowed.",
                },
            },
            "required": ["title"],
            "additionalProperties": false,
        })
    }

    fn run(input: Input) -> Result<Output, String> {
        let markdown = render(&input)?;
        std::fs::write(REPORT, &markdown).map_err(|e| format!("cannot write {REPORT}: {e}"))?;
        Ok(Output {
            path: REPORT,
            bytes: markdown.len() as u64,
        })
    }
}

/// The report as Markdown: `# title`, a blank line, then the lines.
fn render(input: &Input) -> Result<String, String> {
    let title = input.title.trim();
    if title.is_empty() {
        return Err("title must not be empty".to_string());
    }
    if title.contains(['\n', '\r']) {
        return Err("title must be a single line".to_string());
    }
    let mut markdown = format!("# {title}\n");
    if !input.lines.is_empty() {
        markdown.push('\n');
    }
    for line in &input.lines {
        markdown.push_str(line);
        markdown.push('\n');
    }
    Ok(markdown)
}

export_tool!(WriteReport);

#[cfg(test)]
mod tests {
    use super::{Input, render};

    #[test]
    fn renders_title_and_lines() {
        let input = Input {
            title: "Q3".into(),
            lines: vec!["- up".into(), "- flat".into()],
        };
        assert_eq!(render(&input).as_deref(), Ok("# Q3\n\n- up\n- flat\n"));
    }

    #[test]
    fn rejects_multiline_titles() {
        let input = Input {
            title: "a\nb".into(),
            lines: vec![],
        };
        assert!(render(&input).is_err());
    }
}
