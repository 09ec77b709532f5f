//! Tools in Python and JavaScript, end to end (issue "Tools in Python and
//! JavaScript, first class"): the examples in `examples/python` and
//! `examples/js`, built by the real `airlock build` with the pinned
//! toolchains, run through the `airlock` binary and through `airlock
//! serve`, with the same checks the Rust examples have: success with a
//! verified evidence chain, a refused read, a refused host, an injected
//! credential the guest never sees, an approval granted from another
//! process. Then `airlock new` -> `airlock build` -> `airlock run` for each
//! language, and the errors of a build whose toolchain is missing.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;
use support::api::{Server, token};
use support::languages::{self, Lang};
use support::server::HttpServer;
use support::{
    Env, REQUIRE_INTENT_AND_ACTOR, of_kind, payments_needing_approval, profile_body, report, text,
};

const SECRET: &str = "sk-test-lang-7c41d09e2b";

/// An env whose compile cache is the one the language tests share.
fn lang_env() -> Env {
    let env = Env::new();
    languages::share_compile_cache(&env);
    env
}

/// Interpreters need more memory than the Rust examples' small profiles.
const LANG_LIMITS: &str =
    "fuel = 20_000_000_000\nmemory = \"128MiB\"\ntimeout = \"30s\"\noutput = \"1MiB\"";

