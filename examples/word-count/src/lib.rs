//! `word-count`: counts the lines, words and bytes of one file.
//!
//! Input `{"path": "/data/q3.txt"}`; output
//! `{"path": "/data/q3.txt", "lines": 3, "words": 12, "bytes": 64}`.
//! Runs under a profile that mounts the files read-only at `/data`; the tool
//! uses plain `std::fs`, and the sandbox decides what it can see.
//!
//! Counting follows `wc` for words and bytes (words are runs of
//! non-whitespace); `lines` counts lines of text, so a last line without a
//! trailing newline still counts. Bytes that are not UTF-8 are counted as
//! bytes and treated as non-whitespace.

use airlock_sdk::{Tool, export_tool};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    path: String,
}

#[derive(Serialize)]
struct Output {
    path: String,
    lines: u64,
    words: u64,
    bytes: u64,
}

struct WordCount;

impl Tool for WordCount {
    const NAME: &'static str = "word-count";
    const DESCRIPTION: &'static str =
        "Counts the lines, words and bytes of a text file under /data.";
    type Input = Input;
    type Output = Output;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "description": "Absolute path of the file, e.g. /data/q3.txt.",
                },
            },
            "required": ["path"],
            "additionalProperties": false,
        })
    }

    fn run(input: Input) -> Result<Output, String> {
        let metadata = std::fs::metadata(&input.path)
            .map_err(|e| format!("cannot read {}: {e}", input.path))?;
        if !metadata.is_file() {
            return Err(format!("{} is not a file", input.path));
        }
        let content =
            std::fs::read(&input.path).map_err(|e| format!("cannot read {}: {e}", input.path))?;
        let (lines, words) = count(&content);
        Ok(Output {
            path: input.path,
            lines,
            words,
            bytes: content.len() as u64,
        })
    }
}

/// Returns (lines, words) of `content`.
fn count(content: &[u8]) -> (u64, u64) {
    let newlines = content.iter().filter(|&&b| b == b'\n').count() as u64;
    let unterminated = u64::from(content.last().is_some_and(|&b| b != b'\n'));
    let words = content
        .split(|b| b.is_ascii_whitespace())
        .filter(|word| !word.is_empty())
        .count() as u64;
    (newlines + unterminated, words)
}

export_tool!(WordCount);

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_like_wc_except_for_a_last_unterminated_line() {
        assert_eq!(count(b""), (0, 0));
        assert_eq!(count(b"one"), (1, 1));
        assert_eq!(count(b"one two\n"), (1, 2));
        assert_eq!(count(b"one\n\n  two three \n4"), (4, 4));
    }
}
