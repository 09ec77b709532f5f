//! `airlock serve`: checks the pool flags, builds the runner and serves the
//! HTTP API until SIGTERM, with periodic checkpoints when asked.

use super::{EXIT_EVIDENCE, Failure, ProfilesDir, selftest};
use crate::config::home::Home;
use crate::execution::engine::Runtime;
use crate::execution::runner::Runner;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub(super) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    dir: ProfilesDir,
    /// Runs that may execute at once; more are answered 429 with Retry-After.
    /// Runs waiting on an approval do not count: they leave their slot
    /// while they wait.
    #[arg(long, default_value_t = 8)]
    pool: usize,
    /// Runs one API token may have in flight, executing or waiting on an
    /// approval; more are answered 429 (default: the --pool size).
    #[arg(long)]
    per_token: Option<usize>,
    /// Runs in flight at once, executing or waiting on an approval (at
    /// least --pool; default 256); each reserves address space in the
    /// engine's instance pool. More are answered 429.
    #[arg(long)]
    in_flight: Option<usize>,
    /// Tool uploads compiled at once; up to 4 per slot more wait in line,
    /// and uploads beyond that are answered 429.
    #[arg(long, default_value_t = 2)]
    compiles: usize,
    /// How long SIGTERM waits for running runs before stopping them and
    /// sealing them as interrupted.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: std::time::Duration,
    /// Largest JSON request body.
    #[arg(long, default_value = "1MiB")]
    max_body: bytesize::ByteSize,
    /// Largest tool upload.
    #[arg(long, default_value = "64MiB")]
    max_tool: bytesize::ByteSize,
    /// Write a signed checkpoint of the seal chain into this directory
    /// (`checkpoint-<size>` and `latest`) at start and every --checkpoint-every.
    /// Copy them off the machine to detect truncation and rollback later.
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// POST each checkpoint (the signed note, text/plain) to this witness
    /// URL (repeatable), so a copy of the log's head lives where whoever
    /// can write this machine cannot rewrite it.
    #[arg(long, value_name = "URL", value_parser = witness_url)]
    checkpoint_witness: Vec<url::Url>,
    /// How often to write (and send) a checkpoint.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    checkpoint_every: std::time::Duration,
    /// A browser origin allowed to call `/mcp` (e.g. `https://app.example:443`;
    /// repeatable). Requests with any other `Origin` header are refused.
    #[arg(long)]
    mcp_allow_origin: Vec<String>,
    /// A `Host` accepted on `/mcp` besides localhost, 127.0.0.1 and ::1
    /// (repeatable; needed when clients reach the server by another name).
    #[arg(long)]
    mcp_allow_host: Vec<String>,
    /// Clients reach this server over TLS (a terminating proxy in front):
    /// dashboard cookies are marked `Secure` and the dashboard expects an
    /// `https://` origin on every form it receives.
    #[arg(long)]
    behind_tls: bool,
    /// Run `airlock selftest` first and refuse to start if any attempt is
    /// not refused.
    #[arg(long)]
    selftest: bool,
}

