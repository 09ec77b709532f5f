//! How the host turns the name of an outbound HTTP request into addresses.
//!
//! [`Resolver::System`] asks the system resolver. [`Resolver::HostsFile`]
//! first looks the name up in an operator's hosts file (the profile's
//! `[net] hosts`), re-read at every lookup, and asks the system resolver
//! for names the file does not list, like `/etc/hosts` before DNS. Either
//! way the answer is only a candidate: every address is checked against
//! the policy ([`super::policy::decide_address`]) before a connection is
//! made, and the connection goes to the address that was checked.
//!
//! The file is TOML, one name per key and its addresses as a list:
//!
//! ```toml
//! "payments.internal" = ["10.0.4.7"]
//! "ledger.internal" = ["10.0.4.8", "fd00::8"]
//! ```
//!
//! What it defends against: pinning a name to known addresses removes DNS
//! (and whoever can answer for it) from the path of the hosts it lists. It
//! grants nothing: a listed private address is still refused unless an
//! allow entry names it literally. A file that cannot be read or parsed
//! fails the lookup (the request is refused and recorded); it never falls
//! back to DNS for the names it was meant to pin.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Largest hosts file read. Names and a few addresses each; the cap keeps
/// a replaced or runaway file from being read into memory at every request.
pub const MAX_HOSTS_FILE_BYTES: u64 = 256 * 1024;

/// Where the names of outbound requests are resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Resolver {
    /// The system resolver.
    #[default]
    System,
    /// Names listed in this TOML file resolve to its addresses (re-read at
    /// each lookup); other names go to the system resolver.
    HostsFile(PathBuf),
}

impl Resolver {
    /// The addresses of `name` with `port`. The error says what failed.
    pub async fn lookup(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if let Resolver::HostsFile(path) = self {
            let table = read_hosts(path).await?;
            let key = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(addresses) = table.get(&key) {
                return Ok(addresses
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, port))
                    .collect());
            }
        }
        tokio::net::lookup_host((name, port))
            .await
            .map(Iterator::collect)
            .map_err(|e| e.to_string())
    }
}

/// The hosts file at `path`: lowercase names (without a trailing dot) to
/// addresses.
async fn read_hosts(path: &PathBuf) -> Result<BTreeMap<String, Vec<IpAddr>>, String> {
    let shown = path.display();
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("hosts file {shown}: {e}"))?
        .len();
    if size > MAX_HOSTS_FILE_BYTES {
        return Err(format!(
            "hosts file {shown} is {size} bytes, more than {MAX_HOSTS_FILE_BYTES}"
        ));
    }
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("hosts file {shown}: {e}"))?;
    parse_hosts(&text).map_err(|e| format!("hosts file {shown}: {e}"))
}

/// Parses a hosts file (see the module docs).
pub fn parse_hosts(text: &str) -> Result<BTreeMap<String, Vec<IpAddr>>, String> {
    let raw: BTreeMap<String, Vec<IpAddr>> = toml::from_str(text)
        .map_err(|e| format!("{e}; write one `\"name\" = [\"address\", …]` line per name"))?;
    Ok(raw
        .into_iter()
        .map(|(name, addresses)| (name.trim_end_matches('.').to_ascii_lowercase(), addresses))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_and_addresses_parsed() {
        let table = parse_hosts("\"Payments.Test.\" = [\"127.0.0.2\", \"::1\"]\n").expect("parse");
        assert_eq!(
            table.get("payments.test").map(Vec::len),
            Some(2),
            "{table:?}"
        );
        for bad in ["x = \"127.0.0.1\"", "x = [\"not an address\"]", "x = [1]"] {
            assert!(parse_hosts(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_missing_file_fails_the_lookup_instead_of_asking_dns() {
        let resolver = Resolver::HostsFile(PathBuf::from("/nonexistent/airlock-hosts.toml"));
        let err = resolver.lookup("localhost", 80).await.expect_err("refused");
        assert!(err.contains("hosts file"), "{err}");
    }
}
