//! `airlock report`: governance figures over a window.

use super::{EXIT_EVIDENCE, EXIT_USAGE, Failure, open_store};
use crate::config::home::Home;
use crate::trust::keys::TrustedKeys;
use clap::Args;
use std::io::Write;

#[derive(Args, Debug)]
pub(super) struct ReportArgs {
    /// How far back the window reaches (e.g. 7d, 24h, 90m).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    since: std::time::Duration,
    /// Only runs and approval requests of this profile.
    #[arg(long)]
    profile: Option<String>,
    /// JSON output (stable field names).
    #[arg(long)]
    json: bool,
}

/// `airlock report`.
pub(super) fn report(home: Home, args: ReportArgs) -> Result<i32, Failure> {
    let store = open_store(&home)?;
    let keys = TrustedKeys::load(home.root())?;
    let filter = crate::evidence::report::ReportFilter {
        since: args.since,
        profile: args.profile,
    };
    let report =
        crate::evidence::report::compute(&*store, &keys, &filter, std::time::SystemTime::now())
            .map_err(|e| Failure {
                code: match e {
                    crate::evidence::report::ReportError::WindowTooLong { .. } => EXIT_USAGE,
                    _ => EXIT_EVIDENCE,
                },
                message: e.to_string(),
            })?;
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let _ = std::io::stdout()
            .lock()
            .write_all(crate::evidence::report::text(&report).as_bytes());
    }
    Ok(0)
}
