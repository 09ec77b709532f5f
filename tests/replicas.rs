//! Several `airlock serve` replicas on one PostgreSQL store (issue #17),
//! each with a home and runner key of its own, all on 127.0.0.1: any
//! replica takes any request, a decision on one wakes the run waiting on
//! another, a killed replica's runs are sealed `interrupted` by a survivor
//! within two lease periods, one idempotency key is one payment across
//! replicas, and a replica cut off from the database refuses runs and
//! fails `/healthz`.
//!
//! Needs a PostgreSQL server (`scripts/postgres.sh` starts one; see
//! `support::pg`); each test makes and drops a database of its own.

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::api::{Server, pay_profile, token};
use support::relay::Relay;
use support::server::HttpServer;
use support::{Env, LIMITS, guests, of_kind, profile_body, text};

/// Lease TTL the replicas of these tests run with: short, so a dead
/// replica is noticed in seconds.
const LEASE_TTL: Duration = Duration::from_secs(2);

/// Starts `serve` on `env` with [`LEASE_TTL`].
fn replica(env: &Env) -> Server {
    Server::start(env, &["--lease-ttl", "2s"])
}

/// Polls `GET /v1/runs/ID` on `server` until `status` is `want`; returns
/// the row and how long it took.
fn wait_for_status(
    server: &Server,
    token: &str,
    run_id: &str,
    want: &str,
    within: Duration,
) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let row = server.get(&format!("/v1/runs/{run_id}"), token);
        if row.status == 200 && row.json["status"] == want {
            return (row.json, start.elapsed());
        }
        assert!(
            start.elapsed() < within,
            "run {run_id} was not {want} within {within:?}: {}",
            row.text
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_decision_on_one_replica_wakes_the_run_waiting_on_another() {
    let payments = HttpServer::start();
    let mut a = Env::on_postgres();
    a.make_key_slots(4);
    pay_profile(&a, payments.port());
    let b = a.replica();
    let agent = token(&a, "submitter", "agent");
    let oncall = token(&a, "approver", "oncall");
    let (sa, sb) = (replica(&a), replica(&b));
    // A tool added through A runs on B too: the registry is shared.
    sb.submit(&agent, "pay-invoice", &guests::example("pay-invoice"));

    let mut lags = Vec::new();
    for invoice in ["INV-1", "INV-2", "INV-3"] {
        let run_id = sa.start_payment(&agent, payments.port(), invoice);
        let request = sb.pending_for(&oncall, &run_id);
        let id = request["id"].as_str().expect("approval id");
        let decided = sb.post(
            &format!("/v1/approvals/{id}/approve"),
            &oncall,
            json!({"reason": "matches the PO"}),
        );
        assert_eq!(decided.status, 200, "{}", decided.text);
        let row = sa.wait_for_end(&agent, &run_id);
        assert_eq!(row["status"], "ok", "{row}");
        // How long after B stored the decision A's run recorded it.
        let events = sa.get(&format!("/v1/runs/{run_id}/evidence"), &agent).json;
        let events = events.as_array().expect("events");
        let decision = of_kind(events, "approval.decision")[0];
        let seen = humantime::parse_rfc3339(decision["ts"].as_str().expect("ts")).expect("ts");
        let stored = sb.get(&format!("/v1/approvals/{id}"), &oncall).json;
        let decided_at =
            humantime::parse_rfc3339(stored["decided_at"].as_str().expect("decided_at"))
                .expect("decided_at");
        lags.push(seen.duration_since(decided_at).unwrap_or_default());
    }
    assert_eq!(
        payments.hits().len(),
        3,
        "each approved payment is sent once"
    );
    lags.sort();
    eprintln!("decision on B -> recorded by the run on A: {lags:?}");
    assert!(
        lags[1] < Duration::from_millis(100),
        "a decision on another replica must wake the waiting run within 100 ms (median {:?}, all {lags:?})",
        lags[1]
    );
    let out = a.cmd(&["runs", "verify", "--all"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn a_killed_replicas_runs_are_sealed_interrupted_by_a_survivor_within_two_lease_periods() {
    let payments = HttpServer::start();
    let mut a = Env::on_postgres();
    a.make_key_slots(4);
    pay_profile(&a, payments.port());
    a.profile(
        "sleepy",
        &profile_body(
            "sleepy",
            "fuel = 1_000_000\nmemory = \"64MiB\"\ntimeout = \"5m\"\noutput = \"1MiB\"",
            "",
        ),
    );
    let c = a.replica();
    let agent = token(&a, "submitter", "agent");
    let oncall = token(&a, "approver", "oncall");
    let sa = replica(&a);
    let sc = replica(&c);
    sc.submit(&agent, "pay-invoice", &guests::example("pay-invoice"));
    sc.submit(&agent, "sleep-forever", &guests::guest("sleep_forever"));

    let sleeping = sc.post(
        "/v1/runs?wait=false",
        &agent,
        json!({"tool": "sleep-forever", "profile": "sleepy"}),
    );
    assert_eq!(sleeping.status, 202, "{}", sleeping.text);
    let sleeping = sleeping.json["run_id"].as_str().expect("run id").to_owned();
    let waiting = sc.start_payment(&agent, payments.port(), "INV-9");
    let request = sa.pending_for(&oncall, &waiting);
    let approval = request["id"].as_str().expect("approval id").to_owned();
    wait_for_status(&sa, &agent, &sleeping, "running", Duration::from_secs(30));

    let killed = std::process::Command::new("kill")
        .args(["-KILL", &sc.pid().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let (row, took) = wait_for_status(&sa, &agent, &sleeping, "interrupted", LEASE_TTL * 3);
    eprintln!(
        "replica SIGKILLed -> its sleeping run sealed interrupted by a survivor after {took:?}"
    );
    assert!(
        took <= LEASE_TTL * 2,
        "a survivor must seal a dead replica's runs within two lease periods ({:?}); took {took:?}",
        LEASE_TTL * 2
    );
    assert_eq!(row["exit_code"], -1, "{row}");
    let (_, _) = wait_for_status(&sa, &agent, &waiting, "interrupted", LEASE_TTL);
    let stored = sa.get(&format!("/v1/approvals/{approval}"), &oncall);
    assert_eq!(stored.json["status"], "expired", "{}", stored.text);
    assert!(payments.hits().is_empty(), "nothing was sent");
    let refused = sa.post(
        &format!("/v1/approvals/{approval}/approve"),
        &oncall,
        json!({"reason": "too late"}),
    );
    assert_eq!(refused.status, 409, "{}", refused.text);
    let out = a.cmd(&["runs", "verify", "--all"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    drop(sc);
}

#[test]
fn three_hundred_concurrent_runs_over_three_replicas_all_verify() {
    let mut a = Env::on_postgres();
    a.make_key_slots(5);
    a.profile("hello", &profile_body("hello", LIMITS, ""));
    let (b, c) = (a.replica(), a.replica());
    let agent = token(&a, "submitter", "agent");
    let extra = ["--lease-ttl", "2s", "--pool", "30", "--per-token", "30"];
    let servers = [
        Server::start(&a, &extra),
        Server::start(&b, &extra),
        Server::start(&c, &extra),
    ];
    servers[0].submit(&agent, "hello", &guests::example("hello"));

    let ids = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..30 {
            let (servers, agent, ids) = (&servers, &agent, &ids);
            scope.spawn(move || {
                for i in 0..10 {
                    let server = &servers[(worker + i) % 3];
                    let answer = server.post(
                        "/v1/runs",
                        agent,
                        json!({"tool": "hello", "profile": "hello", "input": {"name": format!("w{worker}-{i}")}}),
                    );
                    assert_eq!(answer.status, 200, "{}", answer.text);
                    assert_eq!(answer.json["status"], "ok", "{}", answer.text);
                    ids.lock().expect("ids").push(answer.json["run_id"].as_str().expect("id").to_owned());
                }
            });
        }
    });
    assert_eq!(ids.lock().expect("ids").len(), 300);
    let out = a.cmd(&["runs", "verify", "--all"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("300 runs, 300 seals"), "{said}");
    // Each replica signed with its own key.
    let mut client = a.postgres().expect("postgres").client();
    let signers: i64 = client
        .query_one("SELECT count(DISTINCT key_id) FROM seals", &[])
        .expect("count signers")
        .get(0);
    assert_eq!(signers, 3, "every replica sealed runs with its own key");
}

#[test]
fn one_idempotency_key_sent_to_two_replicas_at_once_pays_once() {
    let payments = HttpServer::start();
    let mut a = Env::on_postgres();
    a.make_key_slots(4);
    a.profile(
        "pay",
        &profile_body(
            "pay",
            LIMITS,
            &format!(
                "[net]\nallow = [{{ url = \"http://127.0.0.1:{}/v1/payments\", methods = [\"POST\"] }}]\n\n[retry]\nidempotency = \"required\"\n",
                payments.port()
            ),
        ),
    );
    let b = a.replica();
    let agent = token(&a, "submitter", "agent");
    let (sa, sb) = (replica(&a), replica(&b));
    sa.submit(&agent, "pay-invoice", &guests::example("pay-invoice"));

    for round in 0..3 {
        let key = format!("pay-INV-{round}");
        let body = json!({
            "tool": "pay-invoice",
            "profile": "pay",
            "idempotency_key": key,
            "input": {"invoice": format!("INV-{round}"), "amount_cents": 1200, "base_url": format!("http://127.0.0.1:{}", payments.port())}
        });
        let answers: Vec<support::api::Answer> = std::thread::scope(|scope| {
            let one = scope.spawn(|| sa.post("/v1/runs", &agent, body.clone()));
            let two = scope.spawn(|| sb.post("/v1/runs", &agent, body.clone()));
            vec![one.join().expect("a"), two.join().expect("b")]
        });
        for answer in &answers {
            assert_eq!(answer.status, 200, "{}", answer.text);
            assert_eq!(answer.json["status"], "ok", "{}", answer.text);
        }
        let replays = answers
            .iter()
            .filter(|a| a.json["replay_of"].is_string())
            .count();
        assert_eq!(replays, 1, "one ran, the other replayed it: {answers:?}");
        assert_eq!(
            answers[0].json["output"], answers[1].json["output"],
            "both return the one payment's result"
        );
        assert_eq!(
            payments.hits().len(),
            round + 1,
            "the payments server saw the key once"
        );
    }
}

#[test]
fn a_replica_cut_off_from_the_database_refuses_runs_and_fails_healthz() {
    let mut a = Env::on_postgres();
    a.make_key_slots(4);
    a.profile("hello", &profile_body("hello", LIMITS, ""));
    let relay = Relay::to(a.postgres().expect("postgres").server_addr());
    let b = a.replica_via(relay.port());
    let agent = token(&a, "submitter", "agent");
    let (sa, sb) = (replica(&a), replica(&b));
    sa.submit(&agent, "hello", &guests::example("hello"));
    let run = json!({"tool": "hello", "profile": "hello", "input": {"name": "b"}});
    let ok = sb.post("/v1/runs", &agent, run.clone());
    assert_eq!(ok.status, 200, "{}", ok.text);
    let health = sb.call("GET", "/healthz", None, support::api::Body::None);
    assert_eq!(health.status, 200, "{}", health.text);

    relay.cut();
    let cut_at = Instant::now();
    let unhealthy = loop {
        let health = sb.call("GET", "/healthz", None, support::api::Body::None);
        if health.status == 503 {
            break health;
        }
        assert!(
            cut_at.elapsed() < LEASE_TTL * 4,
            "healthz still {} {:?} after the database was cut off",
            health.status,
            cut_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "database cut off -> /healthz 503 after {:?}",
        cut_at.elapsed()
    );
    assert_eq!(
        unhealthy.json["status"], "unavailable",
        "{}",
        unhealthy.text
    );
    assert!(unhealthy.text.contains("lease"), "{}", unhealthy.text);
    let refused = sb.post("/v1/runs", &agent, run.clone());
    assert!(
        refused.status >= 500,
        "a replica without its lease must not run: {} {}",
        refused.status,
        refused.text
    );
    // The other replica carries on.
    let ok = sa.post("/v1/runs", &agent, run.clone());
    assert_eq!(ok.status, 200, "{}", ok.text);

    relay.restore();
    let back = Instant::now();
    loop {
        let health = sb.call("GET", "/healthz", None, support::api::Body::None);
        if health.status == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(30), "{}", health.text);
        std::thread::sleep(Duration::from_millis(100));
    }
    let again = sb.post("/v1/runs", &agent, run);
    assert_eq!(again.status, 200, "{}", again.text);
    let out = a.cmd(&["runs", "verify", "--all"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