pub(super) fn serve(home: Home, args: ServeArgs) -> Result<i32, Failure> {
    let capacity = crate::execution::engine::MAX_POOL_INSTANCES as usize;
    if args.pool == 0 || args.pool > capacity {
        return Err(Failure::usage(format!(
            "--pool {}: give 1 to {capacity} (concurrent runs; each reserves address space in the engine's instance pool)",
            args.pool
        )));
    }
    if args.per_token == Some(0) || args.compiles == 0 {
        return Err(Failure::usage(
            "--per-token and --compiles: give at least 1",
        ));
    }
    let default_in_flight = crate::execution::engine::POOL_INSTANCES as usize;
    let in_flight = args.in_flight.unwrap_or(default_in_flight).max(args.pool);
    if in_flight + args.compiles > capacity {
        return Err(Failure::usage(format!(
            "--in-flight {in_flight} and --compiles {}: together at most {capacity} (each run in flight and each compile reserves address space in the engine's instance pool)",
            args.compiles
        )));
    }
    raise_file_limit(in_flight);
    // Room for every run in flight, plus the `describe()` calls of uploads.
    let instances = u32::try_from(in_flight + args.compiles).unwrap_or(u32::MAX);
    let super::Connected { store, slot } = super::connect_store(&home)?;
    if let Some(key) = &slot {
        eprintln!("airlock: signing with key slot {}", key.key_id());
    }
    let key = super::signing_key(&home, slot)?;
    let sweep_every = home.lease_ttl() / 2;
    let runtime = Runtime::with_instances(&home.cache_dir(), instances)
        .map_err(|e| Failure::usage(format!("engine: {e:#}")))?;
    let runner = std::sync::Arc::new(Runner::new(runtime, store, key, home));
    let config = crate::frontend::http::ServeConfig {
        profiles: args.dir.profiles.clone(),
        pool: args.pool,
        per_token: args.per_token.unwrap_or(args.pool),
        in_flight,
        compiles: args.compiles,
        drain: args.drain_timeout,
        max_body: usize::try_from(args.max_body.as_u64()).unwrap_or(usize::MAX),
        max_tool: usize::try_from(args.max_tool.as_u64()).unwrap_or(usize::MAX),
        mcp: crate::frontend::mcp::http::McpHttpConfig {
            allowed_origins: args.mcp_allow_origin.clone(),
            allowed_hosts: args.mcp_allow_host.clone(),
        },
        behind_tls: args.behind_tls,
        sweep_every,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("async runtime: {e}")))?;
    let stopped = rt.block_on(async {
        if args.selftest {
            let report = selftest::run_suite(&runner, &config.profiles).await?;
            if !report.passed() {
                let _ = std::io::stderr().write_all(report.table().as_bytes());
                return Err(Failure {
                    code: selftest::EXIT_NOT_CONTAINED,
                    message: format!(
                        "serve --selftest: {} attempt(s) were not refused (see the table above and run {}); not starting",
                        report.failures().count(),
                        report.run_id
                    ),
                });
            }
            eprintln!(
                "airlock: selftest passed: {} attempt(s) refused (run {})",
                report.attempts.len(),
                report.run_id
            );
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Failure::usage(format!("listening on {}: {e}", args.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::usage(format!("listening on {}: {e}", args.listen)))?;
        if args.checkpoint_dir.is_some() || !args.checkpoint_witness.is_empty() {
            if args.checkpoint_every.is_zero() {
                return Err(Failure::usage(
                    "--checkpoint-every 0s: give a positive interval, e.g. 60s",
                ));
            }
            if let Some(dir) = &args.checkpoint_dir {
                crate::evidence::checkpoint::create_dir(dir)
                    .map_err(|e| Failure::usage(e.to_string()))?;
            }
            tokio::spawn(checkpoint_every(
                std::sync::Arc::clone(&runner),
                CheckpointTargets {
                    dir: args.checkpoint_dir.clone(),
                    witnesses: args.checkpoint_witness.clone(),
                },
                args.checkpoint_every,
            ));
        }
        say!("airlock: serving http://{addr} (pool {})", config.pool);
        let _ = std::io::stdout().flush();
        crate::frontend::http::serve(
            std::sync::Arc::clone(&runner),
            config,
            listener,
            shutdown_signal(),
        )
        .await
        .map_err(|e| Failure {
            code: EXIT_EVIDENCE,
            message: e.to_string(),
        })
    })?;
    eprintln!(
        "airlock: stopped; {} run(s) stopped at the deadline, {} sealed as interrupted",
        stopped.stopped,
        stopped.interrupted.len()
    );
    Ok(0)
}

/// Where `serve` puts its checkpoints.
pub(super) struct CheckpointTargets {
    /// `--checkpoint-dir`.
    dir: Option<PathBuf>,
    /// `--checkpoint-witness`.
    witnesses: Vec<url::Url>,
}

/// `--checkpoint-witness URL`: an http(s) URL.
pub(super) fn witness_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" | "http" => Ok(url),
        other => Err(format!(
            "a witness is reached over https (or http), not {other}:"
        )),
    }
}

/// `serve --checkpoint-dir/--checkpoint-witness`: a checkpoint now and
/// then every `every`, until the process ends. Failures are logged, not
/// fatal: the runs themselves are sealed either way.
pub(super) async fn checkpoint_every(
    runner: std::sync::Arc<Runner>,
    targets: CheckpointTargets,
    every: std::time::Duration,
) {
    let targets = std::sync::Arc::new(targets);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let runner = std::sync::Arc::clone(&runner);
        let to = std::sync::Arc::clone(&targets);
        let sent = tokio::task::spawn_blocking(move || {
            let (note, size) = crate::evidence::checkpoint::make(runner.store(), runner.key())?;
            let mut failures = Vec::new();
            if let Some(dir) = &to.dir
                && let Err(e) = crate::evidence::checkpoint::write_into(dir, &note, size)
            {
                failures.push(e);
            }
            for witness in &to.witnesses {
                if let Err(e) = crate::evidence::checkpoint::send_to_witness(witness, &note) {
                    failures.push(e);
                }
            }
            Ok::<_, crate::evidence::checkpoint::CheckpointError>((size, failures))
        })
        .await;
        match sent {
            Ok(Ok((size, failures))) => {
                for e in &failures {
                    tracing::error!(error = %e, "could not deliver checkpoint");
                }
                if failures.is_empty() {
                    tracing::info!(size, "checkpoint delivered");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "could not make checkpoint"),
            Err(e) => tracing::error!(error = %e, "checkpoint task failed"),
        }
    }
}

/// File descriptors a run holds while it waits (its lock file, the
/// evidence writer's share, its sandbox's preopened directories, with room
/// to spare); measured at 4 per run waiting on approval.
pub(super) const FILES_PER_RUN: u64 = 8;

/// File descriptors the server needs besides its runs (store, listener,
/// client connections, compile cache).
pub(super) const FILES_BASE: u64 = 1024;

/// Raises the soft open-files limit toward what `pool` concurrent runs
/// need (up to the hard limit), so a full pool does not fail with EMFILE
/// under a default soft limit of 1024.
pub(super) fn raise_file_limit(pool: usize) {
    let wanted = FILES_BASE + FILES_PER_RUN * pool as u64;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => eprintln!(
            "airlock: the open-files limit is {got}, below the {wanted} that --pool {pool} may need; raise the hard limit (ulimit -Hn) or lower --pool"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("airlock: could not raise the open-files limit: {e}"),
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub(super) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(%e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
