//! TLS to the database: the store's connections are encrypted and the
//! server authenticated whenever the URL asks for it.
//!
//! `sslmode=require` (or `verify-ca` / `verify-full`, libpq's names for
//! what airlock always does) means TLS with the server's certificate
//! verified, host name included, against `sslrootcert=PATH` (PEM) when the
//! URL gives one, else the web PKI roots built into airlock. `disable`
//! means plain TCP. libpq's default, `prefer` (TLS if the server offers it,
//! without checking whom it talks to, falling back to plain), is read as
//! `disable`: an unauthenticated channel only looks encrypted, and
//! evidence and credentials-to-be would cross it.
//!
//! What it defends against: evidence, approval decisions and API-token
//! hashes read or rewritten on the wire between a replica and its
//! database; a URL that asks for TLS silently getting none (a certificate
//! that does not verify is a connection error naming the reason).

use crate::evidence::StoreError;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector every connection of a store uses.
pub type Tls = MakeRustlsConnect;

/// The URL's connection settings and the TLS connector they call for.
pub fn configure(url: &str) -> Result<(postgres::Config, Tls), StoreError> {
    let (url, mode, root_cert) = split_tls_params(url)?;
    let mut config: postgres::Config = url.parse().map_err(|e| StoreError::Backend {
        action: "reading the store URL",
        reason: format!("{e} (give postgres://USER@HOST:PORT/DATABASE)"),
        source: Box::new(e),
    })?;
    let verify = matches!(
        mode.as_deref(),
        Some("require" | "verify-ca" | "verify-full")
    );
    config.ssl_mode(if verify {
        postgres::config::SslMode::Require
    } else {
        postgres::config::SslMode::Disable
    });
    let roots = match &root_cert {
        Some(path) => pem_roots(path)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("setting up TLS", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((config, MakeRustlsConnect::new(client)))
}

/// Takes `sslmode` and `sslrootcert` out of the URL's query (the client
/// library knows the first only as disable/prefer/require and not the
/// second): the URL without them, the mode, the root certificate path.
fn split_tls_params(text: &str) -> Result<(String, Option<String>, Option<String>), StoreError> {
    let Ok(mut url) = url::Url::parse(text) else {
        // libpq's `key=value` form: passed through as it is, plain TCP
        // unless it says otherwise (then the client library refuses it).
        return Ok((text.to_owned(), None, None));
    };
    let mut mode = None;
    let mut root_cert = None;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter_map(|(key, value)| match &*key {
            "sslmode" => {
                mode = Some(value.into_owned());
                None
            }
            "sslrootcert" => {
                root_cert = Some(value.into_owned());
                None
            }
            _ => Some((key.into_owned(), value.into_owned())),
        })
        .collect();
    if let Some(mode) = &mode
        && !matches!(
            mode.as_str(),
            "disable" | "prefer" | "allow" | "require" | "verify-ca" | "verify-full"
        )
    {
        return Err(tls_error(
            "reading the store URL",
            format!("sslmode={mode}: give require (verified TLS) or disable"),
        ));
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((url.to_string(), mode, root_cert))
}

/// The certificates in the PEM file `path`, as trust roots.
fn pem_roots(path: &str) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error("reading sslrootcert", format!("{path}: {e}")))?;
    for cert in certs {
        let cert = cert.map_err(|e| tls_error("reading sslrootcert", format!("{path}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| tls_error("reading sslrootcert", format!("{path}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(tls_error(
            "reading sslrootcert",
            format!("{path} holds no PEM certificate"),
        ));
    }
    Ok(roots)
}

fn tls_error(action: &'static str, reason: String) -> StoreError {
    StoreError::Backend {
        action,
        source: reason.clone().into(),
        reason,
    }
}
