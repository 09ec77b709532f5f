//! `airlock selftest` and `airlock serve --selftest`: runs the built-in
//! adversarial suite ([`crate::service::selftest`]) over the home's store and the
//! profiles directory, prints the table and maps the outcome to an exit
//! code (0: every attempt refused; 1: at least one got through).

use super::{Failure, ProfilesDir};
use crate::config::home::Home;
use crate::execution::runner::Runner;
use crate::service::selftest::SelftestReport;
use clap::Args;

/// Exit code of `airlock selftest` when an attempt was not refused.
pub const EXIT_NOT_CONTAINED: i32 = 1;

#[derive(Args, Debug)]
pub(super) struct SelftestArgs {
    #[command(flatten)]
    dir: ProfilesDir,
    /// JSON output (the attempts and the selftest run's id).
    #[arg(long)]
    json: bool,
}

/// Runs the suite under every valid profile in `profiles`; invalid profiles
/// are reported and skipped (`airlock profiles check` names their faults).
pub(super) async fn run_suite(
    runner: &Runner,
    profiles: &std::path::Path,
) -> Result<SelftestReport, Failure> {
    let loaded = match crate::config::profile::load_dir(profiles) {
        Ok(loaded) => loaded,
        Err(e) => return Err(Failure::usage(e.to_string())),
    };
    let mut valid = Vec::new();
    for profile in loaded {
        match profile {
            Ok(profile) => valid.push(profile),
            Err(e) => eprintln!("airlock selftest: skipping an invalid profile: {e}"),
        }
    }
    crate::service::selftest::run(runner, &valid)
        .await
        .map_err(|e| Failure {
            code: super::EXIT_EVIDENCE,
            message: e.to_string(),
        })
}

pub(super) fn selftest(home: Home, args: SelftestArgs) -> Result<i32, Failure> {
    let (store, key) = super::open_store_signing(&home)?;
    let runtime = crate::execution::engine::Runtime::new(&home.cache_dir())
        .map_err(|e| Failure::usage(format!("engine: {e:#}")))?;
    let runner = Runner::new(runtime, store, key, home);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("async runtime: {e}")))?;
    let report = rt.block_on(run_suite(&runner, &args.dir.profiles))?;
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), report.table().as_bytes());
    }
    Ok(if report.passed() {
        0
    } else {
        EXIT_NOT_CONTAINED
    })
}
