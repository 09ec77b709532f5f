//! Writing profiles from evidence (issue "Writing profiles from evidence:
//! observe, suggest, explain, test, diff"), end to end through the
//! `airlock` binary: `profiles explain` against golden files of every
//! example profile, `profiles diff`, `profiles test` replaying real runs of
//! the example tools against narrowed profiles, `profiles suggest` from
//! real runs, and observe mode. HTTP goes to test servers on 127.0.0.1
//! standing in for remote hosts, as in `net.rs`.

mod support;

use serde_json::Value;
use std::path::PathBuf;
use support::server::HttpServer;
use support::{Env, LIMITS, guests, of_kind, profile_body, report, text};

/// Set to rewrite the golden files from the current output.
const UPDATE_GOLDEN: &str = "AIRLOCK_UPDATE_GOLDEN";

fn repo() -> PathBuf {
    guests::repo_root().to_owned()
}

fn example_profile_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("examples/profiles"))
        .expect("examples/profiles")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".toml").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

// ------------------------------------------------------------- explain

#[test]
fn explain_of_every_example_profile_matches_its_golden_file() {
    let env = Env::new();
    let names = example_profile_names();
    assert!(names.len() >= 5, "{names:?}");
    let golden_dir = repo().join("tests/golden/explain");
    let update = std::env::var_os(UPDATE_GOLDEN).is_some();
    let mut stale = Vec::new();
    for name in &names {
        let out = env
            .airlock()
            .args([
                "profiles",
                "explain",
                name,
                "--format",
                "markdown",
                "--profiles",
            ])
            .arg(repo().join("examples/profiles"))
            .output()
            .expect("spawn airlock");
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let got = text(&out.stdout);
        assert!(
            got.ends_with("Everything else is refused.\n"),
            "{name}: {got}"
        );
        let path = golden_dir.join(format!("{name}.md"));
        if update {
            std::fs::create_dir_all(&golden_dir).expect("golden dir");
            std::fs::write(&path, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            stale.push(format!("--- {}\n{got}", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "explain output differs from the golden files (rerun with {UPDATE_GOLDEN}=1 to rewrite them after checking the new text):\n{}",
        stale.join("\n")
    );
}

#[test]
fn explain_groups_what_a_profile_grants_in_plain_sentences() {
    let env = Env::with_examples();
    let (code, said) = env.said(&[
        "profiles",
        "explain",
        "weather",
        "--profiles",
        &env.profiles().to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{said}");
    let order: Vec<usize> = [
        "Files:",
        "Network:",
        "Credentials:",
        "Limits:",
        "Admission:",
        "Approvals:",
        "Retries:",
        "Everything else is refused.",
    ]
    .iter()
    .map(|h| {
        said.find(h)
            .unwrap_or_else(|| panic!("{h} missing: {said}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{said}");
    assert!(
        said.contains(
            "It may send GET requests to http://127.0.0.1:18080/v1/* (`*` in the path stays within one segment); loopback address, reachable only because this entry names it."
        ),
        "{said}"
    );
    assert!(said.contains("It may send GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS requests to https://api.weather.example/v1/*"), "{said}");
    assert!(said.contains("the tool never sees it"), "{said}");
    assert!(
        !said.contains(&*env.dir.path().to_string_lossy()),
        "machine paths leak: {said}"
    );
}

// ---------------------------------------------------------------- diff

#[test]
fn diff_of_every_example_profile_against_itself_is_empty() {
    let env = Env::with_examples();
    let dir = env.profiles().to_string_lossy().into_owned();
    for name in example_profile_names() {
        let out = env.cmd(&["profiles", "diff", &name, &name, "--profiles", &dir]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "", "{name}");
    }
}

#[test]
fn diff_names_what_each_side_allows_that_the_other_does_not() {
    let env = Env::with_examples();
    let weather = std::fs::read_to_string(env.profiles().join("weather.toml")).expect("weather");
    let wider = weather
        .replace("name = \"weather\"", "name = \"weather-wide\"")
        .replace(
            "{ url = \"http://127.0.0.1:18080/v1/*\", methods = [\"GET\"] }",
            "\"http://127.0.0.1:18080/**\"",
        )
        .replace("timeout = \"10s\"", "timeout = \"20s\"")
        + "\n[retry]\nidempotency = \"optional\"\n";
    env.profile("weather-wide", &wider);
    let narrower = weather.replace("name = \"weather\"", "name = \"weather-narrow\"")
        + "\n[admission]\nrequire = [\"intent\"]\n";
    env.profile("weather-narrow", &narrower);
    let dir = env.profiles().to_string_lossy().into_owned();

    let (code, said) = env.said(&[
        "profiles",
        "diff",
        "weather",
        "weather-wide",
        "--profiles",
        &dir,
    ]);
    assert_eq!(code, 1, "{said}");
    let (b, a) = said
        .split_once("What weather allows that weather-wide does not:")
        .unwrap_or_else(|| panic!("no reverse section: {said}"));
    assert!(
        b.starts_with("What weather-wide allows that weather does not:"),
        "{said}"
    );
    assert!(b.contains("It may send GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS requests to http://127.0.0.1:18080/**"), "{said}");
    assert!(b.contains("A run may take 20s"), "{said}");
    assert!(
        a.contains("It may send GET requests to http://127.0.0.1:18080/v1/*"),
        "{said}"
    );
    assert!(
        !a.contains("A run may take"),
        "a shorter timeout is not more: {said}"
    );

    let (code, said) = env.said(&[
        "profiles",
        "diff",
        "weather-narrow",
        "weather",
        "--profiles",
        &dir,
    ]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("What weather allows that weather-narrow does not:\n  Admission:\n    - Not required here: Every run must say why it runs (--intent)."), "{said}");
    assert!(!said.contains("What weather-narrow allows"), "{said}");
}

// ---------------------------------------------------------------- test

const SECRET: &str = "sk-test-9a8b7c6d5e4f3021";

/// The weather profile pointed at a stand-in server on `port`, as the
/// example's comment describes, under `name`, with `allow` as its entry
/// and `extra` appended.
fn weather_profile(env: &Env, name: &str, port: u16, allow: &str, extra: &str) {
    env.profile(
        name,
        &format!(
            "name = \"{name}\"\ncategory = \"research\"\nrisk = \"low\"\nowner = \"research-platform\"\nrunbook = \"https://runbooks.example/weather\"\n\n[limits]\n{LIMITS}\n\n[net]\nallow = [{allow}]\n\n[credentials.weather]\nsource = \"env:WEATHER_API_KEY\"\ninject = {{ url = \"http://127.0.0.1:{port}\", header = \"Authorization\", value = \"Bearer {{secret}}\" }}\nttl = \"60s\"\n{extra}"
        ),
    );
}

/// `airlock run --json` of the weather example for Oslo against the
/// stand-in on `port`, under `profile`, with `extra` flags.
fn run_weather(env: &Env, profile: &str, port: u16, extra: &[&str]) -> Value {
    let input = format!(r#"{{"city":"Oslo","base_url":"http://127.0.0.1:{port}"}}"#);
    let out = env
        .airlock()
        .env("WEATHER_API_KEY", SECRET)
        .args(["run", "--json", "--profile", profile, "--profiles"])
        .arg(env.profiles())
        .args(extra)
        .arg(guests::example("weather"))
        .args(["--input", &input])
        .output()
        .expect("spawn airlock");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["output"]["temp_c"], 3.5, "{result}");
    result
}

fn run_example(env: &Env, profile: &str, tool: &str, input: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--input", input];
    args.extend_from_slice(extra);
    let out = env.run(profile, &guests::example(tool), &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    report(&out)
}

fn id(result: &Value) -> String {
    result["run_id"].as_str().expect("run id").to_owned()
}

fn denials(env: &Env, run_id: &str) -> Vec<Value> {
    env.events(run_id)
        .into_iter()
        .filter(|e| e["decision"] == "denied" || e["decision"] == "observed")
        .collect()
}

#[test]
fn test_catches_a_narrowed_egress_rule_and_a_removed_mount() {
    let server = HttpServer::start();
    let port = server.port();
    let env = Env::with_examples();
    let v1 = format!("{{ url = \"http://127.0.0.1:{port}/v1/*\", methods = [\"GET\"] }}");
    weather_profile(&env, "weather", port, &v1, "");
    let weather = id(&run_weather(&env, "weather", port, &[]));
    let counted = id(&run_example(
        &env,
        "word-count",
        "word-count",
        r#"{"path":"/data/q3-summary.txt"}"#,
        &[],
    ));
    let dir = env.profiles().to_string_lossy().into_owned();

    // The profiles the runs had: nothing changes.
    for (profile, run) in [("weather", &weather), ("word-count", &counted)] {
        let (code, said) = env.said(&[
            "profiles",
            "test",
            profile,
            "--against",
            run,
            "--profiles",
            &dir,
        ]);
        assert_eq!(code, 0, "{said}");
        assert!(said.contains("no decision would change"), "{said}");
    }

    // A narrowed egress rule: the request that was allowed would be denied.
    let forecast =
        format!("{{ url = \"http://127.0.0.1:{port}/v1/forecast\", methods = [\"GET\"] }}");
    weather_profile(&env, "weather-narrow", port, &forecast, "");
    let (code, said) = env.said(&[
        "profiles",
        "test",
        "weather-narrow",
        "--against",
        &weather,
        "--profiles",
        &dir,
    ]);
    assert_eq!(code, 1, "{said}");
    let line = format!("net.request GET http://127.0.0.1:{port}/v1/current?city: allowed → denied");
    assert!(said.contains(&line), "{said}");
    assert!(
        said.contains(&format!("was: net.allow[0] = {v1}")),
        "{said}"
    );
    assert!(
        said.contains(
            "now: net.allow: no entry matches (deny by default) (path \"/v1/current\" is outside"
        ),
        "{said}"
    );

    // A removed mount: the file the run read could not be opened.
    let word_count =
        std::fs::read_to_string(env.profiles().join("word-count.toml")).expect("profile");
    let unmounted = word_count
        .replace("name = \"word-count\"", "name = \"no-mount\"")
        .replace("[[fs.mount]]", "")
        .replace("host = \"../data/reports\"     # relative to this file", "")
        .replace("guest = \"/data\"", "")
        .replace("mode = \"ro\"", "");
    env.profile("no-mount", &unmounted);
    let (code, said) = env.said(&[
        "profiles",
        "test",
        "no-mount",
        "--against",
        &counted,
        "--profiles",
        &dir,
    ]);
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("/data/q3-summary.txt: allowed → denied"),
        "{said}"
    );
    assert!(
        said.contains("now: fs.mount: /data/q3-summary.txt is outside every mount"),
        "{said}"
    );

    // --since replays both runs, each as if under the profile.
    let (code, said) = env.said(&[
        "profiles",
        "test",
        "no-mount",
        "--since",
        "1h",
        "--profiles",
        &dir,
        "--json",
    ]);
    assert_eq!(code, 1, "{said}");
    let json: Value = serde_json::from_str(&said).unwrap_or_else(|e| panic!("{e}: {said}"));
    assert_eq!(json["runs"], 2, "{json}");
    let runs: Vec<&str> = json["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["run_id"].as_str())
        .collect();
    assert!(
        runs.contains(&counted.as_str()) && runs.contains(&weather.as_str()),
        "{json}"
    );
}

// ------------------------------------------------------------- suggest

#[test]
fn suggest_prints_a_profile_that_loads_and_only_adds_with_a_base() {
    let server = HttpServer::start();
    let port = server.port();
    let env = Env::with_examples();
    let v1 = format!("{{ url = \"http://127.0.0.1:{port}/v1/*\", methods = [\"GET\"] }}");
    weather_profile(&env, "weather", port, &v1, "");
    let weather = id(&run_weather(&env, "weather", port, &[]));
    let dir = env.profiles().to_string_lossy().into_owned();

    let (code, suggested) = env.said(&[
        "profiles",
        "suggest",
        &weather,
        "--name",
        "weather-min",
        "--profiles",
        &dir,
    ]);
    assert_eq!(code, 0, "{suggested}");
    env.profile("weather-min", &suggested);
    let (code, said) = env.said(&["profiles", "check", "weather-min", "--profiles", &dir]);
    assert_eq!(code, 0, "the suggestion does not load: {said}\n{suggested}");
    let entry = format!("{{ url = \"http://127.0.0.1:{port}/v1/current\", methods = [\"GET\"] }}");
    assert!(suggested.contains(&entry), "{suggested}");
    assert!(
        suggested.contains(&format!("# needed by run {}", &weather[..8])),
        "{suggested}"
    );
    assert!(suggested.contains("# [credentials.weather]"), "{suggested}");
    assert!(
        suggested.contains("fuel = ") && suggested.contains("observed max"),
        "{suggested}"
    );
    assert!(
        !suggested.contains("[[fs.mount]]"),
        "nothing was mounted: {suggested}"
    );

    // With the profile the run had as the base, nothing needs adding.
    let (code, added) = env.said(&[
        "profiles",
        "suggest",
        &weather,
        "--base",
        "weather",
        "--profiles",
        &dir,
    ]);
    assert_eq!(code, 0, "{added}");
    assert!(
        !added.contains("[net]") && !added.contains("[limits]"),
        "{added}"
    );
    // With a base that lacks the egress, only the entry is added.
    weather_profile(
        &env,
        "weather-other",
        port,
        "\"https://api.weather.example/v1/*\"",
        "",
    );
    let (code, added) = env.said(&[
        "profiles",
        "suggest",
        &weather,
        "--base",
        "weather-other",
        "--profiles",
        &dir,
    ]);
    assert_eq!(code, 0, "{added}");
    assert!(
        added.contains(&entry) && !added.contains("name = "),
        "{added}"
    );
}

// ------------------------------------------------------------- observe

fn observing(extra: &str) -> String {
    format!("[observe]\nallowed = true\n{extra}")
}

/// Profile `name` in observe mode that names the loopback test server on
/// `port` literally (loopback is refused even in observe mode unless the
/// profile names the address), for a path no tool asks for, and grants no
/// credential (observe mode never injects one into a request the profile
/// refuses).
fn observing_loopback(env: &Env, name: &str, port: u16) {
    env.profile(
        name,
        &profile_body(
            name,
            LIMITS,
            &format!(
                "{}\n[net]\nallow = [{{ url = \"http://127.0.0.1:{port}/health\", methods = [\"HEAD\"] }}]\n",
                observing("")
            ),
        ),
    );
}

#[test]
fn observe_is_refused_unless_the_profile_allows_it() {
    let env = Env::with_examples();
    let out = env.run(
        "hello",
        &guests::example("hello"),
        &["--observe", "--input", r#"{"name":"Ada"}"#],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let result = report(&out);
    assert_eq!(result["status"], "denied");
    let said = format!("{} {}", result["error"], text(&out.stderr));
    assert!(said.contains("observe.allowed = false"), "{said}");
    let checks = env.events(&id(&result));
    let observe = of_kind(&checks, "admission.check")
        .into_iter()
        .find(|c| c["target"] == "observe")
        .unwrap_or_else(|| panic!("no observe check: {checks:?}"))
        .clone();
    assert_eq!(observe["decision"], "denied", "{observe}");
    assert!(
        of_kind(&checks, "run.start").is_empty(),
        "nothing may start"
    );
}

#[test]
fn observe_lets_unlisted_egress_through_but_never_metadata_or_credentials() {
    let server = HttpServer::start();
    let port = server.port();
    let env = Env::new();
    // The stand-in's address is named literally (as every loopback peer
    // must be), for a path the probe never asks for.
    env.profile(
        "probe",
        &profile_body(
            "probe",
            LIMITS,
            &format!(
                "{}\n[net]\nallow = [{{ url = \"http://127.0.0.1:{port}/health\", methods = [\"HEAD\"] }}]\n\n[credentials.weather]\nsource = \"env:WEATHER_API_KEY\"\ninject = {{ url = \"http://127.0.0.1:{port}/v1/current\", header = \"Authorization\", value = \"Bearer {{secret}}\" }}\n",
                observing("")
            ),
        ),
    );
    let requests = [
        format!("GET http://127.0.0.1:{port}/v1/listed-nowhere"),
        "GET http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("GET http://127.0.0.1:{port}/v1/current"),
        format!("TRACE http://127.0.0.1:{port}/v1/x"),
    ];
    let mut cmd = env.airlock();
    let out = cmd
        .env("WEATHER_API_KEY", SECRET)
        .args([
            "run",
            "--json",
            "--observe",
            "--profile",
            "probe",
            "--profiles",
        ])
        .arg(env.profiles())
        .arg(guests::guest("http_probe"))
        .arg("--")
        .args(&requests)
        .output()
        .expect("spawn airlock");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result = report(&out);
    let lines: Vec<Value> = result["stdout"]
        .as_str()
        .expect("stdout")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(lines[0]["status"], 200, "observed and sent: {}", lines[0]);
    assert_eq!(
        lines[1]["ok"], false,
        "metadata must stay refused: {}",
        lines[1]
    );
    assert_eq!(
        lines[2]["ok"], false,
        "a credential must never ride an observed request: {}",
        lines[2]
    );
    assert_eq!(lines[3]["ok"], false, "TRACE is never sent: {}", lines[3]);
    let hits: Vec<String> = server.hits().iter().map(|h| h.path.clone()).collect();
    assert_eq!(
        hits,
        ["/v1/listed-nowhere"],
        "only the observed request went out"
    );
    assert!(server.hits().iter().all(|h| h.authorization.is_none()));

    let run = id(&result);
    let events = env.events(&run);
    let requests = of_kind(&events, "net.request");
    let observed: Vec<&&Value> = requests
        .iter()
        .filter(|e| e["decision"] == "observed")
        .collect();
    assert!(!observed.is_empty(), "{requests:?}");
    assert!(
        observed
            .iter()
            .all(|e| e["rule"] == "net.allow: no entry matches (deny by default)"),
        "{observed:?}"
    );
    let metadata = of_kind(&events, "net.connect")
        .into_iter()
        .find(|e| {
            e["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("169.254.169.254"))
        })
        .unwrap_or_else(|| panic!("no refused connect to the metadata address: {events:?}"));
    assert_eq!(metadata["decision"], "denied", "{metadata}");
    assert!(
        metadata["rule"]
            .as_str()
            .is_some_and(|r| r.starts_with("net: loopback, private")),
        "{metadata}"
    );
    let credential = of_kind(&events, "credential.use");
    assert!(
        credential.iter().all(|e| e["decision"] == "denied"),
        "{credential:?}"
    );
    assert!(
        credential.iter().any(|e| e["rule"]
            .as_str()
            .is_some_and(|r| r.starts_with("observe:"))),
        "{credential:?}"
    );
    env.assert_verifies(&run);

    // Marked as observed in the run list, the review and the report.
    let (_, listed) = env.said(&["runs", "list"]);
    let row = listed
        .lines()
        .find(|l| l.starts_with(&run))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains("observed"), "{row}");
    let (_, review) = env.said(&["runs", "review", &run]);
    assert!(review.contains("observe"), "{review}");
    let (_, report) = env.said(&["report", "--json"]);
    let report: Value = serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {report}"));
    assert_eq!(report["policy_conformance"]["numerator"], 0, "{report}");
    assert_eq!(report["observed_runs"], 1, "{report}");
}

/// observe → suggest → run again under the suggestion → no denials.
fn round_trip(env: &Env, observed_run: &str, name: &str, rerun: impl Fn(&str) -> Value) {
    let dir = env.profiles().to_string_lossy().into_owned();
    let (code, suggested) = env.said(&[
        "profiles",
        "suggest",
        observed_run,
        "--name",
        name,
        "--profiles",
        &dir,
    ]);
    assert_eq!(code, 0, "{suggested}");
    env.profile(name, &suggested);
    let (code, said) = env.said(&["profiles", "check", name, "--profiles", &dir]);
    assert_eq!(code, 0, "{said}\n{suggested}");
    let again = rerun(name);
    let refused = denials(env, &id(&again));
    assert!(
        refused.is_empty(),
        "denials under the suggested profile:\n{suggested}\n{refused:?}"
    );
    let (code, said) = env.said(&[
        "profiles",
        "test",
        name,
        "--against",
        observed_run,
        &id(&again),
        "--profiles",
        &dir,
    ]);
    assert!(said.contains("observed → allowed") || code == 0, "{said}");
}

#[test]
fn observe_then_suggest_then_run_weather_without_denials() {
    let server = HttpServer::start();
    let port = server.port();
    let env = Env::with_examples();
    // The stand-in does not check the missing credential.
    observing_loopback(&env, "weather-observe", port);
    let first = run_weather(&env, "weather-observe", port, &["--observe"]);
    let observed = id(&first);
    assert!(
        env.events(&observed)
            .iter()
            .any(|e| e["decision"] == "observed")
    );
    round_trip(&env, &observed, "weather-suggested", |name| {
        run_weather(&env, name, port, &[])
    });
}

#[test]
fn observe_then_suggest_then_run_write_report_without_denials() {
    let env = Env::with_examples();
    let write_report =
        std::fs::read_to_string(env.profiles().join("write-report.toml")).expect("profile");
    let observe = write_report
        .replace("name = \"write-report\"", "name = \"write-report-observe\"")
        + "\n[[fs.mount]]\nhost = \"../data/reports\"\nguest = \"/data\"\nmode = \"rw\"\n\n"
        + &observing("");
    env.profile("write-report-observe", &observe);
    let input = r#"{"title":"Q3","lines":["- revenue up 12%"]}"#;
    let first = run_example(
        &env,
        "write-report-observe",
        "write-report",
        input,
        &["--observe"],
    );
    let observed = id(&first);
    let dir = env.profiles().to_string_lossy().into_owned();
    let (_, suggested) = env.said(&["profiles", "suggest", &observed, "--profiles", &dir]);
    assert!(
        suggested.contains("guest = \"/out\"\nmode = \"rw\""),
        "{suggested}"
    );
    assert!(
        !suggested.contains("guest = \"/data\""),
        "the unused mount is dropped: {suggested}"
    );
    round_trip(&env, &observed, "write-report-suggested", |name| {
        run_example(&env, name, "write-report", input, &[])
    });
}

/// A tool no example describes (`tests/guests` `http_probe`, a command
/// tool): its profile is written only from what observe mode recorded.
#[test]
fn observe_then_suggest_then_run_a_held_out_tool_without_denials() {
    let server = HttpServer::start();
    let port = server.port();
    let env = Env::new();
    observing_loopback(&env, "probe-observe", port);
    let requests = vec![
        format!("GET http://127.0.0.1:{port}/v1/items/42"),
        format!("POST http://127.0.0.1:{port}/v1/orders {{\"n\": 1}}"),
    ];
    let tool = guests::guest("http_probe");
    // `http_probe -- REQUEST…`: the report, and the statuses it printed.
    let probe = |profile: &str, extra: &[&str]| -> (Value, Vec<Value>) {
        let out = env
            .airlock()
            .args(["run", "--json", "--profile", profile, "--profiles"])
            .arg(env.profiles())
            .args(extra)
            .arg(&tool)
            .arg("--")
            .args(&requests)
            .output()
            .expect("spawn airlock");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let result = report(&out);
        let statuses = result["stdout"]
            .as_str()
            .expect("stdout")
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line")["status"].clone())
            .collect();
        (result, statuses)
    };
    let (first, statuses) = probe("probe-observe", &["--observe"]);
    assert_eq!(statuses, [200, 200], "{first}");
    let observed = id(&first);
    let events = env.events(&observed);
    // Both requests, each refused by the profile as written, went ahead.
    let observed_requests = events
        .iter()
        .filter(|e| e["kind"] == "net.request" && e["decision"] == "observed")
        .count();
    assert_eq!(observed_requests, 2, "{events:?}");
    round_trip(&env, &observed, "probe-suggested", |name| {
        let (again, statuses) = probe(name, &[]);
        assert_eq!(statuses, [200, 200], "{again}");
        again
    });
}

// ----------------------------------------------------------- dashboard

#[test]
fn dashboard_explains_profiles_and_badges_observed_runs() {
    let env = Env::with_examples();
    let hello = std::fs::read_to_string(env.profiles().join("hello.toml")).expect("hello");
    env.profile(
        "hello-observe",
        &(hello.replace("name = \"hello\"", "name = \"hello-observe\"") + "\n" + &observing("")),
    );
    let observed = id(&run_example(
        &env,
        "hello-observe",
        "hello",
        r#"{"name":"Ada"}"#,
        &["--observe"],
    ));
    let token = support::api::token(&env, "auditor", "audit");
    let server = support::api::Server::start(&env, &[]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let login = agent
        .post(&format!("{}/login", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .send(format!("token={token}"))
        .expect("sign in");
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {}", login.status()))
        .to_owned();
    let page = |path: &str| -> (u16, String) {
        let mut answer = agent
            .get(&format!("{}{path}", server.base))
            .header("cookie", &cookie)
            .call()
            .expect("dashboard page");
        let status = answer.status().as_u16();
        (
            status,
            answer.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    let (status, body) = page("/profiles/weather");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Everything else is refused."), "{body}");
    assert!(body.contains("the tool never sees it"), "{body}");
    let (status, _) = page("/profiles/no-such-profile");
    assert_eq!(status, 404);
    let (status, body) = page(&format!("/runs/{observed}"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<span class=\"badge observed\">observed</span>"),
        "{body}"
    );
    assert!(body.contains("href=\"/profiles/hello-observe\""), "{body}");
    let (_, list) = page("/runs");
    assert!(list.contains("badge observed"), "{list}");
}
