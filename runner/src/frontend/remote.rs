//! A client for `airlock serve`'s API, used by the CLI's `--server URL`
//! mode (with the token from `AIRLOCK_TOKEN`), so runs, tools, evidence and
//! approvals can be handled from another machine.
//!
//! Every answer that is not 2xx becomes a [`RemoteError::Api`] carrying the
//! server's own message; nothing is retried behind the caller's back.

use serde_json::Value;
use std::time::Duration;

/// Longest time one request may take. Runs are synchronous by default, and
/// a run may wait on a person's approval; a longer wait should use
/// `?wait=false` and poll.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// Largest answer read (evidence of a large run as JSON Lines).
const MAX_ANSWER_BYTES: u64 = 256 << 20;

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The server could not be reached or the answer not read.
    #[error("server {server}: {reason}")]
    Transport {
        /// The server URL.
        server: String,
        /// What failed.
        reason: String,
    },
    /// The server refused the request.
    #[error("server refused ({status} {code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error code.
        code: String,
        /// The API's message.
        message: String,
    },
}

/// A connection to one server with one API token.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Client {
    /// A client for the server at `base` (`http://host:port`).
    pub fn new(base: &str, token: String) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Client {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// `GET path`, the answer as text.
    pub fn get_text(&self, path: &str) -> Result<String, RemoteError> {
        let answer = self
            .agent
            .get(&self.url(path))
            .header("authorization", &self.bearer())
            .call();
        self.read(answer)
    }

    /// `GET path`, the answer as JSON.
    pub fn get(&self, path: &str) -> Result<Value, RemoteError> {
        self.json(self.get_text(path)?)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, RemoteError> {
        let answer = self
            .agent
            .post(&self.url(path))
            .header("authorization", &self.bearer())
            .send_json(body);
        let text = self.read(answer)?;
        self.json(text)
    }

    /// `POST path` with raw bytes and extra headers.
    pub fn post_bytes(
        &self,
        path: &str,
        bytes: &[u8],
        headers: &[(&str, String)],
    ) -> Result<Value, RemoteError> {
        let mut request = self
            .agent
            .post(&self.url(path))
            .header("authorization", &self.bearer())
            .header("content-type", "application/wasm");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let text = self.read(request.send(bytes))?;
        self.json(text)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn transport(&self, reason: impl std::fmt::Display) -> RemoteError {
        RemoteError::Transport {
            server: self.base.clone(),
            reason: reason.to_string(),
        }
    }

    fn read(
        &self,
        answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, RemoteError> {
        let mut answer = answer.map_err(|e| self.transport(e))?;
        let status = answer.status().as_u16();
        let text = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| self.transport(e))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let error = serde_json::from_str::<Value>(&text).unwrap_or_default();
        let field = |name: &str| error["error"][name].as_str().map(str::to_owned);
        Err(RemoteError::Api {
            status,
            code: field("code").unwrap_or_else(|| "unknown".to_owned()),
            message: field("message").unwrap_or(text),
        })
    }

    fn json(&self, text: String) -> Result<Value, RemoteError> {
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| self.transport(format!("answer is not JSON: {e}")))
    }
}
