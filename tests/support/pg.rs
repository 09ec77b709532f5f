//! A PostgreSQL database of a test's own on the machine's server
//! (`AIRLOCK_TEST_PG`, default `postgres://postgres@127.0.0.1:5432`, which
//! `scripts/test.sh` starts when nothing answers there): created empty for
//! the test, dropped (its connections ended) when the test ends.
//!
//! `AIRLOCK_TEST_STORE=postgres` runs every end-to-end test's `airlock`
//! against such a database instead of the home's SQLite file, so the two
//! backends pass the same suites.

use std::sync::Arc;

/// Whether this test run uses PostgreSQL for every env.
pub fn selected() -> bool {
    std::env::var("AIRLOCK_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("AIRLOCK_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// One test's database, dropped with the last handle.
#[derive(Debug)]
pub struct TestDb {
    name: String,
}

impl TestDb {
    /// Creates an empty database with a fresh name.
    pub fn create() -> Arc<TestDb> {
        let name = format!("airlock_test_{}", uuid::Uuid::now_v7().simple());
        admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        Arc::new(TestDb { name })
    }

    /// Its URL, for `--store` / `AIRLOCK_STORE`.
    pub fn url(&self) -> String {
        format!("{}/{}", server_url(), self.name)
    }

    /// Its URL reaching the server through local `port` instead (a relay).
    pub fn url_via(&self, port: Option<u16>) -> String {
        let Some(port) = port else {
            return self.url();
        };
        let mut url = url::Url::parse(&self.url()).expect("test database URL");
        url.set_port(Some(port)).expect("a port");
        url.to_string()
    }

    /// The server's address, for a relay in front of it.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        let url = url::Url::parse(&server_url()).expect("AIRLOCK_TEST_PG is a URL");
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port().unwrap_or(5432);
        format!("{host}:{port}")
            .parse()
            .expect("the test server is an IP address and port")
    }

    /// A client connected to it, for tests that look at rows directly.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url()))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let dropped = admin().batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
        if let Err(e) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// A connection to the server's `postgres` database.
fn admin() -> postgres::Client {
    let url = format!("{}/postgres", server_url());
    postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "no PostgreSQL at {url} ({e}): `bash scripts/postgres.sh` starts one, or set AIRLOCK_TEST_PG"
        )
    })
}

/// A statement written for SQLite (`?N` placeholders) in PostgreSQL's
/// dialect (`$N`).
pub fn dialect(statement: &str) -> String {
    let mut out = String::with_capacity(statement.len());
    let mut chars = statement.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// Column `i` of `row` as text, whatever its type (`NULL` as `None`).
pub fn text(row: &postgres::Row, i: usize) -> Option<String> {
    if let Ok(value) = row.try_get::<_, Option<String>>(i) {
        return value;
    }
    if let Ok(value) = row.try_get::<_, Option<i64>>(i) {
        return value.map(|n| n.to_string());
    }
    if let Ok(value) = row.try_get::<_, Option<bool>>(i) {
        return value.map(|b| b.to_string());
    }
    row.try_get::<_, Option<Vec<u8>>>(i)
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}
