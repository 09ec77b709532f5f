//! `/metrics`: Prometheus text exposition.
//!
//! Totals that must survive restarts (runs by status, admission denials by
//! check, approvals by outcome) are read from the store at scrape time, so
//! every server over the same store reports the same figures. What only this
//! process sees (run latency, runs in flight, requests refused because the
//! pool was full) is kept in memory.

use crate::evidence::StoreError;

use crate::store::EvidenceStore;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Why the metrics could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The store could not be read.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The exposition could not be formatted.
    #[error("formatting the metrics exposition failed")]
    Format,
}

/// This process's own measurements.
#[derive(Clone)]
pub struct ServerMetrics {
    run_seconds: Histogram,
    busy_refusals: Counter,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            // 1 ms to ~32 s: a `hello` run to a run that waited on a person.
            run_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            busy_refusals: Counter::default(),
        }
    }
}

impl ServerMetrics {
    /// Records one finished run's latency (request to sealed result).
    pub fn observe_run(&self, seconds: f64) {
        self.run_seconds.observe(seconds);
    }

    /// Counts a run request refused with 429.
    pub fn count_busy(&self) {
        self.busy_refusals.inc();
    }

    /// The exposition text: store totals plus this process's metrics.
    pub fn render(
        &self,
        store: &dyn EvidenceStore,
        in_flight: usize,
        executing: usize,
    ) -> Result<String, MetricsError> {
        let mut registry = Registry::default();
        let totals = store.totals()?;
        let runs = totals.runs_by_status;
        registry.register(
            "airlock_runs",
            "Runs in the store, by status",
            labelled("status", runs),
        );
        let denials = totals.admission_denials_by_check;
        registry.register(
            "airlock_admission_denials",
            "Admission checks that denied a run, by check",
            labelled("check", denials),
        );
        let approvals = totals.approvals_by_status;
        registry.register(
            "airlock_approvals",
            "Approval requests, by outcome",
            labelled("outcome", approvals),
        );
        registry.register(
            "airlock_run_duration_seconds",
            "Latency of runs executed by this server, request to sealed result",
            self.run_seconds.clone(),
        );
        let running = Gauge::<i64>::default();
        running.set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        registry.register(
            "airlock_runs_in_flight",
            "Runs in this server now, executing or waiting on an approval",
            running,
        );
        let holding = Gauge::<i64>::default();
        holding.set(i64::try_from(executing).unwrap_or(i64::MAX));
        registry.register(
            "airlock_runs_executing",
            "Runs holding an execution slot now (runs waiting on an approval do not)",
            holding,
        );
        registry.register(
            "airlock_run_requests_refused_busy",
            "Run requests answered 429: every pool slot busy, the token's quota used, or the runs in flight at their cap",
            self.busy_refusals.clone(),
        );
        let mut text = String::new();
        encode(&mut text, &registry).map_err(|_| MetricsError::Format)?;
        Ok(text)
    }
}

type Labelled = Family<Vec<(String, String)>, Gauge<i64>>;

fn labelled(label: &str, values: Vec<(String, i64)>) -> Labelled {
    let family = Labelled::default();
    for (value, count) in values {
        family
            .get_or_create(&vec![(label.to_owned(), value)])
            .set(count);
    }
    family
}
