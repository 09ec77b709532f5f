//! Shared harness for the end-to-end tests: a throwaway airlock home and
//! profiles directory per test, the `airlock` binary, and the guest
//! components built from `examples/` and `tests/guests/`.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod api;
pub mod guests;
pub mod languages;
pub mod pg;
pub mod relay;
pub mod server;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A test's own state directory and profiles directory, removed on drop,
/// and its store: the home's SQLite file, or a PostgreSQL database of its
/// own ([`pg`]) when `AIRLOCK_TEST_STORE=postgres` or the test asks for one.
pub struct Env {
    pub dir: tempfile::TempDir,
    store: Option<std::sync::Arc<pg::TestDb>>,
    /// A replica's profiles: those of the env it was made from.
    shared_profiles: Option<PathBuf>,
    /// The local port this env reaches its PostgreSQL server through (a
    /// [`relay::Relay`]), when not the server's own.
    via_port: Option<u16>,
    /// The key slots its runners sign with (`AIRLOCK_KEY_SLOTS`), shared
    /// with its replicas.
    key_slots: Option<PathBuf>,
}

impl Env {
    pub fn new() -> Self {
        Env::with_store(pg::selected().then(pg::TestDb::create))
    }

    /// An env on a PostgreSQL database of its own, whatever the test run
    /// selected.
    pub fn on_postgres() -> Self {
        Env::with_store(Some(pg::TestDb::create()))
    }

