//! What governance costs, measured side by side in one process:
//!
//! 1. `hello`: a complete governed run (`Runner::run`: checks, sandbox,
//!    instantiate, call, evidence committed, seal signed and fsynced,
//!    teardown) against the floor: the same engine and pre-linked
//!    component, a fresh store with the same sandbox but evidence going
//!    nowhere, instantiate and call `run`.
//! 2. `file_churn`: 10,000 writes and 10,000 reads of 64 bytes, recorded
//!    (every write committed to the store before it returns) against the
//!    same host with recording off.
//!
//! Run: `cargo bench -p airlock-runner --bench overhead` (guests are built
//! first). Prints a Markdown table; results go in BENCHMARKS.md.

#[path = "../../tests/support/guests.rs"]
mod guests;

use airlock_host_api::RunState;
use airlock_runner::engine::{LoadedTool, Runtime};
use airlock_runner::evidence::Store;
use airlock_runner::home::Home;
use airlock_runner::keys::RunnerKey;
use airlock_runner::profile::{self, Profile};
use airlock_runner::recorder::Discard;
use airlock_runner::run::{RunRequest, RunStatus, Runner};
use airlock_runner::sandbox::{self, RunDirs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let total: Duration = samples.iter().sum();
    Stats {
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
        mean: total / samples.len() as u32,
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn bare_run(
    runtime: &Runtime,
    home: &Home,
    tool: &LoadedTool,
    profile: &Profile,
    request: &RunRequest,
) {
    let dirs = RunDirs::create(home, "bare", profile).expect("dirs");
    let grants = sandbox::grants(
        profile,
        &dirs,
        &request.tool_name,
        request,
        Default::default(),
        Arc::new(airlock_host_api::approval::NoApprovals),
    );
    let state = RunState::new(grants, Arc::new(Discard)).expect("state");
    let mut store = sandbox::store(runtime.engine(), state, profile).expect("store");
    if let Some(pre) = tool.as_tool() {
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
    } else if let Some(pre) = tool.as_command() {
        let command = pre
            .instantiate_async(&mut store)
            .await
            .expect("instantiate");
        command
            .wasi_cli_run()
            .call_run(&mut store)
            .await
            .expect("call")
            .expect("exit 0");
    }
}

fn write_profile(dir: &Path, name: &str, extra: &str) -> Profile {
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!(
            "name = \"{name}\"\ncategory = \"bench\"\nrisk = \"low\"\nowner = \"bench\"\n[limits]\nfuel = 9_000_000_000_000\nmemory = \"64MiB\"\ntimeout = \"60s\"\noutput = \"1MiB\"\n{extra}"
        ),
    )
    .expect("profile");
    profile::load(dir, name).expect("valid profile")
}

fn main() {
    let hello = guests::example("hello");
    let churn = guests::guest("file_churn");
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = Home::open(&tmp.path().join("home")).expect("home");
    let profiles = tmp.path().join("profiles");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    std::fs::create_dir_all(&out).expect("mkdir");
    let hello_profile = write_profile(&profiles, "hello", "");
    let churn_profile = write_profile(
        &profiles,
        "churn",
        &format!(
            "[[fs.mount]]\nhost = {:?}\nguest = \"/out\"\nmode = \"rw\"\n",
            out.display().to_string()
        ),
    );

    let runner = Runner {
        runtime: Runtime::new(&home.cache_dir()).expect("engine"),
        store: Store::open(home.root()).expect("store"),
        key: Arc::new(RunnerKey::load_or_init(home.root()).expect("key").0),
        home: home.clone(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hello_tool = runner.runtime.load(&hello).expect("hello");
    let churn_tool = runner.runtime.load(&churn).expect("file_churn");
    let hello_request = RunRequest {
        tool_name: "hello".into(),
        input: Some(r#"{"name":"bench"}"#.into()),
        ..RunRequest::default()
    };
    let churn_request = RunRequest {
        tool_name: "file_churn".into(),
        args: vec!["/out".into(), "10000".into()],
        ..RunRequest::default()
    };

    let iterations: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    println!("| benchmark | p50 | p99 | mean | ratio (p50) |");
    println!("| --- | --- | --- | --- | --- |");
    let measure = |label: &str,
                   governed: bool,
                   tool: &LoadedTool,
                   profile: &Profile,
                   request: &RunRequest,
                   n: usize| {
        let warmup = (n / 10).max(2);
        let mut samples = Vec::with_capacity(n);
        for i in 0..warmup + n {
            let start = Instant::now();
            if governed {
                let report = rt
                    .block_on(runner.run(tool, profile, request.clone()))
                    .expect("run");
                assert_eq!(report.status, RunStatus::Ok, "{label}: {:?}", report.error);
            } else {
                rt.block_on(bare_run(
                    &runner.runtime,
                    &runner.home,
                    tool,
                    profile,
                    request,
                ));
            }
            if i >= warmup {
                samples.push(start.elapsed());
            }
        }
        let s = stats(samples);
        println!(
            "| {label} | {} | {} | {} |",
            us(s.p50),
            us(s.p99),
            us(s.mean)
        );
        s
    };
    let floor = measure(
        "hello, floor (fresh store, same sandbox, no evidence)",
        false,
        &hello_tool,
        &hello_profile,
        &hello_request,
        iterations,
    );
    let governed = measure(
        "hello, governed (evidence committed, seal fsynced)",
        true,
        &hello_tool,
        &hello_profile,
        &hello_request,
        iterations,
    );
    println!(
        "| hello governed / floor | | | | {:.2}× |",
        governed.p50.as_secs_f64() / floor.p50.as_secs_f64()
    );
    let churn_n = (iterations / 100).max(5);
    let unrecorded = measure(
        "file_churn 10k writes + 10k reads, unrecorded",
        false,
        &churn_tool,
        &churn_profile,
        &churn_request,
        churn_n,
    );
    let recorded = measure(
        "file_churn 10k writes + 10k reads, recorded",
        true,
        &churn_tool,
        &churn_profile,
        &churn_request,
        churn_n,
    );
    let extra = recorded.p50.saturating_sub(unrecorded.p50);
    println!(
        "| file_churn recorded / unrecorded | | | | {:.2}× |",
        recorded.p50.as_secs_f64() / unrecorded.p50.as_secs_f64()
    );
    println!(
        "\nrecording cost per write event: {} (10,000 fs.write events per run)",
        us(extra / 10_000)
    );
}
