//! What Python and JavaScript tools cost against the Rust one, measured in
//! the same run of the same binary (issue "Tools in Python and JavaScript").
//! For `hello` in each language (`examples/hello`, `examples/python/hello`,
//! `examples/js/hello`):
//!
//! 1. first load: Cranelift compiles the component (fresh engine, empty
//!    compile cache), and cached load: a fresh engine over the same cache
//!    (as a restarted process would);
//! 2. in process, p50 and p99: the floor (fresh store, same sandbox, no
//!    evidence, instantiate, call `run`) and the governed run
//!    (`Runner::run`: evidence committed, seal signed and fsynced),
//!    interleaved in rounds;
//! 3. through `airlock serve` (the real binary on 127.0.0.1): `POST
//!    /v1/runs` round trips, p50 and p99, one client;
//! 4. memory: resident set growth per run waiting in the approval gate
//!    (`pay-invoice`, whose POST waits for a human; every request is denied
//!    at the end, nothing is sent).
//!
//! Run: `bash scripts/lang-toolchains.sh && cargo bench -p airlock-runner
//! --bench languages`. The Python and JavaScript components are built with
//! `airlock build` into target/lang (see tests/support/languages.rs).
//! `BENCH_ITERATIONS` (default 200) sets the in-process samples per side,
//! `BENCH_SERVE_ITERATIONS` (default 100) the serve samples,
//! `BENCH_WAITING` (default 20) the runs waiting per language,
//! `BENCH_LANGS` (comma-separated: rust, python, js) and `BENCH_ONLY`
//! (load, process, serve, density) pick what runs. Prints Markdown tables;
//! results go in BENCHMARKS.md.

#[path = "../../tests/support/guests.rs"]
mod guests;

use airlock_runner::config::home::Home;
use airlock_runner::config::profile::{self, Profile};
use airlock_runner::escalation::requests::Approvals;
use airlock_runner::execution::engine::{LoadedTool, Runtime};
use airlock_runner::execution::outcome::RunStatus;
use airlock_runner::execution::request::RunRequest;
use airlock_runner::execution::runner::Runner;
use airlock_runner::execution::sandbox;
use airlock_runner::store::Store;
use airlock_runner::trust::keys::RunnerKey;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn list(name: &str, all: &[&str]) -> Vec<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_owned()).collect(),
        _ => all.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |p: f64| samples[(((samples.len() - 1) as f64) * p).round() as usize];
    (at(0.5), at(0.99))
}

/// The process's resident set, bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// `airlock build DIR --out OUT` with the pinned toolchains on PATH, unless
/// OUT exists.
fn built(lang: &str, name: &str) -> PathBuf {
    let root = guests::repo_root();
    if lang == "rust" {
        return guests::example(name);
    }
    let out = root.join(format!("target/lang/bench/{lang}-{name}.wasm"));
    let dir = root.join("examples").join(lang).join(name);
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        [
            root.join("target/lang-toolchains/python/bin"),
            root.join("tests/languages/node_modules/.bin"),
        ]
        .into_iter()
        .chain(std::env::split_paths(&inherited)),
    )
    .expect("PATH");
    let status = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .env("PATH", path)
        .arg("build")
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("airlock build");
    assert!(status.success(), "airlock build {}", dir.display());
    out
}

fn write_profile(dir: &Path, name: &str, extra: &str) -> Profile {
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!(
            "name = \"{name}\"\ncategory = \"bench\"\nrisk = \"low\"\nowner = \"bench\"\n[limits]\nfuel = 9_000_000_000_000\nmemory = \"128MiB\"\ntimeout = \"60s\"\noutput = \"1MiB\"\n{extra}"
        ),
    )
    .expect("profile");
    profile::load(dir, name).expect("valid profile")
}

async fn floor_run(runner: &Runner, tool: &LoadedTool, profile: &Profile, request: &RunRequest) {
    let (_dirs, state) = sandbox::unrecorded(runner.home(), profile, request).expect("sandbox");
    let mut store = sandbox::store(runner.runtime().engine(), state, profile).expect("store");
    let pre = tool.as_tool().expect("a tool component");
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .expect("instantiate");
    let input = request.input.as_deref().unwrap_or("{}");
    instance
        .call_run(&mut store, input)
        .await
        .expect("call")
        .expect("tool ok");
}

/// A running `airlock serve` over `home`, killed on drop.
struct Serve {
    child: std::process::Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(home: &Path, profiles: &Path) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .env("AIRLOCK_HOME", home)
        .args(["serve", "--listen", "127.0.0.1:0", "--profiles"])
        .arg(profiles)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn airlock serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("banner");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .expect("address in the banner")
        .to_owned();
    Serve {
        child,
        base: format!("http://{addr}"),
    }
}