    fn with_store(store: Option<std::sync::Arc<pg::TestDb>>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("profiles")).expect("profiles dir");
        std::fs::create_dir_all(dir.path().join("home")).expect("home dir");
        Env {
            dir,
            store,
            shared_profiles: None,
            via_port: None,
            key_slots: None,
        }
    }

    /// Another runner on this env's PostgreSQL store and profiles, with a
    /// home (and so a runner key) of its own: a replica.
    pub fn replica(&self) -> Self {
        let store = self
            .store
            .clone()
            .expect("a replica shares a PostgreSQL store");
        let mut replica = Env::with_store(Some(store));
        replica.shared_profiles = Some(self.profiles());
        replica.key_slots.clone_from(&self.key_slots);
        replica
    }

    /// Like [`Env::replica`], reaching the database through local `port`
    /// (a [`relay::Relay`] the test can cut).
    pub fn replica_via(&self, port: u16) -> Self {
        let mut replica = self.replica();
        replica.via_port = Some(port);
        replica
    }

    /// Makes `n` key slots (runner keys, as an operator's Secret holds
    /// them) that this env's runners and its replicas claim and sign with,
    /// and pins their public halves in the trust file.
    pub fn make_key_slots(&mut self, n: usize) {
        let dir = self.path("slots");
        for i in 0..n {
            let path = dir.join(format!("slot-{i}.pk8"));
            let out = self.cmd(&["keys", "generate", path.to_str().expect("utf-8 path")]);
            assert!(out.status.success(), "keys generate: {}", text(&out.stderr));
        }
        self.key_slots = Some(dir);
        // What the operator pins: every slot's public half.
        let out = self.cmd(&["keys", "trust"]);
        assert!(out.status.success(), "keys trust: {}", text(&out.stderr));
        let trust = text(&out.stdout);
        assert_eq!(trust.matches('"').count(), 2 * n, "{trust}");
        std::fs::write(self.trust_file(), trust).expect("trust file");
    }

    /// The PostgreSQL database this env uses, if it uses one.
    pub fn postgres(&self) -> Option<&pg::TestDb> {
        self.store.as_deref()
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn profiles(&self) -> PathBuf {
        self.shared_profiles
            .clone()
            .unwrap_or_else(|| self.dir.path().join("profiles"))
    }

    /// A directory under the test's temp dir (created).
    pub fn path(&self, rel: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }

    /// An env whose profiles and data are copies of `examples/`, so runs
    /// never write into the repository.
    pub fn with_examples() -> Self {
        let env = Env::new();
        let repo = guests::repo_root();
        copy_dir(&repo.join("examples/profiles"), &env.profiles());
        copy_dir(&repo.join("examples/data"), &env.dir.path().join("data"));
        env
    }

    /// Writes `profiles/NAME.toml`.
    pub fn profile(&self, name: &str, body: &str) {
        std::fs::write(self.profiles().join(format!("{name}.toml")), body).expect("write profile");
    }

    /// `airlock` with this env's home, no inherited environment besides
    /// PATH, and the env's trust file (AIRLOCK_TRUST) once it has one.
    pub fn airlock(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AIRLOCK_HOME", self.home())
            .stdin(Stdio::null());
        if let Some(db) = &self.store {
            cmd.env("AIRLOCK_STORE", db.url_via(self.via_port));
        }
        if let Some(slots) = &self.key_slots {
            cmd.env("AIRLOCK_KEY_SLOTS", slots);
        }
        if self.trust_file().exists() {
            cmd.env("AIRLOCK_TRUST", self.trust_file());
        }
        cmd
    }

    /// The operator's pinned trust file.
    pub fn trust_file(&self) -> PathBuf {
        self.dir.path().join("trust.toml")
    }

    /// Where approver `name`'s own key is kept (outside the home).
    pub fn approver_key(&self, name: &str) -> PathBuf {
        self.dir
            .path()
            .join("approver-keys")
            .join(format!("{name}.pk8"))
    }

    /// Creates approver `name`'s key with `airlock keys generate --approver`
    /// and pins its public key for `name` in the trust file, as an operator
    /// would; returns the public key (hex).
    pub fn approver(&self, name: &str) -> String {
        let key = self.approver_key(name);
        let out = self
            .airlock()
            .args(["keys", "generate", "--approver", name, "--out"])
            .arg(&key)
            .output()
            .expect("spawn airlock");
        assert!(out.status.success(), "keys generate: {}", text(&out.stderr));
        let public = text(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("public key").map(|k| k.trim().to_owned()))
            .expect("the public key is printed");
        let mut trust = match std::fs::read_to_string(self.trust_file()) {
            Ok(trust) => trust,
            Err(_) => self.runner_trust(),
        };
        if !trust.contains("[approvers]\n") {
            trust.push_str("\n[approvers]\n");
        }
        trust.push_str(&format!("{name} = [\"{public}\"]\n"));
        std::fs::write(self.trust_file(), trust).expect("write the trust file");
        public
    }

    /// The trust file `airlock keys trust` prints for this home (pinning
    /// its runner key, created first if there is none), as an operator
    /// starts one; it ends with an empty `[approvers]` table.
    pub fn runner_trust(&self) -> String {
        let init = self.cmd(&["keys", "init"]);
        let trust = self.cmd(&["keys", "trust"]);
        assert!(
            trust.status.success(),
            "keys trust: {}{}",
            text(&init.stderr),
            text(&trust.stderr)
        );
        text(&trust.stdout)
    }

    /// Polls `airlock approvals list --pending` until a request is pending
    /// (the run is then blocked on it) and returns it; fails the test if
    /// `run` (started with piped output) ends first, with what it printed,
    /// or if nothing is pending within `within`.
    pub fn wait_for_approval(&self, run: &mut Child, within: Duration) -> Value {
        use std::io::Read;
        let start = Instant::now();
        loop {
            if let Some(status) = run.try_wait().expect("poll the run") {
                let mut said = String::new();
                if let Some(mut out) = run.stdout.take() {
                    let _ = out.read_to_string(&mut said);
                }
                if let Some(mut err) = run.stderr.take() {
                    let _ = err.read_to_string(&mut said);
                }
                panic!("the run ended ({status}) before asking for approval: {said}");
            }
            let out = self.cmd(&["approvals", "list", "--pending", "--json"]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let pending: Vec<Value> = serde_json::from_slice(&out.stdout).expect("approvals JSON");
            if let Some(request) = pending.into_iter().next() {
                return request;
            }
            assert!(start.elapsed() < within, "no approval request appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `airlock approvals VERB ID --as WHO --key <WHO's key> --reason R`:
    /// a decision signed with the approver's own key.
    pub fn decide(&self, verb: &str, id: &str, who: &str, reason: &str) -> Output {
        self.airlock()
            .args([
                "approvals",
                verb,
                id,
                "--as",
                who,
                "--reason",
                reason,
                "--key",
            ])
            .arg(self.approver_key(who))
            .output()
            .expect("spawn airlock")
    }

    /// `airlock run --json --profiles DIR --profile P TOOL [extra…]`.
    pub fn run(&self, profile: &str, tool: &Path, extra: &[&str]) -> Output {
        self.airlock()
            .arg("run")
            .arg("--json")
            .arg("--profiles")
            .arg(self.profiles())
            .arg("--profile")
            .arg(profile)
            .args(extra)
            .arg(tool)
            .output()
            .expect("spawn airlock")
    }

    /// Runs a command guest that prints one JSON line per result: `airlock
    /// run --json --profile P TOOL -- ARGS` with `vars` added to airlock's
    /// environment. Asserts exit 0; returns the lines and the run id.
    pub fn run_lines(
        &self,
        profile: &str,
        tool: &Path,
        vars: &[(&str, &str)],
        args: &[String],
    ) -> (Vec<Value>, String) {
        let mut cmd = self.airlock();
        for (name, value) in vars {
            cmd.env(name, value);
        }
        let out = cmd
            .args(["run", "--json", "--profile", profile, "--profiles"])
            .arg(self.profiles())
            .arg(tool)
            .arg("--")
            .args(args)
            .output()
            .expect("spawn airlock");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let result = report(&out);
        let lines = result["stdout"]
            .as_str()
            .expect("stdout")
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect();
        (lines, result["run_id"].as_str().expect("run id").to_owned())
    }

    /// `airlock ARGS…`.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.airlock().args(args).output().expect("spawn airlock")
    }

    /// The events of a run, via `airlock runs show ID --json`.
    pub fn events(&self, run_id: &str) -> Vec<Value> {
        let out = self.cmd(&["runs", "show", run_id, "--json"]);
        assert!(out.status.success(), "runs show: {}", text(&out.stderr));
        match serde_json::from_slice(&out.stdout).expect("events JSON") {
            Value::Array(events) => events,
            other => panic!("events are not an array: {other}"),
        }
    }

    /// Asserts `airlock runs verify ID` reports the run intact.
    pub fn assert_verifies(&self, run_id: &str) {
        let out = self.cmd(&["runs", "verify", run_id]);
        assert!(
            out.status.success(),
            "verify {run_id}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    pub fn db(&self) -> PathBuf {
        self.home().join("airlock.db")
    }

    /// The control-log entries of `kind` about `target`, oldest first, as
    /// `(actor, fields)`, read straight from the store.
    pub fn control_entries(&self, kind: &str, target: &str) -> Vec<(Option<String>, Value)> {
        self.query(
            "SELECT actor, fields FROM control_log WHERE kind = ?1 AND target = ?2 ORDER BY seq",
            &[kind.into(), target.into()],
        )
        .into_iter()
        .map(|row| {
            let fields = row[1].clone().expect("fields");
            (
                row[0].clone(),
                serde_json::from_str(&fields).expect("fields JSON"),
            )
        })
        .collect()
    }

    /// Runs `statement` straight against the store's database, as someone
    /// who can edit it would (SQLite's `?N` placeholders; translated for
    /// PostgreSQL); returns how many rows it changed.
    pub fn sql(&self, statement: &str, params: &[SqlParam]) -> u64 {
        match &self.store {
            None => {
                let conn = rusqlite::Connection::open(self.db()).expect("open the store");
                let params: Vec<&dyn rusqlite::ToSql> =
                    params.iter().map(SqlParam::as_sqlite).collect();
                conn.execute(statement, params.as_slice())
                    .unwrap_or_else(|e| panic!("{statement}: {e}")) as u64
            }
            Some(db) => {
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(SqlParam::as_postgres).collect();
                db.client()
                    .execute(&pg::dialect(statement), &params)
                    .unwrap_or_else(|e| panic!("{statement}: {e}"))
            }
        }
    }

    /// The rows `query` returns, every column as text (`NULL` as `None`).
    pub fn query(&self, query: &str, params: &[SqlParam]) -> Vec<Vec<Option<String>>> {
        match &self.store {
            None => {
                let conn = rusqlite::Connection::open(self.db()).expect("open the store");
                let params: Vec<&dyn rusqlite::ToSql> =
                    params.iter().map(SqlParam::as_sqlite).collect();
                let mut stmt = conn
                    .prepare(query)
                    .unwrap_or_else(|e| panic!("{query}: {e}"));
                let columns = stmt.column_count();
                stmt.query_map(params.as_slice(), |row| {
                    (0..columns)
                        .map(|i| {
                            Ok(match row.get::<_, rusqlite::types::Value>(i)? {
                                rusqlite::types::Value::Null => None,
                                rusqlite::types::Value::Integer(n) => Some(n.to_string()),
                                rusqlite::types::Value::Real(x) => Some(x.to_string()),
                                rusqlite::types::Value::Text(t) => Some(t),
                                rusqlite::types::Value::Blob(b) => {
                                    Some(String::from_utf8_lossy(&b).into_owned())
                                }
                            })
                        })
                        .collect()
                })
                .and_then(Iterator::collect)
                .unwrap_or_else(|e| panic!("{query}: {e}"))
            }
            Some(db) => {
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(SqlParam::as_postgres).collect();
                db.client()
                    .query(&pg::dialect(query), &params)
                    .unwrap_or_else(|e| panic!("{query}: {e}"))
                    .iter()
                    .map(|row| (0..row.len()).map(|i| pg::text(row, i)).collect())
                    .collect()
            }
        }
    }

    /// The one number `query` returns (`SELECT count(*) …`).
    pub fn count(&self, query: &str) -> i64 {
        self.query(query, &[])[0][0]
            .as_deref()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{query}: not a number"))
    }

    /// Whether this test edits the SQLite file itself (its locks, its
    /// storage classes) and so has nothing to check on PostgreSQL: says so
    /// and returns `true` there.
    pub fn sqlite_only(&self, why: &str) -> bool {
        if self.store.is_some() {
            eprintln!("skipped on PostgreSQL: {why}");
            return true;
        }
        false
    }

    /// `airlock ARGS…`: (exit code, stdout + stderr).
    pub fn said(&self, args: &[&str]) -> (i32, String) {
        let out = self.cmd(args);
        (
            out.status.code().unwrap_or(-1),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    }
}

/// A parameter of [`Env::sql`] and [`Env::query`].
pub enum SqlParam {
    Text(String),
    Int(i64),
    Null,
}

impl SqlParam {
    fn as_sqlite(&self) -> &dyn rusqlite::ToSql {
        match self {
            SqlParam::Text(t) => t,
            SqlParam::Int(n) => n,
            SqlParam::Null => &rusqlite::types::Null,
        }
    }

    fn as_postgres(&self) -> &(dyn postgres::types::ToSql + Sync) {
        static NULL: Option<&str> = None;
        match self {
            SqlParam::Text(t) => t,
            SqlParam::Int(n) => n,
            SqlParam::Null => &NULL,
        }
    }
}

impl From<&str> for SqlParam {
    fn from(text: &str) -> Self {
        SqlParam::Text(text.to_owned())
    }
}

impl From<&String> for SqlParam {
    fn from(text: &String) -> Self {
        SqlParam::Text(text.clone())
    }
}

impl From<String> for SqlParam {
    fn from(text: String) -> Self {
        SqlParam::Text(text)
    }
}

impl From<i64> for SqlParam {
    fn from(n: i64) -> Self {
        SqlParam::Int(n)
    }
}

/// Parses the `--json` result of `airlock run`.
pub fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "run result is not JSON ({e}); stdout: {} stderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Events of `kind`.
pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// A profile body with the given limits and extra TOML appended.
pub fn profile_body(name: &str, limits: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\ncategory = \"test\"\nrisk = \"low\"\nowner = \"airlock-tests\"\nrunbook = \"https://runbooks.example/tests\"\n\n[limits]\n{limits}\n\n{extra}\n"
    )
}

/// Profile sections for the payments route of a test server on `port`:
/// `[net]` allowing POSTs to it, and an `[[approval]]` rule holding each one
/// for `approvers`, escalating to `lead` after `timeout` and expiring
/// `escalation` later, with the payments runbook.
pub fn payments_needing_approval(
    port: u16,
    approvers: &[&str],
    timeout: &str,
    escalation: &str,
) -> String {
    let approvers: Vec<String> = approvers.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[net]\nallow = [{{ url = \"http://127.0.0.1:{port}/v1/payments\", methods = [\"POST\"] }}]\n\n[[approval]]\nwhen = \"net POST http://127.0.0.1:{port}/**\"\napprovers = [{}]\ntimeout = \"{timeout}\"\nescalate_to = \"lead\"\nescalation_timeout = \"{escalation}\"\nrunbook = \"https://runbooks.example/payments\"\n",
        approvers.join(", ")
    )
}

/// An `[admission]` section requiring intent and actor.
pub const REQUIRE_INTENT_AND_ACTOR: &str = "[admission]\nrequire = [\"intent\", \"actor\"]\n";

/// Generous limits for tests that are not about limits.
pub const LIMITS: &str =
    "fuel = 2_000_000_000\nmemory = \"64MiB\"\ntimeout = \"20s\"\noutput = \"1MiB\"";

/// Copies the tree at `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
