//! What governance costs, measured side by side in one process (issue 9).
//! Every ratio compares two sides measured in the same run:
//!
//! 1. `hello`: a complete governed run (`Runner::run`: checks, sandbox,
//!    instantiate, call, evidence committed, seal signed and fsynced,
//!    teardown) against the floor: the same engine and pre-linked
//!    component, a fresh store with the same sandbox but evidence going
//!    nowhere, instantiate and call `run`. p50 and p99, sides interleaved
//!    in rounds so machine load hits both.
//! 2. Throughput: governed `hello` runs per second with many concurrent
//!    `Runner::run` calls on a 2-worker multi-thread tokio runtime, against
//!    the floor run the same way.
//! 3. `file_churn`: 10,000 writes and 10,000 reads of 64 bytes, recorded
//!    (every write committed to the store before it returns) against the
//!    same host with recording off.
//! 4. `http_probe`: 1,000 GET requests to a loopback server started here,
//!    recorded against unrecorded.
//! 5. `cpu_burn`: a CPU-bound guest on an engine with fuel metering against
//!    the same engine settings without it (both unrecorded).
//! 6. Density: resident memory per run while runs wait in the approval gate.
//! 7. Cold start: compiling a new tool against loading it from the on-disk
//!    compile cache in a fresh engine (as a new process would).
//! 8. `auth`: the event authenticator (issue 19): one HMAC-SHA256 tag per
//!    event and one HKDF run key per run, against hashing the event alone.
//!
//! Run: `cargo bench -p airlock-runner --bench overhead` (guests are built
//! first). `BENCH_ITERATIONS` (default 1000) sets the hello sample count,
//! `BENCH_ONLY` (comma-separated: hello, throughput, churn, http, fuel,
//! density, cold, auth) picks sections, `BENCH_WAITING` the number of runs
//! waiting on approval (default 200), `BENCH_CONCURRENCY` and
//! `BENCH_THROUGHPUT_RUNS` shape the throughput run, `BENCH_POOL_INSTANCES`
//! shrinks the engine's instance pool (for callgrind). Prints Markdown
//! tables; results go in BENCHMARKS.md.

#[path = "../../tests/support/guests.rs"]
mod guests;

use airlock_host_api::RunState;
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
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, PoolingAllocationConfig, UpdateDeadline};
use wasmtime_wasi::p2::bindings::CommandPre;

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
    let (_dirs, state) = sandbox::unrecorded(home, profile, request).expect("sandbox");
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

fn sections() -> Vec<String> {
    match std::env::var("BENCH_ONLY") {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_owned()).collect(),
        _ => [
            "hello",
            "throughput",
            "churn",
            "http",
            "fuel",
            "density",
            "cold",
            "auth",
        ]
        .map(String::from)
        .to_vec(),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A loopback HTTP/1.1 server answering every request with `200 ok` and
/// closing the connection. Returns its port.
fn start_http_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
            );
        }
    });
    port
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

/// CPU time (user + system) this process has used so far. Less sensitive
/// than wall time to other processes on a shared machine.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are the
    // 12th and 13th of them, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// An engine with `Runtime::new`'s settings, fuel metering on or off.
fn engine(fuel: bool) -> Engine {
    let mut config = Config::new();
    config
        .consume_fuel(fuel)
        .epoch_interruption(true)
        .wasm_component_model(true)
        .max_wasm_stack(airlock_runner::execution::engine::MAX_WASM_STACK);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(16)
        .total_core_instances(64)
        .total_memories(32)
        .total_tables(64)
        .total_stacks(16)
        .max_memory_size(airlock_runner::execution::engine::POOL_MAX_MEMORY);
    config.allocation_strategy(pool);
    Engine::new(&config).expect("engine")
}

