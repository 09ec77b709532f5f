//! The PostgreSQL store's connection (issue #17): TLS when the URL asks
//! for it, verified against the operator's CA, and refused, never
//! downgraded, when the server cannot be verified. The TLS end is a test
//! terminator on 127.0.0.1 speaking PostgreSQL's TLS negotiation in front
//! of the machine's server (`support::pg`), with a CA made for the test.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::{Env, text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// PostgreSQL's `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A TLS terminator for PostgreSQL on a free port: answers `SSLRequest`
/// with `S`, completes TLS with `cert`, and relays the decrypted stream to
/// `upstream`. Counts the TLS sessions it completed.
struct Terminator {
    port: u16,
    sessions: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl Terminator {
    fn start(upstream: SocketAddr, cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> Terminator {
        let chain = vec![cert.cert.der().clone()];
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let sessions = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&sessions);
        runtime.spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, counted) = (acceptor.clone(), Arc::clone(&counted));
                tokio::spawn(async move {
                    let mut request = [0u8; 8];
                    if client.read_exact(&mut request).await.is_err() || request != SSL_REQUEST {
                        return; // plain connections are not served
                    }
                    if client.write_all(b"S").await.is_err() {
                        return;
                    }
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                });
            }
        });
        Terminator {
            port,
            sessions,
            _runtime: runtime,
        }
    }
}

/// A CA and a server certificate it issued for 127.0.0.1.
fn ca_and_server() -> (rcgen::Certificate, rcgen::CertifiedKey<rcgen::KeyPair>) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "airlock test database CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().expect("server key");
    let server_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("server params");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    (
        ca_cert,
        rcgen::CertifiedKey {
            cert: server_cert,
            signing_key: server_key,
        },
    )
}

/// `airlock runs list` against `url`: (exit code, stdout + stderr).
fn list_runs(env: &Env, url: &str) -> (i32, String) {
    let out = env
        .airlock()
        .env("AIRLOCK_STORE", url)
        .args(["runs", "list"])
        .output()
        .expect("spawn airlock");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

#[test]
fn a_store_url_requiring_tls_is_served_over_verified_tls_and_refuses_an_unverified_server() {
    let env = Env::on_postgres();
    let db = env.postgres().expect("postgres");
    let (ca, server) = ca_and_server();
    let terminator = Terminator::start(db.server_addr(), &server);
    let ca_file = env.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write CA");
    let with_port = |port: u16, query: &str| {
        let mut url = url::Url::parse(&db.url_via(Some(port))).expect("url");
        url.set_query(Some(query));
        url.to_string()
    };

    // Verified: the operator's CA vouches for the server.
    let good = with_port(
        terminator.port,
        &format!("sslmode=require&sslrootcert={}", ca_file.display()),
    );
    let (code, said) = list_runs(&env, &good);
    assert_eq!(code, 0, "{said}");
    assert!(
        terminator.sessions.load(Ordering::SeqCst) >= 1,
        "the store connected through TLS"
    );

    // The same server without the CA that vouches for it: refused (the
    // built-in roots do not know a private CA), not downgraded.
    let before = terminator.sessions.load(Ordering::SeqCst);
    let unverified = with_port(terminator.port, "sslmode=require");
    let (code, said) = list_runs(&env, &unverified);
    assert_ne!(code, 0, "an unverifiable server was accepted: {said}");
    assert!(
        said.contains("TLS") || said.contains("certificate"),
        "the refusal names TLS: {said}"
    );
    assert_eq!(
        terminator.sessions.load(Ordering::SeqCst),
        before,
        "no session completed"
    );

    // A server that speaks no TLS at all (the machine's own, plain): the
    // URL's requirement is kept, not silently dropped.
    let server_port = db.server_addr().port();
    let plain = with_port(
        server_port,
        &format!("sslmode=require&sslrootcert={}", ca_file.display()),
    );
    let (code, said) = list_runs(&env, &plain);
    assert_ne!(
        code, 0,
        "TLS was required but the connection went plain: {said}"
    );

    // A mode airlock does not know is a usage error naming the fix.
    let (code, said) = list_runs(&env, &with_port(terminator.port, "sslmode=sometimes"));
    assert_ne!(code, 0, "{said}");
    assert!(
        said.contains("sslmode=sometimes") && said.contains("require"),
        "{said}"
    );
}