fn main() {
    let langs = list("BENCH_LANGS", &["rust", "python", "js"]);
    let sections = list("BENCH_ONLY", &["load", "process", "serve", "density"]);
    let on = |s: &str| sections.iter().any(|x| x == s);
    let iterations = env_usize("BENCH_ITERATIONS", 200);
    let tmp = tempfile::tempdir().expect("tempdir");
    let profiles = tmp.path().join("profiles");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    let hello_profile = write_profile(&profiles, "hello", "");
    let components: Vec<(String, PathBuf)> = langs
        .iter()
        .map(|l| (l.clone(), built(l, "hello")))
        .collect();
    for (lang, path) in &components {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!(
            "{lang} hello: {} ({:.1} MiB)",
            path.display(),
            size as f64 / (1024.0 * 1024.0)
        );
    }

    let home = Home::open(&tmp.path().join("home")).expect("home");
    let runner = Arc::new(Runner::new(
        Runtime::new(&home.cache_dir()).expect("engine"),
        Arc::new(Store::open(home.root()).expect("store")),
        Arc::new(RunnerKey::load_or_init(home.root()).expect("key").0),
        home.clone(),
    ));

    if on("load") {
        println!();
        println!(
            "| load | first (compile, empty cache) | cached (new engine, same cache) | first / cached |"
        );
        println!("| --- | --- | --- | --- |");
        for (lang, path) in &components {
            let cache = tmp.path().join(format!("cache-{lang}"));
            let time_load = || {
                let start = Instant::now();
                let runtime = Runtime::new(&cache).expect("engine");
                runtime.load(path).expect("load");
                start.elapsed()
            };
            let first = time_load();
            let cached = time_load();
            println!(
                "| {lang} hello | {} | {} | {:.0}× |",
                ms(first),
                ms(cached),
                first.as_secs_f64() / cached.as_secs_f64()
            );
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let request = RunRequest {
        tool_name: "hello".into(),
        input: Some(r#"{"name":"bench"}"#.into()),
        ..RunRequest::default()
    };
    let loaded: Vec<(String, Arc<LoadedTool>)> = components
        .iter()
        .map(|(lang, path)| (lang.clone(), runner.runtime().load(path).expect("load")))
        .collect();

    if on("process") {
        println!();
        println!(
            "| in process ({iterations} runs per side, 4 rounds) | floor p50 | floor p99 | governed p50 | governed p99 | governed − floor (p50) |"
        );
        println!("| --- | --- | --- | --- | --- | --- |");
        for (lang, tool) in &loaded {
            let rounds = 4;
            let per = (iterations / rounds).max(1);
            let (mut floor, mut governed) = (Vec::new(), Vec::new());
            for _ in 0..2 {
                rt.block_on(floor_run(&runner, tool, &hello_profile, &request));
            }
            for _ in 0..rounds {
                for _ in 0..per {
                    let start = Instant::now();
                    rt.block_on(floor_run(&runner, tool, &hello_profile, &request));
                    floor.push(start.elapsed());
                }
                for _ in 0..per {
                    let start = Instant::now();
                    let report = rt
                        .block_on(runner.run(tool, &hello_profile, request.clone()))
                        .expect("run");
                    assert_eq!(report.status, RunStatus::Ok, "{lang}: {:?}", report.error);
                    governed.push(start.elapsed());
                }
            }
            let (f50, f99) = percentiles(floor);
            let (g50, g99) = percentiles(governed);
            println!(
                "| {lang} hello | {} | {} | **{}** | {} | {} |",
                ms(f50),
                ms(f99),
                ms(g50),
                ms(g99),
                ms(g50.saturating_sub(f50))
            );
        }
    }

    if on("serve") {
        let n = env_usize("BENCH_SERVE_ITERATIONS", 100);
        let serve_home = tmp.path().join("serve-home");
        // The serve process compiles into its own home; share the cache
        // the in-process runner just filled so `tools add` does not
        // recompile (measured above as "first load").
        std::fs::create_dir_all(&serve_home).expect("mkdir");
        std::os::unix::fs::symlink(home.cache_dir(), serve_home.join("cache")).expect("link");
        let token = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .env("AIRLOCK_HOME", &serve_home)
            .args(["tokens", "create", "--role", "submitter", "--name", "bench"])
            .output()
            .expect("token");
        assert!(token.status.success());
        let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
        let server = serve(&serve_home, &profiles);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        println!();
        println!("| through `airlock serve` ({n} runs, one client) | p50 | p99 |");
        println!("| --- | --- | --- |");
        for (lang, path) in &components {
            let name = format!("hello-{lang}");
            let bytes = std::fs::read(path).expect("component");
            let added = agent
                .post(format!("{}/v1/tools?name={name}", server.base))
                .header("authorization", &format!("Bearer {token}"))
                .header("content-type", "application/wasm")
                .send(&bytes[..])
                .expect("submit");
            assert!(
                added.status().is_success(),
                "submit {name}: {}",
                added.status()
            );
        }
        // The steady state of a server whose tools were registered a while
        // ago: the registry hashes a component file again until its last
        // change is older than its racy window (2 s), as right after an
        // upload. Not synchronisation: the files' ctime must age.
        std::thread::sleep(Duration::from_millis(2_200));
        for (lang, _) in &components {
            let name = format!("hello-{lang}");
            let body =
                format!(r#"{{"tool":"{name}","profile":"hello","input":{{"name":"bench"}}}}"#);
            let mut samples = Vec::with_capacity(n);
            for i in 0..n + 5 {
                let start = Instant::now();
                let mut answer = agent
                    .post(format!("{}/v1/runs", server.base))
                    .header("authorization", &format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .send(body.as_bytes())
                    .expect("run");
                let text = answer.body_mut().read_to_string().expect("body");
                assert!(text.contains("\"ok\""), "{lang}: {text}");
                if i >= 5 {
                    samples.push(start.elapsed());
                }
            }
            let (p50, p99) = percentiles(samples);
            println!("| {lang} hello | **{}** | {} |", ms(p50), ms(p99));
        }
    }

    if on("density") {
        let waiting = env_usize("BENCH_WAITING", 20);
        let pay_profile = write_profile(
            &profiles,
            "pay",
            "[net]\nallow = [{ url = \"http://127.0.0.1:9/v1/payments\", methods = [\"POST\"] }]\n[[approval]]\nwhen = \"net POST http://127.0.0.1:9/**\"\napprovers = [\"oncall\"]\ntimeout = \"10m\"\nescalate_to = \"lead\"\nescalation_timeout = \"10m\"\n",
        );
        let mt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let approvals = Approvals::new(runner.store());
        let pending = || approvals.list(true).expect("list");
        let wait_pending = |n: usize| {
            let deadline = Instant::now() + Duration::from_secs(300);
            while pending().len() < n {
                assert!(Instant::now() < deadline, "runs did not reach the gate");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        let deny_all = || {
            for record in pending() {
                approvals
                    .decide(
                        &record.id,
                        "oncall",
                        false,
                        "benchmark",
                        SystemTime::now(),
                        &airlock_runner::trust::decision::ServerSigner(runner.key()),
                    )
                    .expect("deny");
            }
        };
        println!();
        println!(
            "| waiting in the approval gate ({waiting} runs of pay-invoice) | RSS before | RSS with all waiting | per waiting run |"
        );
        println!("| --- | --- | --- | --- |");
        for lang in &langs {
            let tool = runner
                .runtime()
                .load(&built(lang, "pay-invoice"))
                .expect("pay-invoice");
            let request = RunRequest {
                tool_name: "pay-invoice".into(),
                input: Some(
                    r#"{"invoice":"INV-1","amount_cents":100,"base_url":"http://127.0.0.1:9"}"#
                        .into(),
                ),
                ..RunRequest::default()
            };
            let spawn = |n: usize| -> Vec<tokio::task::JoinHandle<RunStatus>> {
                (0..n)
                    .map(|_| {
                        let (runner, tool, profile, request) = (
                            Arc::clone(&runner),
                            Arc::clone(&tool),
                            pay_profile.clone(),
                            request.clone(),
                        );
                        mt.spawn(async move {
                            runner
                                .run(&tool, &profile, request)
                                .await
                                .expect("run")
                                .status
                        })
                    })
                    .collect()
            };
            // Warm up: one run through the gate, denied.
            let warm = spawn(1);
            wait_pending(1);
            deny_all();
            for t in warm {
                mt.block_on(t).expect("task");
            }
            let before = rss();
            let tasks = spawn(waiting);
            wait_pending(waiting);
            let all = rss();
            deny_all();
            for t in tasks {
                let status = mt.block_on(t).expect("task");
                assert_ne!(status, RunStatus::Ok, "{lang}: a denied payment succeeded");
            }
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            println!(
                "| {lang} pay-invoice | {:.1} MiB | {:.1} MiB | **{:.2} MiB** |",
                mib(before),
                mib(all),
                mib(all.saturating_sub(before)) / waiting as f64
            );
        }
    }
}
