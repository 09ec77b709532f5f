//! `airlock keys`: the runner's signing key, publisher and approver keys,
//! the JWK Set and trust files.

use super::Failure;
use crate::config::home::Home;
use crate::trust::keys::{RunnerKey, TrustedKeys};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub(super) enum KeysCommand {
    /// Create the runner's Ed25519 signing key.
    Init,
    /// Show the runner's key id and public key.
    Show,
    /// Print the trusted public keys as a JWK Set (for services verifying run tokens).
    Jwks,
    /// Create a publisher signing key for `airlock sign`, or with
    /// `--approver NAME` an approver's own decision key (mode 0600).
    Generate {
        /// Where to write the key (PKCS#8); required without --approver.
        path: Option<PathBuf>,
        /// Create approver NAME's key for signing decisions (`airlock
        /// approvals approve --as NAME`), by default under the user's config
        /// directory, outside the airlock home.
        #[arg(long, value_name = "NAME")]
        approver: Option<String>,
        /// Where to write the approver key (instead of PATH or the default).
        #[arg(long, requires = "approver")]
        out: Option<PathBuf>,
    },
    /// Print a trust file pinning this home's runner key (with
    /// --key-slots, every slot's key), for `runs verify --trust FILE`
    /// (keep the file outside the home).
    Trust,
}

pub(super) fn keys(home: Home, cmd: KeysCommand) -> Result<i32, Failure> {
    let key = match cmd {
        KeysCommand::Init => RunnerKey::init(home.root())?,
        KeysCommand::Show => RunnerKey::load(home.root())?,
        KeysCommand::Generate {
            path,
            approver: Some(name),
            out,
        } => return generate_approver_key(&name, out.or(path)),
        KeysCommand::Generate {
            path,
            approver: None,
            ..
        } => {
            let path = path.ok_or_else(|| {
                Failure::usage("give the PATH to write the publisher key to (or --approver NAME for an approver's key)")
            })?;
            let key_id = crate::admission::signing::generate_key(&path)
                .map_err(|e| Failure::usage(e.to_string()))?;
            say!("key id      {key_id}");
            say!("key file    {}", path.display());
            // Also what a key slot's public half is pinned as.
            if let Ok(key) = RunnerKey::load_file(&path) {
                say!("public key  {}", key.public_key_hex());
            }
            return Ok(0);
        }
        KeysCommand::Trust => {
            let publics: Vec<String> = match home.key_slots() {
                Some(dir) => crate::trust::slots::KeySlots::load(dir)?
                    .keys()
                    .iter()
                    .map(|key| key.public_key_hex().to_owned())
                    .collect(),
                None => vec![RunnerKey::load(home.root())?.public_key_hex().to_owned()],
            };
            let publics: Vec<&str> = publics.iter().map(String::as_str).collect();
            print!("{}", crate::trust::pinned::render(&publics));
            return Ok(0);
        }
        KeysCommand::Jwks => {
            let keys = TrustedKeys::load(home.root())?;
            say!(
                "{}",
                serde_json::to_string_pretty(&crate::trust::tokens::jwks(&keys))
                    .unwrap_or_default()
            );
            return Ok(0);
        }
    };
    say!("key id      {}", key.key_id());
    say!("public key  {}", key.public_key_hex());
    say!("algorithm   Ed25519");
    Ok(0)
}

pub(super) fn generate_approver_key(name: &str, out: Option<PathBuf>) -> Result<i32, Failure> {
    let path = out.unwrap_or_else(|| crate::trust::decision::default_key_path(name));
    let key = crate::trust::decision::ApproverKey::generate(name, &path)
        .map_err(|e| Failure::usage(e.to_string()))?;
    say!("approver    {name}");
    say!("key id      {}", key.key_id());
    say!("key file    {}", path.display());
    say!("public key  {}", key.public_key_hex());
    say!(
        "pin it in the trust file ({}):",
        crate::trust::decision::TRUST_ENV
    );
    say!("[approvers]");
    say!("{name} = [\"{}\"]", key.public_key_hex());
    Ok(0)
}
