//! An `airlock serve` started by a test on 127.0.0.1 (port chosen by the
//! OS), over the test's own home and profiles, and a blocking HTTP client
//! for its API. The server is killed when the handle drops, unless the test
//! stopped it itself.

use super::{Env, LIMITS, REQUIRE_INTENT_AND_ACTOR, payments_needing_approval, profile_body, text};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running `airlock serve`.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    agent: ureq::Agent,
}

/// One answer: status, JSON body (`Null` when empty or not JSON), raw text
/// and the headers the tests look at.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub text: String,
    pub content_type: String,
    pub retry_after: Option<String>,
}

impl Answer {
    /// The API error code of a refusal.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

impl Server {
    /// `airlock serve --listen 127.0.0.1:0 --profiles DIR EXTRA…`.
    pub fn start(env: &Env, extra: &[&str]) -> Server {
        let mut child = env
            .airlock()
            .args(["serve", "--listen", "127.0.0.1:0", "--profiles"])
            .arg(env.profiles())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn airlock serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the serve banner");
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("no address in the serve banner: {line:?}"))
            .to_owned();
        // A fresh connection per request: the server closes a connection
        // whose request body it refused (413) without reading it, and a
        // pooled client could send the next request into that closing socket.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .max_idle_connections(0)
            .build()
            .into();
        Server {
            child: Some(child),
            base: format!("http://{addr}"),
            agent,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits (up to `within`) for the process to exit;
    /// returns its exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code();
            }
            if start.elapsed() > within {
                let _ = child.kill();
                panic!("airlock serve did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A request with an optional bearer token and body.
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Body) -> Answer {
        let url = format!("{}{path}", self.base);
        let builder = ureq::http::Request::builder().method(method).uri(&url);
        let builder = match token {
            Some(t) => builder.header("authorization", format!("Bearer {t}")),
            None => builder,
        };
        let answer = match body {
            Body::None => self.agent.run(builder.body(()).expect("request")),
            Body::Json(value) => self.agent.run(
                builder
                    .header("content-type", "application/json")
                    .body(value.to_string())
                    .expect("request"),
            ),
            Body::Raw(content_type, bytes) => self.agent.run(
                builder
                    .header("content-type", content_type)
                    .body(bytes)
                    .expect("request"),
            ),
        };
        let mut answer = answer.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let text = answer
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default();
        Answer {
            status: answer.status().as_u16(),
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            content_type,
            retry_after,
        }
    }

    pub fn get(&self, path: &str, token: &str) -> Answer {
        self.call("GET", path, Some(token), Body::None)
    }

    pub fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call("POST", path, Some(token), Body::Json(body))
    }

    /// Uploads a component as tool `name`; asserts 201.
    pub fn submit(&self, token: &str, name: &str, wasm: &std::path::Path) -> Value {
        let bytes = std::fs::read(wasm).expect("read component");
        let answer = self.call(
            "POST",
            &format!("/v1/tools?name={name}"),
            Some(token),
            Body::Raw("application/wasm", bytes),
        );
        assert_eq!(answer.status, 201, "submit {name}: {}", answer.text);
        answer.json
    }

    /// Starts a `pay-invoice` run under profile `pay` (see [`pay_profile`])
    /// without waiting; returns its id.
    pub fn start_payment(&self, token: &str, port: u16, invoice: &str) -> String {
        let input = json!({"invoice": invoice, "amount_cents": 1200, "base_url": format!("http://127.0.0.1:{port}")});
        let started = self.post(
            "/v1/runs?wait=false",
            token,
            json!({"tool": "pay-invoice", "profile": "pay", "input": input, "intent": format!("pay {invoice}"), "actor": "agent-7"}),
        );
        assert_eq!(started.status, 202, "{}", started.text);
        started.json["run_id"].as_str().expect("run id").to_owned()
    }

    /// Polls the pending approvals (as `token`) until run `run_id` asks
    /// for one; returns it.
    pub fn pending_for(&self, token: &str, run_id: &str) -> Value {
        let start = Instant::now();
        loop {
            let list = self.get("/v1/approvals?pending=true", token);
            assert_eq!(list.status, 200, "{}", list.text);
            if let Some(found) = list
                .json
                .as_array()
                .and_then(|all| all.iter().find(|a| a["run_id"] == run_id))
            {
                return found.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no approval request for {run_id}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `GET /v1/runs/ID` until the run has ended; returns its row.
    pub fn wait_for_end(&self, token: &str, run_id: &str) -> Value {
        let start = Instant::now();
        loop {
            let row = self.get(&format!("/v1/runs/{run_id}"), token);
            assert_eq!(row.status, 200, "run {run_id}: {}", row.text);
            if row.json["ended_at"].is_string() {
                return row.json;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "run {run_id} did not end"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A request body.
pub enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Creates an API token with `airlock tokens create` on the env's home.
pub fn token(env: &Env, role: &str, name: &str) -> String {
    let out = env.cmd(&["tokens", "create", "--role", role, "--name", name]);
    assert!(out.status.success(), "tokens create: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// Profile `pay`: payments to 127.0.0.1:`port` need approval by `oncall`
/// or `ops` (5 minutes each), and runs must say who and why.
pub fn pay_profile(env: &Env, port: u16) {
    env.profile(
        "pay",
        &profile_body(
            "pay",
            LIMITS,
            &format!(
                "{}\n{REQUIRE_INTENT_AND_ACTOR}",
                payments_needing_approval(port, &["oncall", "ops"], "5m", "5m")
            ),
        ),
    );
}