/// Runs a command component once on `engine`, unrecorded, fuel set when the
/// engine meters it.
async fn bare_command(
    engine: &Engine,
    pre: &CommandPre<RunState>,
    home: &Home,
    profile: &Profile,
    request: &RunRequest,
    fuel: bool,
) {
    let (_dirs, state) = sandbox::unrecorded(home, profile, request).expect("sandbox");
    let mut store = wasmtime::Store::new(engine, state);
    store.limiter(|s| s.limiter());
    if fuel {
        store.set_fuel(profile.limits.fuel).expect("fuel");
    }
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
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

/// Section 8: what the event authenticator adds per event and per run.
fn bench_auth(key: &RunnerKey) {
    use airlock_runner::evidence::auth::RunStart;
    const N: u32 = 200_000;
    let start = RunStart {
        run_id: uuid::Uuid::now_v7().to_string(),
        tool: "hello".into(),
        tool_digest: format!("sha256:{}", "0".repeat(64)),
        profile: "hello".into(),
        submitted_by: None,
        started_at: "2026-01-01T00:00:00.000000Z".into(),
    };
    let event = br#"{"kind":"fs.write","prev":"00","run_id":"r","seq":7,"target":"/out/a","ts":"2026-01-01T00:00:00.000000Z","bytes":64}"#;
    let time = |f: &mut dyn FnMut(u32)| {
        let began = Instant::now();
        for i in 0..N {
            f(i);
        }
        began.elapsed() / N
    };
    let mut sink = 0_usize;
    let hash = time(&mut |_| {
        sink ^= airlock_host_api::evidence::sha256_hex(std::hint::black_box(event)).len();
    });
    let auth = key.auth_root().for_run(&start);
    let digest = airlock_host_api::evidence::sha256_hex(event);
    let tag = time(&mut |_| {
        sink ^= auth.event_tag(std::hint::black_box(&digest)).len();
    });
    let run_key = time(&mut |_| {
        sink ^= key
            .auth_root()
            .for_run(std::hint::black_box(&start))
            .row_tag()
            .len();
    });
    std::hint::black_box(sink);
    println!("\n## Event authenticator (issue 19)\n");
    println!("| step | per call |\n| --- | --- |");
    println!(
        "| SHA-256 of one event (the existing hash, for scale) | {} |",
        us(hash)
    );
    println!(
        "| HMAC-SHA256 tag of one event (added per event) | {} |",
        us(tag)
    );
    println!(
        "| HKDF run key + row tag (added per run) | {} |",
        us(run_key)
    );
}

fn main() {
    let sections = sections();
    let on = |name: &str| sections.iter().any(|s| s == name);
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

    let runner = Arc::new(Runner::new(
        // BENCH_POOL_INSTANCES: a smaller instance pool (default: the
        // runtime's), so the engine's address-space reservation fits under
        // valgrind for callgrind profiles.
        match std::env::var("BENCH_POOL_INSTANCES")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            Some(n) => Runtime::with_instances(&home.cache_dir(), n),
            None => Runtime::new(&home.cache_dir()),
        }
        .expect("engine"),
        Arc::new(Store::open(home.root()).expect("store")),
        Arc::new(RunnerKey::load_or_init(home.root()).expect("key").0),
        home.clone(),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hello_tool = runner
        .runtime()
        .load(&guests::example("hello"))
        .expect("hello");
    let hello_request = RunRequest {
        tool_name: "hello".into(),
        input: Some(r#"{"name":"bench"}"#.into()),
        ..RunRequest::default()
    };

    let iterations = env_usize("BENCH_ITERATIONS", 1000);
    println!(
        "machine: {} cores, {} MiB memory",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().and_then(|l| l
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()))
            .unwrap_or(0)
            / 1024
    );
    println!();
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
                    runner.runtime(),
                    runner.home(),
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
    let ratio = |label: &str, num: &Stats, den: &Stats| {
        println!(
            "| **{label}** | {:.2}× | {:.2}× | {:.2}× | **{:.2}×** |",
            num.p50.as_secs_f64() / den.p50.as_secs_f64(),
            num.p99.as_secs_f64() / den.p99.as_secs_f64(),
            num.mean.as_secs_f64() / den.mean.as_secs_f64(),
            num.p50.as_secs_f64() / den.p50.as_secs_f64(),
        );
    };

    if on("hello") {
        // Interleave the two sides in rounds so machine load hits both.
        let rounds = 4;
        let mut floor_all = Vec::new();
        let mut gov_all = Vec::new();
        for _ in 0..rounds {
            let f = measure(
                "hello, floor (fresh store, same sandbox, no evidence)",
                false,
                &hello_tool,
                &hello_profile,
                &hello_request,
                iterations / rounds,
            );
            let g = measure(
                "hello, governed (evidence committed, seal fsynced)",
                true,
                &hello_tool,
                &hello_profile,
                &hello_request,
                iterations / rounds,
            );
            floor_all.push(f);
            gov_all.push(g);
        }
        let median = |v: &[Stats], f: fn(&Stats) -> Duration| {
            let mut d: Vec<Duration> = v.iter().map(f).collect();
            d.sort();
            d[d.len() / 2]
        };
        let combine = |v: &[Stats]| Stats {
            p50: median(v, |s| s.p50),
            p99: median(v, |s| s.p99),
            mean: median(v, |s| s.mean),
        };
        let (floor, governed) = (combine(&floor_all), combine(&gov_all));
        println!(
            "| hello floor, median of {rounds} rounds | {} | {} | {} | |",
            us(floor.p50),
            us(floor.p99),
            us(floor.mean)
        );
        println!(
            "| hello governed, median of {rounds} rounds | {} | {} | {} | |",
            us(governed.p50),
            us(governed.p99),
            us(governed.mean)
        );
        ratio("hello governed / floor (p50, p99, mean)", &governed, &floor);
        // Issue 16's goal is against the floor plus one fsync of this disk:
        // a 4 KiB append and fdatasync in the same home, measured now.
        let fsync = {
            let path = home.root().join("fsync-probe");
            let mut file = std::fs::File::create(&path).expect("fsync probe");
            let mut samples = Vec::with_capacity(200);
            for _ in 0..200 {
                let start = Instant::now();
                file.write_all(&[0u8; 4096]).expect("write");
                file.sync_data().expect("fdatasync");
                samples.push(start.elapsed());
            }
            let _ = std::fs::remove_file(&path);
            stats(samples)
        };
        println!(
            "| one fsync of this disk (4 KiB append + fdatasync) | {} | {} | {} | |",
            us(fsync.p50),
            us(fsync.p99),
            us(fsync.mean)
        );
        println!(
            "| **hello governed p50 / (floor p50 + one fsync p50)** | | | | **{:.2}×** |",
            governed.p50.as_secs_f64() / (floor.p50 + fsync.p50).as_secs_f64()
        );
    }

    if on("throughput") {
        let mt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let concurrency = env_usize("BENCH_CONCURRENCY", 64);
        let total = env_usize("BENCH_THROUGHPUT_RUNS", 4000);
        let throughput = |governed: bool| {
            let left = Arc::new(AtomicUsize::new(total));
            let start = Instant::now();
            let cpu_start = cpu_time();
            mt.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..concurrency {
                    let (runner, tool, profile, request, left) = (
                        Arc::clone(&runner),
                        Arc::clone(&hello_tool),
                        hello_profile.clone(),
                        hello_request.clone(),
                        Arc::clone(&left),
                    );
                    tasks.spawn(async move {
                        while left
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            })
                            .is_ok()
                        {
                            if governed {
                                let report = runner
                                    .run(&tool, &profile, request.clone())
                                    .await
                                    .expect("run");
                                assert_eq!(report.status, RunStatus::Ok, "{:?}", report.error);
                            } else {
                                bare_run(
                                    runner.runtime(),
                                    runner.home(),
                                    &tool,
                                    &profile,
                                    &request,
                                )
                                .await;
                            }
                        }
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done.expect("task");
                }
            });
            (
                total as f64 / start.elapsed().as_secs_f64(),
                cpu_time().saturating_sub(cpu_start) / total as u32,
            )
        };
        let (floor, floor_cpu) = throughput(false);
        let (governed, governed_cpu) = throughput(true);
        println!();
        println!(
            "| throughput, {concurrency} concurrent, 2 workers, {total} runs | runs/s | CPU per run (user + sys) |"
        );
        println!("| --- | --- | --- |");
        println!(
            "| hello, floor (no evidence) | {floor:.0} | {} |",
            us(floor_cpu)
        );
        println!(
            "| hello, governed (each result after its seal is fsynced) | {governed:.0} | {} |",
            us(governed_cpu)
        );
        println!(
            "| **governed / floor** | **{:.2}×** | {:.2}× |",
            governed / floor,
            governed_cpu.as_secs_f64() / floor_cpu.as_secs_f64()
        );
    }

    if on("churn") {
        println!();
        let churn_tool = runner
            .runtime()
            .load(&guests::guest("file_churn"))
            .expect("file_churn");
        let churn_request = RunRequest {
            tool_name: "file_churn".into(),
            args: vec!["/out".into(), "10000".into()],
            ..RunRequest::default()
        };
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
        ratio("file_churn recorded / unrecorded", &recorded, &unrecorded);
        // The same binary with `[evidence] io = "per-call"`: one durable
        // fs.write per call, as before issue 16.
        let per_call_profile = write_profile(
            &profiles,
            "churn-per-call",
            &format!(
                "[[fs.mount]]\nhost = {:?}\nguest = \"/out\"\nmode = \"rw\"\n[evidence]\nio = \"per-call\"\n",
                out.display().to_string()
            ),
        );
        let per_call = measure(
            "file_churn 10k writes + 10k reads, recorded per call",
            true,
            &churn_tool,
            &per_call_profile,
            &churn_request,
            churn_n,
        );
        ratio(
            "file_churn recorded per call / unrecorded",
            &per_call,
            &unrecorded,
        );
        println!(
            "\nrecording cost per write call: {} per-handle, {} per-call (10,000 writes per run)",
            us(recorded.p50.saturating_sub(unrecorded.p50) / 10_000),
            us(per_call.p50.saturating_sub(unrecorded.p50) / 10_000)
        );
    }

    if on("http") {
        println!();
        let port = start_http_server();
        let http_profile = write_profile(
            &profiles,
            "http",
            &format!(
                "[net]\nallow = [{{ url = \"http://127.0.0.1:{port}/v1/*\", methods = [\"GET\"] }}]\n"
            ),
        );
        let http_tool = runner
            .runtime()
            .load(&guests::guest("http_probe"))
            .expect("http_probe");
        let requests = 1000;
        let http_request = RunRequest {
            tool_name: "http_probe".into(),
            args: (0..requests)
                .map(|i| format!("GET http://127.0.0.1:{port}/v1/item-{i}"))
                .collect(),
            ..RunRequest::default()
        };
        // Every request must have been let through and answered.
        let report = rt
            .block_on(runner.run(&http_tool, &http_profile, http_request.clone()))
            .expect("run");
        let answered = String::from_utf8_lossy(&report.stdout)
            .matches("\"status\":200")
            .count();
        assert_eq!(
            answered,
            requests,
            "{:?}: {}",
            report.error,
            String::from_utf8_lossy(&report.stdout[..report.stdout.len().min(400)])
        );
        let n = (iterations / 100).max(5);
        let unrecorded = measure(
            "http_probe 1,000 GETs to loopback, unrecorded",
            false,
            &http_tool,
            &http_profile,
            &http_request,
            n,
        );
        let recorded = measure(
            "http_probe 1,000 GETs to loopback, recorded",
            true,
            &http_tool,
            &http_profile,
            &http_request,
            n,
        );
        ratio("http_probe recorded / unrecorded", &recorded, &unrecorded);
        println!(
            "\nrecording cost per request: {} ({} events per run)",
            us(recorded.p50.saturating_sub(unrecorded.p50) / requests as u32),
            report.events
        );
    }

    if on("fuel") {
        println!();
        let burn = std::fs::read(guests::guest("cpu_burn")).expect("cpu_burn");
        let burn_profile = write_profile(&profiles, "burn", "");
        let burn_request = RunRequest {
            tool_name: "cpu_burn".into(),
            args: vec!["1000000".into(), "20".into()],
            ..RunRequest::default()
        };
        let pre = |engine: &Engine| {
            let component = Component::new(engine, &burn).expect("compile");
            let mut linker = Linker::new(engine);
            airlock_host_api::add_to_linker(&mut linker).expect("linker");
            CommandPre::new(linker.instantiate_pre(&component).expect("link")).expect("command")
        };
        let (metered, unmetered) = (engine(true), engine(false));
        let (metered_pre, unmetered_pre) = (pre(&metered), pre(&unmetered));
        // Epochs must advance for the yield callback, as in the runtime.
        let n = (iterations / 50).max(10);
        let mut on_samples = Vec::new();
        let mut off_samples = Vec::new();
        for i in 0..n + 2 {
            for (fuel, engine, pre, samples) in [
                (true, &metered, &metered_pre, &mut on_samples),
                (false, &unmetered, &unmetered_pre, &mut off_samples),
            ] {
                engine.increment_epoch();
                let start = Instant::now();
                rt.block_on(bare_command(
                    engine,
                    pre,
                    &home,
                    &burn_profile,
                    &burn_request,
                    fuel,
                ));
                if i >= 2 {
                    samples.push(start.elapsed());
                }
            }
        }
        let (fuel_on, fuel_off) = (stats(on_samples), stats(off_samples));
        println!(
            "| cpu_burn (sieve of 1M, 20 rounds), fuel off | {} | {} | {} | |",
            us(fuel_off.p50),
            us(fuel_off.p99),
            us(fuel_off.mean)
        );
        println!(
            "| cpu_burn (sieve of 1M, 20 rounds), fuel on | {} | {} | {} | |",
            us(fuel_on.p50),
            us(fuel_on.p99),
            us(fuel_on.mean)
        );
        ratio("cpu_burn fuel on / off", &fuel_on, &fuel_off);
    }

    if on("density") {
        println!();
        let waiting = env_usize("BENCH_WAITING", 200);
        let first = (waiting / 4).max(1);
        let approval_profile = write_profile(
            &profiles,
            "approve",
            "[[approval]]\nwhen = \"tool-request\"\napprovers = [\"oncall\"]\ntimeout = \"10m\"\nescalate_to = \"lead\"\nescalation_timeout = \"10m\"\n",
        );
        let probe = runner
            .runtime()
            .load(&guests::guest("approval_probe"))
            .expect("approval_probe");
        let request = RunRequest {
            tool_name: "approval_probe".into(),
            args: vec!["pay".into(), "bench".into()],
            ..RunRequest::default()
        };
        let mt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let approvals = Approvals::new(runner.store());
        let wait_pending = |n: usize| {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let pending = approvals.list(true).expect("list").len();
                if pending >= n {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "only {pending} of {n} runs waiting"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        let deny_all = || {
            for record in approvals.list(true).expect("list") {
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
        let spawn = |n: usize, tasks: &mut Vec<tokio::task::JoinHandle<RunStatus>>| {
            for _ in 0..n {
                let (runner, tool, profile, request) = (
                    Arc::clone(&runner),
                    Arc::clone(&probe),
                    approval_profile.clone(),
                    request.clone(),
                );
                tasks.push(mt.spawn(async move {
                    runner
                        .run(&tool, &profile, request)
                        .await
                        .expect("run")
                        .status
                }));
            }
        };
        // Warm up: one run through the gate, denied.
        let mut tasks = Vec::new();
        spawn(1, &mut tasks);
        wait_pending(1);
        deny_all();
        for t in tasks.drain(..) {
            mt.block_on(t).expect("task");
        }
        let before = rss();
        spawn(first, &mut tasks);
        wait_pending(first);
        let at_first = rss();
        spawn(waiting - first, &mut tasks);
        wait_pending(waiting);
        let at_all = rss();
        deny_all();
        for t in tasks.drain(..) {
            // approval_probe reports the denial and exits 0.
            let status = mt.block_on(t).expect("task");
            assert!(
                matches!(status, RunStatus::Ok | RunStatus::Approval),
                "{status:?}"
            );
        }
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!("| density: runs waiting in the approval gate | RSS | growth per waiting run |");
        println!("| --- | --- | --- |");
        println!("| 0 | {:.1} MiB | |", mib(before));
        println!(
            "| {first} | {:.1} MiB | {:.1} KiB |",
            mib(at_first),
            at_first.saturating_sub(before) as f64 / 1024.0 / first as f64
        );
        println!(
            "| {waiting} | {:.1} MiB | {:.1} KiB (slope {first}→{waiting}: {:.1} KiB) |",
            mib(at_all),
            at_all.saturating_sub(before) as f64 / 1024.0 / waiting as f64,
            at_all.saturating_sub(at_first) as f64 / 1024.0 / (waiting - first) as f64
        );
    }

    if on("auth") {
        bench_auth(runner.key());
    }

    if on("cold") {
        println!();
        let cache = tmp.path().join("cold-cache");
        let time_load = || {
            let start = Instant::now();
            let runtime = Runtime::new(&cache).expect("engine");
            let engine_ready = start.elapsed();
            runtime.load(&guests::example("word_count")).expect("load");
            (engine_ready, start.elapsed())
        };
        let (engine_first, first) = time_load();
        let (engine_second, second) = time_load();
        println!("| cold start (word_count, fresh engine each time) | engine | engine + load |");
        println!("| --- | --- | --- |");
        println!(
            "| first load: Cranelift compile, written to the cache | {} | {} |",
            us(engine_first),
            us(first)
        );
        println!(
            "| second load, new engine, same cache dir (a restarted process) | {} | {} |",
            us(engine_second),
            us(second)
        );
        println!(
            "| **first / cached** | | **{:.1}×** |",
            first.as_secs_f64() / second.as_secs_f64()
        );
    }
}
