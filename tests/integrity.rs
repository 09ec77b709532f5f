//! Evidence against whoever can write the store (issue 19, findings 1-3),
//! each test written as the attack: the attacker edits the SQLite file (and
//! the home) with nothing but public formats (SQL, RFC 8785 JSON, SHA-256,
//! Ed25519 with a key of their own), then the real `airlock` binary must
//! refuse or detect it.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use support::api::Server;
use support::server::HttpServer;
use support::{Env, LIMITS, SqlParam, guests, profile_body, report, text};

fn hello_profile(env: &Env) {
    env.profile("hello", &profile_body("hello", LIMITS, ""));
}

/// Runs `hello` once (optionally with an idempotency key); returns the run id.
fn hello(env: &Env, name: &str, key: Option<&str>) -> String {
    let input = format!(r#"{{"name":"{name}"}}"#);
    let mut args = vec!["--input", input.as_str()];
    if let Some(key) = key {
        args.extend(["--idempotency-key", key]);
    }
    let out = env.run("hello", &guests::example("hello"), &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    report(&out)["run_id"].as_str().expect("run id").to_owned()
}

/// A column holding JSON, edited at `pointer` as someone who can write
/// the store would (read, change, write back), on either backend.
fn edit_json(env: &Env, table: &str, column: &str, key: (&str, &str), pointer: &str, value: Value) {
    let (key_column, key_value) = key;
    let rows = env.query(
        &format!("SELECT {column} FROM {table} WHERE {key_column} = ?1"),
        &[key_value.into()],
    );
    let mut json: Value =
        serde_json::from_str(rows[0][0].as_deref().expect("a JSON column")).expect("JSON");
    *json.pointer_mut(pointer).expect("the edited field") = value;
    let changed = env.sql(
        &format!("UPDATE {table} SET {column} = ?1 WHERE {key_column} = ?2"),
        &[json.to_string().into(), key_value.into()],
    );
    assert_eq!(changed, 1, "{table}.{column}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// `airlock ARGS…`: (exit code, stdout + stderr).
fn said(env: &Env, args: &[&str]) -> (i32, String) {
    let out = env.cmd(args);
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// Inserts a correctly hash-chained event, as an attacker would.
fn forge_event(
    env: &Env,
    run_id: &str,
    (seq, prev): (u64, &str),
    (kind, decision, target): (&str, Option<&str>, Option<&str>),
    fields: Value,
) -> String {
    let ts = format!("2026-01-01T00:00:0{seq}.000000Z");
    let mut flat = fields.as_object().expect("fields").clone();
    flat.insert("run_id".into(), run_id.into());
    flat.insert("seq".into(), seq.into());
    flat.insert("ts".into(), ts.clone().into());
    flat.insert("kind".into(), kind.into());
    if let Some(d) = decision {
        flat.insert("decision".into(), d.into());
    }
    if let Some(t) = target {
        flat.insert("target".into(), t.into());
    }
    flat.insert("prev".into(), prev.into());
    let hash = sha256_hex(&serde_jcs::to_vec(&flat).expect("jcs"));
    let optional = |v: Option<&str>| match v {
        Some(v) => SqlParam::from(v),
        None => SqlParam::Null,
    };
    env.sql(
        "INSERT INTO events (run_id, seq, ts, kind, decision, target, fields, prev, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        &[
            run_id.into(),
            (seq as i64).into(),
            ts.into(),
            kind.into(),
            optional(decision),
            optional(target),
            fields.to_string().into(),
            prev.into(),
            hash.as_str().into(),
        ],
    );
    hash
}

#[test]
fn a_forged_running_run_is_sealed_as_forged_never_intact() {
    let env = Env::new();
    hello_profile(&env);
    let real = hello(&env, "Ada", None);

    // A `running` row with no live lock and three made-up events, chained
    // exactly as airlock chains them: an approval nobody gave and a payment.
    let forged = "019a0000-0000-7000-8000-00000000f0f0";
    env.sql(
        "INSERT INTO runs (id, tool, tool_digest, profile, status, started_at, event_count, pid)
         VALUES (?1, 'pay-invoice', 'sha256:00', 'payments', 'running', '2026-01-01T00:00:00.000000Z', 0, 999999)",
        &[forged.into()],
    );
    let genesis = "0".repeat(64);
    let h1 = forge_event(
        &env,
        forged,
        (1, &genesis),
        ("run.start", None, None),
        json!({}),
    );
    let h2 = forge_event(
        &env,
        forged,
        (2, &h1),
        (
            "approval.decision",
            Some("allowed"),
            Some("POST https://payments.example/v1/payments"),
        ),
        json!({"decided_by": "payments-oncall", "status": "approved"}),
    );
    forge_event(
        &env,
        forged,
        (3, &h2),
        (
            "net.request",
            Some("allowed"),
            Some("https://payments.example/v1/payments"),
        ),
        json!({"method": "POST", "rule": "net.allow[0]"}),
    );

    // Any invocation recovers it (here: verify itself). It must not come
    // out intact, and must name the first event that does not authenticate.
    let (code, out) = said(&env, &["runs", "verify", "--all"]);
    assert_eq!(code, 1, "{out}");
    let lower = out.to_lowercase();
    assert!(lower.contains("forged"), "{out}");
    assert!(
        out.contains(&format!("run {forged}: BROKEN")) && out.contains("event #1"),
        "{out}"
    );
    assert!(
        out.contains(&format!("run {real}: intact")),
        "the real run still verifies: {out}"
    );
    let (code, out) = said(&env, &["runs", "verify", forged]);
    assert_eq!(code, 1, "{out}");
    let (_, list) = said(&env, &["runs", "list", "--json"]);
    let rows: Value = serde_json::from_str(
        list.lines()
            .skip_while(|l| !l.starts_with('['))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    )
    .expect("runs JSON");
    let status = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["id"] == forged)
        .map(|r| r["status"].clone());
    assert_eq!(status, Some(json!("forged")), "{rows}");
    let (_, show) = said(&env, &["runs", "show", forged]);
    assert!(show.contains("WARNING"), "runs show flags it: {show}");
}

#[test]
fn edited_run_row_columns_are_detected_and_flagged() {
    let env = Env::new();
    hello_profile(&env);
    let edits: [(&str, &str); 5] = [
        ("tool", "UPDATE runs SET tool = 'pay-invoice' WHERE id = ?1"),
        (
            "profile",
            "UPDATE runs SET profile = 'payments' WHERE id = ?1",
        ),
        (
            "tool_digest",
            "UPDATE runs SET tool_digest = 'sha256:0000000000000000000000000000000000000000000000000000000000000000' WHERE id = ?1",
        ),
        (
            "submitted_by",
            "UPDATE runs SET submitted_by = 'payments-oncall' WHERE id = ?1",
        ),
        (
            "started_at",
            "UPDATE runs SET started_at = '2020-01-01T00:00:00.000000Z' WHERE id = ?1",
        ),
    ];
    for (i, (column, sql)) in edits.iter().enumerate() {
        let run = hello(&env, &format!("run {i}"), Some(&format!("key-{i}")));
        env.assert_verifies(&run);
        let changed = env.sql(sql, &[run.as_str().into()]);
        assert_eq!(changed, 1, "{sql}");
        assert_edit_detected(&env, &run, column);
    }
    // The recorded result, edited inside its JSON.
    let run = hello(&env, "run 5", Some("key-5"));
    env.assert_verifies(&run);
    edit_json(
        &env,
        "runs",
        "result",
        ("id", &run),
        "/output",
        json!({"greeting": "Hello, Mallory!"}),
    );
    assert_edit_detected(&env, &run, "result");
}

/// `runs verify` fails naming `column`, and `runs show` flags it.
fn assert_edit_detected(env: &Env, run: &str, column: &str) {
    {
        let (code, out) = said(env, &["runs", "verify", run]);
        assert_eq!(code, 1, "editing {column} was not detected: {out}");
        assert!(out.contains(column), "verify names {column}: {out}");
        let (_, show) = said(env, &["runs", "show", run]);
        assert!(
            show.contains("WARNING") && show.contains(column),
            "runs show flags the edited {column}: {show}"
        );
    }
}

#[test]
fn an_edited_idempotent_result_is_refused_not_replayed() {
    let env = Env::new();
    hello_profile(&env);
    let first = hello(&env, "Ada", Some("greet-ada"));
    edit_json(
        &env,
        "runs",
        "result",
        ("id", &first),
        "/output",
        json!({"greeting": "Hello, Mallory!"}),
    );
    let out = env.run(
        "hello",
        &guests::example("hello"),
        &[
            "--input",
            r#"{"name":"Ada"}"#,
            "--idempotency-key",
            "greet-ada",
        ],
    );
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(6), "{all}");
    assert!(
        !all.contains("Mallory"),
        "the edited result was returned: {all}"
    );
    assert!(
        all.contains("refusing to replay") && all.contains(&first),
        "{all}"
    );
}

/// Signs `message` with the PKCS#8 Ed25519 key at `pk8`.
fn sign_with(pk8: &Path, message: &[u8]) -> String {
    let bytes = std::fs::read(pk8).expect("attacker key");
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&bytes).expect("pkcs8");
    hex::encode(pair.sign(message).as_ref())
}

#[test]
fn a_key_dropped_into_the_home_is_not_trusted_under_a_pinned_trust_file() {
    let env = Env::new();
    hello_profile(&env);
    let run = hello(&env, "Ada", None);
    // The operator pins the runner key in a file outside the home.
    let (code, trust) = said(&env, &["keys", "trust"]);
    assert_eq!(code, 0, "{trust}");
    let trust_file = env.dir.path().join("pinned-runner-trust.toml");
    std::fs::write(&trust_file, &trust).expect("write trust file");
    let trust_arg = trust_file.to_str().expect("utf-8 path");
    let (code, out) = said(&env, &["runs", "verify", &run, "--trust", trust_arg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pinned by"), "{out}");

    // The attacker makes a key of their own, drops its public half into the
    // home, rewrites the run row and re-signs its seal over the new record.
    let other = Env::new();
    let (code, made) = said(&other, &["keys", "init"]);
    assert_eq!(code, 0, "{made}");
    let attacker_id = made
        .lines()
        .find_map(|l| l.strip_prefix("key id"))
        .map(|s| s.trim().to_owned())
        .expect("key id");
    let pub_name = format!("{attacker_id}.pub");
    std::fs::copy(
        other.home().join("keys").join(&pub_name),
        env.home().join("keys").join(&pub_name),
    )
    .expect("drop the key into the home");
    let seal = env.query(
        "SELECT head_hash, event_count, prev_seal, sealed_at, position, record FROM seals WHERE run_id = ?1",
        &[run.as_str().into()],
    );
    let [head, count, prev, sealed_at, position, record] =
        <[Option<String>; 6]>::try_from(seal[0].clone()).expect("six columns");
    let number = |n: Option<String>| n.and_then(|n| n.parse::<i64>().ok()).expect("a number");
    let (head, count, sealed_at, position) = (
        head.expect("head"),
        number(count),
        sealed_at.expect("sealed_at"),
        number(position),
    );
    let mut record: Value = serde_json::from_str(&record.expect("record")).expect("record");
    record["tool"] = json!("pay-invoice");
    let body = json!({
        "run_id": run, "head_hash": head, "event_count": count, "prev_seal": prev,
        "key_id": attacker_id, "sealed_at": sealed_at, "position": position, "record": record,
    });
    let signature = sign_with(
        &other.home().join("keys").join("runner.pk8"),
        &serde_jcs::to_vec(&body).expect("jcs"),
    );
    env.sql(
        "UPDATE seals SET key_id = ?2, signature = ?3, record = ?4 WHERE run_id = ?1",
        &[
            run.as_str().into(),
            attacker_id.as_str().into(),
            signature.as_str().into(),
            record.to_string().into(),
        ],
    );
    env.sql(
        "UPDATE runs SET tool = 'pay-invoice' WHERE id = ?1",
        &[run.as_str().into()],
    );

    // Unpinned, the home's keys are all there is: verify says so.
    let (_, unpinned) = said(&env, &["runs", "verify", &run]);
    assert!(unpinned.contains("UNPINNED"), "{unpinned}");
    // Pinned, the dropped key is not trusted.
    let (code, out) = said(&env, &["runs", "verify", &run, "--trust", trust_arg]);
    assert_eq!(code, 1, "the dropped key was trusted: {out}");
    assert!(
        out.contains(&attacker_id) && out.contains("not trusted"),
        "{out}"
    );
    // The same through AIRLOCK_TRUST.
    let out = env
        .airlock()
        .env("AIRLOCK_TRUST", &trust_file)
        .args(["runs", "verify", "--all"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
}

/// A consistent copy of the store, as a backup would take it.
/// A consistent copy of the SQLite file (the rollback test is SQLite's).
fn backup(env: &Env, to: &Path) {
    rusqlite::Connection::open(env.db())
        .expect("open the store")
        .execute("VACUUM INTO ?1", [to.to_str().expect("utf-8 path")])
        .expect("backup");
}

fn checkpoint(env: &Env, name: &str) -> String {
    let path = env.dir.path().join(name);
    let (code, out) = said(
        env,
        &["runs", "checkpoint", "--out", path.to_str().expect("utf-8")],
    );
    assert_eq!(code, 0, "{out}");
    path.to_str().expect("utf-8").to_owned()
}

#[test]
fn a_rolled_back_store_is_detected_against_a_checkpoint() {
    let env = Env::new();
    if env.sqlite_only("restores an older copy of the SQLite file") {
        return;
    }
    hello_profile(&env);
    hello(&env, "one", None);
    hello(&env, "two", None);
    let old = env.dir.path().join("old.db");
    backup(&env, &old);
    hello(&env, "three", None);
    let cp = checkpoint(&env, "checkpoint.txt");
    let (code, out) = said(&env, &["runs", "verify", "--all", "--checkpoint", &cp]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checkpoint: consistent"), "{out}");

    // Restore the older copy.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(env.home().join(format!("airlock.db{suffix}")));
    }
    std::fs::copy(&old, env.db()).expect("restore");
    let (code, out) = said(&env, &["runs", "verify", "--all"]);
    assert_eq!(
        code, 0,
        "without a checkpoint the rollback is invisible: {out}"
    );
    let (code, out) = said(&env, &["runs", "verify", "--all", "--checkpoint", &cp]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("covers 3 seals but the store has only 2") && out.contains("older copy"),
        "{out}"
    );

    // Rolled back and written again past the checkpoint's size.
    hello(&env, "four", None);
    hello(&env, "five", None);
    let (code, out) = said(&env, &["runs", "verify", "--all", "--checkpoint", &cp]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("are not the ones the checkpoint covers"),
        "{out}"
    );
}

#[test]
fn a_truncated_store_is_detected_against_a_checkpoint() {
    let env = Env::new();
    hello_profile(&env);
    hello(&env, "one", None);
    hello(&env, "two", None);
    let newest = hello(&env, "three", None);
    let cp = checkpoint(&env, "checkpoint.txt");
    for table in ["seals", "events"] {
        env.sql(
            &format!("DELETE FROM {table} WHERE run_id = ?1"),
            &[newest.as_str().into()],
        );
    }
    env.sql("DELETE FROM runs WHERE id = ?1", &[newest.as_str().into()]);
    let (code, out) = said(&env, &["runs", "verify", "--all"]);
    assert_eq!(
        code, 0,
        "without a checkpoint the truncation is invisible: {out}"
    );
    let (code, out) = said(&env, &["runs", "verify", "--all", "--checkpoint", &cp]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("covers 3 seals but the store has only 2"),
        "{out}"
    );

    // A checkpoint signed by a key that is not trusted proves nothing.
    let other = Env::new();
    hello_profile(&other);
    hello(&other, "x", None);
    let foreign = checkpoint(&other, "foreign.txt");
    let (code, out) = said(&env, &["runs", "verify", "--all", "--checkpoint", &foreign]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no trusted key signed this checkpoint"),
        "{out}"
    );
}

#[test]
fn serve_writes_checkpoints_and_sends_them_to_a_witness_and_both_verify() {
    let env = Env::new();
    hello_profile(&env);
    hello(&env, "one", None);
    let dir = env.dir.path().join("checkpoints");
    let witness = HttpServer::start();
    let witness_url = format!("http://127.0.0.1:{}/v1/checkpoints", witness.port());
    let mut server = Server::start(
        &env,
        &[
            "--checkpoint-dir",
            dir.to_str().expect("utf-8"),
            "--checkpoint-witness",
            &witness_url,
            "--checkpoint-every",
            "1s",
        ],
    );
    let latest = dir.join("latest");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !latest.exists() || witness.hits().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint written and sent"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.terminate(std::time::Duration::from_secs(30));
    assert!(dir.join("checkpoint-1").exists());
    let sent = &witness.hits()[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/checkpoints")
    );
    let received = env.dir.path().join("witnessed");
    std::fs::write(&received, &sent.body).expect("write the witness's copy");
    for checkpoint in [&latest, &received] {
        let (code, out) = said(
            &env,
            &[
                "runs",
                "verify",
                "--all",
                "--checkpoint",
                checkpoint.to_str().expect("utf-8"),
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("checkpoint: consistent"), "{out}");
    }
}

#[test]
fn tool_and_token_changes_outside_the_signed_control_log_are_detected() {
    let env = Env::new();
    hello_profile(&env);
    let (code, out) = said(
        &env,
        &["tokens", "create", "--role", "admin", "--name", "alice"],
    );
    assert_eq!(code, 0, "{out}");
    let hello_wasm = guests::example("hello");
    let (code, out) = said(&env, &["tools", "add", hello_wasm.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = said(&env, &["tokens", "revoke", "alice"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = said(&env, &["runs", "verify", "--all"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("control log: intact"), "{out}");

    // A token added straight into the table, and a revoked one revived.
    env.sql(
        "INSERT INTO api_tokens (name, role, hash, created_at) VALUES ('mallory', 'admin', ?1, '2026-01-01T00:00:00Z')",
        &[sha256_hex(b"airlock_mallory").into()],
    );
    env.sql(
        "UPDATE api_tokens SET revoked_at = NULL WHERE name = 'alice'",
        &[],
    );
    let (code, out) = said(&env, &["runs", "verify", "--all"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("API token mallory") && out.contains("API token alice"),
        "{out}"
    );
    assert!(out.contains("without the runner key"), "{out}");

    // A registered tool swapped for another digest.
    env.sql("DELETE FROM api_tokens WHERE name = 'mallory'", &[]);
    env.sql(
        "UPDATE api_tokens SET revoked_at = '2026-01-01T00:00:00Z' WHERE name = 'alice'",
        &[],
    );
    env.sql(
        "UPDATE tools SET digest = 'sha256:0000000000000000000000000000000000000000000000000000000000000000' WHERE name = 'hello'",
        &[],
    );
    let (code, out) = said(&env, &["runs", "verify", "--all"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tool hello") && out.contains("control log says"),
        "{out}"
    );

    // Rewriting the log itself breaks its signatures.
    let seq = env.query(
        "SELECT seq FROM control_log WHERE kind = 'tool.add' ORDER BY seq LIMIT 1",
        &[],
    )[0][0]
        .clone()
        .expect("the tool.add entry");
    edit_json(
        &env,
        "control_log",
        "fields",
        ("CAST(seq AS TEXT)", &seq),
        "/digest",
        json!("sha256:0000000000000000000000000000000000000000000000000000000000000000"),
    );
    let (code, out) = said(&env, &["runs", "verify", "--all"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("was edited"), "{out}");
}

#[test]
fn a_binding_changed_outside_the_signed_control_log_is_detected() {
    let env = Env::new();
    hello_profile(&env);
    env.profile("lax", &profile_body("lax", LIMITS, ""));
    let hello_wasm = guests::example("hello");
    let profiles = env.profiles();
    let profiles = profiles.to_str().expect("utf-8");
    let (code, out) = said(
        &env,
        &[
            "tools",
            "add",
            hello_wasm.to_str().expect("utf-8"),
            "--profile",
            "hello",
            "--profiles",
            profiles,
            "--actor",
            "alice",
        ],
    );
    assert_eq!(code, 0, "{out}");
    // The binding is a signed entry: who, and the profile.
    let binds = env.control_entries("tool.bind", "hello");
    assert_eq!(binds.len(), 1, "{binds:?}");
    assert_eq!(binds[0].0.as_deref(), Some("alice"));
    assert_eq!(binds[0].1["profile"], "hello");
    let (code, out) = said(&env, &["runs", "verify", "--all"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("control log: intact"), "{out}");

    // Rebinding the tool to a laxer profile straight in the table.
    env.sql(
        "INSERT INTO tool_bindings (tool, profile, bound_by, bound_at) VALUES ('hello', 'lax', 'alice', '2026-01-01T00:00:00Z')",
        &[],
    );
    let (code, out) = said(&env, &["runs", "verify", "--all"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "binding of tool hello is \"lax\" in the store but the control log says \"hello\""
        ),
        "{out}"
    );

    // Unbinding it the same way (so it falls back to `default`).
    env.sql("DELETE FROM tool_bindings WHERE profile = 'lax'", &[]);
    env.sql("UPDATE tool_bindings SET profile = NULL", &[]);
    let (code, out) = said(&env, &["runs", "verify", "--all"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("binding of tool hello is in the control log but missing from the store"),
        "{out}"
    );

    // A rebinding through airlock is recorded and verifies.
    let (code, out) = said(
        &env,
        &[
            "tools",
            "bind",
            "hello",
            "lax",
            "--profiles",
            profiles,
            "--actor",
            "bob",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let binds = env.control_entries("tool.bind", "hello");
    assert_eq!(
        binds.last().map(|b| b.1["profile"].clone()),
        Some(json!("lax"))
    );
    assert_eq!(
        binds.last().and_then(|b| b.0.clone()).as_deref(),
        Some("bob")
    );
    let (code, out) = said(&env, &["runs", "verify", "--all"]);
    assert_eq!(code, 0, "{out}");
}