fn complete_chain(env: &Env, run_id: &str) -> Vec<Value> {
    let events = env.events(run_id);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run.request"), "{kinds:?}");
    assert!(kinds.contains(&"run.start"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run.end"), "{kinds:?}");
    env.assert_verifies(run_id);
    events
}

fn run_id(result: &Value) -> &str {
    result["run_id"].as_str().expect("run id")
}

// ---------------------------------------------------------------- hello

fn hello_runs_notes_and_describes_itself(lang: Lang) {
    let env = lang_env();
    env.profile("hello", &profile_body("hello", LANG_LIMITS, ""));
    let hello = languages::example(lang, "hello");
    let out = env.run("hello", &hello, &["--input", r#"{"name":"Ada"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["status"], "ok");
    assert_eq!(result["output"], json!({"greeting": "Hello, Ada!"}));
    let events = complete_chain(&env, run_id(&result));
    let notes = of_kind(&events, "note");
    assert_eq!(notes.len(), 1, "{events:?}");
    assert_eq!(notes[0]["target"], "greeted");
    assert_eq!(notes[0]["value"], "Ada");

    // Input that does not fit the declared parameters never reaches the
    // function: the SDK refuses it, naming the field.
    for (bad, needle) in [
        (r#"{"nom":"x"}"#, "field"),
        (r#"{"name":7}"#, "name"),
        ("[1]", "object"),
    ] {
        let out = env.run("hello", &hello, &["--input", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", text(&out.stderr));
        let result = report(&out);
        let error = result["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("input is not valid JSON for hello") && error.contains(needle),
            "{bad}: {error}"
        );
        assert!(of_kind(&complete_chain(&env, run_id(&result)), "note").is_empty());
    }

    // `describe`: what an agent sees when the tool is registered.
    let added = env
        .airlock()
        .args(["tools", "add", "--name", "hello"])
        .arg(&hello)
        .output()
        .expect("tools add");
    assert!(added.status.success(), "{}", text(&added.stderr));
    let shown = env.cmd(&["tools", "show", "hello"]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let record: Value = serde_json::from_slice(&shown.stdout).expect("tools show JSON");
    assert_eq!(record["world"], "tool", "{record}");
    assert_eq!(record["description"], "Greets someone by name.", "{record}");
    let schema = match &record["input_schema"] {
        Value::String(text) => serde_json::from_str(text).expect("schema JSON"),
        other => other.clone(),
    };
    assert_eq!(schema["type"], "object", "{record}");
    assert_eq!(schema["properties"]["name"]["type"], "string", "{record}");
    assert_eq!(schema["required"], json!(["name"]), "{record}");
}

#[test]
fn python_hello_runs_notes_and_describes_itself() {
    hello_runs_notes_and_describes_itself(Lang::Python);
}

#[test]
fn js_hello_runs_notes_and_describes_itself() {
    hello_runs_notes_and_describes_itself(Lang::Js);
}

// -------------------------------------------------------------- weather

fn weather_profile(env: &Env, port: u16) {
    env.profile(
        "weather",
        &profile_body(
            "weather",
            LANG_LIMITS,
            &format!(
                "[net]\nallow = [{{ url = \"http://127.0.0.1:{port}/v1/*\", methods = [\"GET\"] }}]\n\n[credentials.weather]\nsource = \"env:WEATHER_API_KEY\"\ninject = {{ url = \"http://127.0.0.1:{port}\", header = \"Authorization\", value = \"Bearer {{secret}}\" }}\nttl = \"60s\"\n"
            ),
        ),
    );
}

fn run_weather(env: &Env, lang: Lang, base_url: &str) -> std::process::Output {
    let input = json!({"city": "Oslo", "base_url": base_url}).to_string();
    env.airlock()
        .env("WEATHER_API_KEY", SECRET)
        .args(["run", "--json", "--profile", "weather", "--profiles"])
        .arg(env.profiles())
        .arg(languages::example(lang, "weather"))
        .args(["--input", &input])
        .output()
        .expect("spawn")
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_symlink() {
            continue; // the shared compile cache holds no run data
        }
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

fn weather_gets_its_key_injected_and_never_sees_it(lang: Lang) {
    let server = HttpServer::start();
    let env = lang_env();
    weather_profile(&env, server.port());
    let out = run_weather(&env, lang, &format!("http://127.0.0.1:{}", server.port()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["output"]["city"], "Oslo");
    assert_eq!(result["output"]["temp_c"], 3.5);

    let hits = server.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        hits[0].authorization.as_deref(),
        Some(&*format!("Bearer {SECRET}")),
        "the host injected the key"
    );
    let events = complete_chain(&env, run_id(&result));
    let uses = of_kind(&events, "credential.use");
    assert_eq!(uses.len(), 1, "{events:?}");
    assert_eq!(uses[0]["decision"], "allowed");
    assert_eq!(of_kind(&events, "net.request")[0]["decision"], "allowed");
    assert_eq!(of_kind(&events, "net.response")[0]["status"], 200);

    // The key is nowhere the guest or the store could have kept it.
    for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(!text(bytes).contains(SECRET), "secret in {what}");
    }
    let leaked = files_containing(&env.home(), SECRET.as_bytes());
    assert!(leaked.is_empty(), "secret stored in {leaked:?}");
}

#[test]
fn python_weather_gets_its_key_injected_and_never_sees_it() {
    weather_gets_its_key_injected_and_never_sees_it(Lang::Python);
}

#[test]
fn js_weather_gets_its_key_injected_and_never_sees_it() {
    weather_gets_its_key_injected_and_never_sees_it(Lang::Js);
}

fn a_host_outside_the_allowlist_is_refused(lang: Lang) {
    let allowed = HttpServer::start();
    let other = HttpServer::start();
    let env = lang_env();
    weather_profile(&env, allowed.port());
    let url = format!("http://127.0.0.1:{}", other.port());
    let out = run_weather(&env, lang, &url);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["status"], "failed");
    let error = result["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("127.0.0.1:{}", other.port())),
        "the error names the refused request: {error}"
    );
    if lang == Lang::Python {
        assert!(error.contains("HTTP-request-denied"), "{error}");
    }
    assert!(other.hits().is_empty(), "nothing reached the other host");
    assert!(allowed.hits().is_empty());
    let events = complete_chain(&env, run_id(&result));
    let refused = of_kind(&events, "net.request");
    assert_eq!(refused.len(), 1, "{events:?}");
    assert_eq!(refused[0]["decision"], "denied");
    assert!(
        refused[0]["rule"]
            .as_str()
            .is_some_and(|r| r.contains("net.allow")),
        "the evidence names the rule: {}",
        refused[0]
    );
    assert!(of_kind(&events, "credential.use").is_empty());
}

#[test]
fn python_a_host_outside_the_allowlist_is_refused() {
    a_host_outside_the_allowlist_is_refused(Lang::Python);
}

#[test]
fn js_a_host_outside_the_allowlist_is_refused() {
    a_host_outside_the_allowlist_is_refused(Lang::Js);
}

// ------------------------------------------------------------ files

fn reads_its_mount_and_a_read_outside_it_is_refused(lang: Lang) {
    let env = lang_env();
    let data = env.path("data");
    std::fs::write(data.join("q3.txt"), "Revenue grew.\nCosts fell.\n").expect("seed");
    let outside = env.path("outside");
    std::fs::write(outside.join("host-secret.txt"), "host only\n").expect("seed");
    env.profile(
        "read",
        &profile_body(
            "read",
            LANG_LIMITS,
            &format!(
                "[[fs.mount]]\nhost = \"{}\"\nguest = \"/data\"\nmode = \"ro\"\n",
                data.display()
            ),
        ),
    );
    let tool = languages::guest(lang, "read-file");
    let out = env.run("read", &tool, &["--input", r#"{"path":"/data/q3.txt"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["output"]["first_line"], "Revenue grew.");
    assert_eq!(result["output"]["bytes"], 26);
    let events = complete_chain(&env, run_id(&result));
    assert!(
        of_kind(&events, "fs.read")
            .iter()
            .any(|e| e["target"] == "/data/q3.txt"),
        "{events:?}"
    );

    for (path, recorded) in [
        ("/etc/passwd".to_owned(), true),
        (outside.join("host-secret.txt").display().to_string(), true),
        // Refused too; whether the guest's libc resolves the `..` before
        // asking the host decides which event records it.
        ("/data/../../../../etc/passwd".to_owned(), false),
    ] {
        let input = json!({ "path": path }).to_string();
        let out = env.run("read", &tool, &["--input", &input]);
        assert_eq!(out.status.code(), Some(1), "{path}: {}", text(&out.stderr));
        let result = report(&out);
        let error = result["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(path.as_str()),
            "the error names the path: {error}"
        );
        assert!(!error.contains("host only"), "{path}: {error}");
        let events = complete_chain(&env, run_id(&result));
        let denied: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["decision"] == "denied"
                    && e["kind"].as_str().is_some_and(|k| k.starts_with("fs."))
            })
            .collect();
        assert!(
            !recorded || !denied.is_empty(),
            "{path}: no denied fs event: {events:?}"
        );
        for e in &denied {
            assert!(
                e["rule"].as_str().is_some_and(|r| !r.is_empty()),
                "{path}: denied without a rule: {e}"
            );
        }
    }
}

#[test]
fn python_reads_its_mount_and_a_read_outside_it_is_refused() {
    reads_its_mount_and_a_read_outside_it_is_refused(Lang::Python);
}

#[test]
fn js_reads_its_mount_and_a_read_outside_it_is_refused() {
    reads_its_mount_and_a_read_outside_it_is_refused(Lang::Js);
}

// ------------------------------------------------------------ approvals

const ACTOR: &str = "agent-7";

fn start_payment(env: &Env, lang: Lang, port: u16) -> Child {
    let input = json!({"invoice": "INV-7", "amount_cents": 1200, "base_url": format!("http://127.0.0.1:{port}")}).to_string();
    env.airlock()
        .args(["run", "--json", "--profile", "pay", "--profiles"])
        .arg(env.profiles())
        .args([
            "--actor",
            ACTOR,
            "--intent",
            "pay INV-7",
            "--idempotency-key",
            "pay-INV-7",
            "--input",
            &input,
        ])
        .arg(languages::example(lang, "pay-invoice"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the run")
}

fn an_approved_payment_from_another_process_is_sent_once(lang: Lang) {
    let server = HttpServer::start();
    let env = lang_env();
    env.profile(
        "pay",
        &profile_body(
            "pay",
            LANG_LIMITS,
            &format!(
                "{}\n{REQUIRE_INTENT_AND_ACTOR}\n[retry]\nidempotency = \"required\"\n",
                payments_needing_approval(server.port(), &["oncall"], "10m", "10m")
            ),
        ),
    );
    env.approver("oncall");
    let mut child = start_payment(&env, lang, server.port());
    let request = env.wait_for_approval(&mut child, Duration::from_secs(120));
    assert_eq!(request["actor"], ACTOR);
    assert!(
        request["action"]
            .as_str()
            .is_some_and(|a| a.contains("POST")),
        "{request}"
    );
    assert!(
        server.hits().is_empty(),
        "nothing is sent before the decision"
    );
    let id = request["id"].as_str().expect("id");
    let approved = env.decide("approve", id, "oncall", "matches PO 4711");
    assert!(approved.status.success(), "{}", text(&approved.stderr));

    let out = child.wait_with_output().expect("wait for the run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["output"]["payment_id"], "pay_1");
    let hits = server.hits();
    assert_eq!(hits.len(), 1);
    assert!(
        hits[0].idempotency_key.is_some(),
        "the host derived an Idempotency-Key"
    );
    let events = complete_chain(&env, run_id(&result));
    let decision = &of_kind(&events, "approval.decision")[0];
    assert_eq!(decision["outcome"], "approved");
    assert_eq!(decision["by"], "oncall");
}

#[test]
fn python_an_approved_payment_from_another_process_is_sent_once() {
    an_approved_payment_from_another_process_is_sent_once(Lang::Python);
}

#[test]
fn js_an_approved_payment_from_another_process_is_sent_once() {
    an_approved_payment_from_another_process_is_sent_once(Lang::Js);
}

// ---------------------------------------------------------------- serve

fn through_serve(lang: Lang) {
    let upstream = HttpServer::start();
    let env = lang_env();
    env.profile("hello", &profile_body("hello", LANG_LIMITS, ""));
    // No credential: the server's environment holds no secret.
    env.profile(
        "weather",
        &profile_body(
            "weather",
            LANG_LIMITS,
            &format!(
                "[net]\nallow = [{{ url = \"http://127.0.0.1:{}/v1/*\", methods = [\"GET\"] }}]\n",
                upstream.port()
            ),
        ),
    );
    let alice = token(&env, "submitter", "alice");
    let server = Server::start(&env, &[]);

    let hello = server.submit(&alice, "hello", &languages::example(lang, "hello"));
    assert_eq!(hello["name"], "hello");
    let run = server.post(
        "/v1/runs",
        &alice,
        json!({"tool": "hello", "profile": "hello", "input": {"name": "api"}}),
    );
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.json["status"], "ok");
    assert_eq!(run.json["output"]["greeting"], "Hello, api!");
    let hello_run = run.json["run_id"].as_str().expect("run id").to_owned();

    server.submit(&alice, "weather", &languages::example(lang, "weather"));
    let allowed = server.post(
        "/v1/runs",
        &alice,
        json!({"tool": "weather", "profile": "weather", "input": {"city": "Oslo", "base_url": format!("http://127.0.0.1:{}", upstream.port())}}),
    );
    assert_eq!(allowed.json["status"], "ok", "{}", allowed.text);
    assert_eq!(allowed.json["output"]["temp_c"], 3.5);
    assert_eq!(upstream.hits().len(), 1);
    let other = HttpServer::start();
    let refused = server.post(
        "/v1/runs",
        &alice,
        json!({"tool": "weather", "profile": "weather", "input": {"city": "Oslo", "base_url": format!("http://127.0.0.1:{}", other.port())}}),
    );
    assert_eq!(refused.status, 200, "{}", refused.text);
    assert_eq!(refused.json["status"], "failed", "{}", refused.text);
    assert_eq!(refused.json["exit_code"], 1);
    assert!(other.hits().is_empty());
    let refused_run = refused.json["run_id"].as_str().expect("run id").to_owned();
    let events = server.get(&format!("/v1/runs/{refused_run}/evidence"), &alice);
    let denied: Vec<&Value> = events
        .json
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "net.request" && e["decision"] == "denied")
        .collect();
    assert_eq!(denied.len(), 1, "{}", events.text);

    for id in [&hello_run, &refused_run] {
        let verified = server.get(&format!("/v1/runs/{id}/verify"), &alice);
        assert_eq!(verified.json["intact"], true, "{}", verified.text);
    }
}

#[test]
fn python_tools_run_through_serve() {
    through_serve(Lang::Python);
}

#[test]
fn js_tools_run_through_serve() {
    through_serve(Lang::Js);
}

// ------------------------------------------------- new -> build -> run

fn scaffold_build_run(lang: &str, extra_env: &[(&str, PathBuf)]) {
    let env = lang_env();
    let project = env.dir.path().join("projects").join("t");
    let made = env
        .airlock()
        .args(["new"])
        .arg(&project)
        .args(["--lang", lang])
        .output()
        .expect("airlock new");
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    for file in ["README.md", "input.json", "profiles/t.toml"] {
        assert!(project.join(file).is_file(), "{lang}: no {file}");
    }
    let again = env
        .airlock()
        .args(["new"])
        .arg(&project)
        .args(["--lang", lang])
        .output()
        .expect("airlock new");
    assert_eq!(
        again.status.code(),
        Some(2),
        "{lang}: new over an existing project"
    );
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );

    if lang == "js" {
        // The project's own build tools: the pinned ones, linked in as
        // `npm install` in the project would install them.
        let modules = support::guests::repo_root().join("tests/languages/node_modules");
        std::os::unix::fs::symlink(modules, project.join("node_modules")).expect("link");
    }
    let mut build = languages::build_command(&env);
    for (name, value) in extra_env {
        build.env(name, value);
    }
    let built = build
        .arg("build")
        .arg(&project)
        .output()
        .expect("airlock build");
    assert_eq!(
        built.status.code(),
        Some(0),
        "{lang}: {}{}",
        text(&built.stdout),
        text(&built.stderr)
    );
    let component = project.join("target/t.wasm");
    assert_eq!(text(&built.stdout).trim(), component.display().to_string());

    let input = format!("@{}", project.join("input.json").display());
    let out = env
        .airlock()
        .args(["run", "--json", "--profile", "t", "--profiles"])
        .arg(project.join("profiles"))
        .args(["--input", &input])
        .arg(&component)
        .output()
        .expect("airlock run");
    assert_eq!(out.status.code(), Some(0), "{lang}: {}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["output"]["greeting"], "Hello, Ada!", "{lang}");
    complete_chain(&env, run_id(&result));
}

#[test]
fn python_new_build_run() {
    languages::toolchain_bins();
    scaffold_build_run("python", &[]);
}

#[test]
fn js_new_build_run() {
    languages::toolchain_bins();
    scaffold_build_run("js", &[]);
}

#[test]
fn rust_new_build_run() {
    // Reuse the compiled dependencies of the Rust examples.
    let target = support::guests::repo_root().join("target/wasm");
    scaffold_build_run("rust", &[("CARGO_TARGET_DIR", target)]);
}

#[test]
fn a_missing_toolchain_is_named_with_its_install_command_and_nothing_is_installed() {
    let env = Env::new();
    for (lang, needle) in [
        ("python", "pip install componentize-py==0.25.1"),
        ("js", "npm install --prefix"),
    ] {
        let project = env.dir.path().join(format!("p-{lang}"));
        let made = env
            .airlock()
            .arg("new")
            .arg(&project)
            .args(["--lang", lang])
            .output()
            .expect("airlock new");
        assert!(made.status.success(), "{}", text(&made.stderr));
        let before = std::fs::read_dir(&project).expect("ls").count();
        // PATH without the toolchains (and without node's npm tools).
        let out = env
            .airlock()
            .env("PATH", "/nonexistent")
            .arg("build")
            .arg(&project)
            .output()
            .expect("airlock build");
        assert_eq!(out.status.code(), Some(2), "{lang}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("is not installed"), "{lang}: {stderr}");
        assert!(
            stderr.contains(needle) || stderr.contains("apt-get install nodejs"),
            "{lang}: {stderr}"
        );
        assert_eq!(
            std::fs::read_dir(&project).expect("ls").count(),
            before,
            "{lang}: the failed build left files behind"
        );
    }
    let out = env.cmd(&["build", env.dir.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not a tool project"),
        "{}",
        text(&out.stderr)
    );
}
