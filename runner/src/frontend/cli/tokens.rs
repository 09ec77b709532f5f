//! `airlock tokens`: API tokens for `airlock serve` (shown once, stored
//! hashed) and verification of run tokens.

use super::{EXIT_TAMPERED, Failure, open_store};
use crate::config::home::Home;
use crate::trust::keys::TrustedKeys;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub(super) enum TokensCommand {
    /// Create an API token for `airlock serve` (the token is shown once).
    Create {
        /// What the token may do.
        #[arg(long, value_enum)]
        role: crate::trust::access::Role,
        /// Who holds it (unique; recorded with the runs and decisions it makes).
        #[arg(long)]
        name: String,
    },
    /// List API tokens (names, roles, revocation; never the tokens).
    List,
    /// Revoke an API token; it stops working at once.
    Revoke {
        /// The token's name.
        name: String,
    },
    /// Verify a run token: signature, issuer, audience and expiry.
    Verify {
        /// The token (a JWT).
        token: String,
        /// The audience the token must be for.
        #[arg(long)]
        audience: String,
    },
}

pub(super) fn tokens(home: Home, cmd: TokensCommand) -> Result<i32, Failure> {
    let api_tokens = || open_store(&home);
    let refused = |e: crate::trust::access::AccessError| Failure::usage(e.to_string());
    let (token, audience) = match cmd {
        TokensCommand::Verify { token, audience } => (token, audience),
        TokensCommand::Create { role, name } => {
            let store = api_tokens()?;
            let (record, secret) = crate::trust::access::ApiTokens::new(&*store)
                .create(&name, role)
                .map_err(refused)?;
            eprintln!(
                "airlock: created {} token {} (shown once: store it now)",
                record.role, record.name
            );
            say!("{secret}");
            return Ok(0);
        }
        TokensCommand::List => {
            let store = api_tokens()?;
            say!("{:<24} {:<10} {:<22} REVOKED", "NAME", "ROLE", "CREATED");
            for t in crate::trust::access::ApiTokens::new(&*store)
                .list()
                .map_err(refused)?
            {
                say!(
                    "{:<24} {:<10} {:<22} {}",
                    t.name,
                    t.role,
                    t.created_at,
                    t.revoked_at.as_deref().unwrap_or("-")
                );
            }
            return Ok(0);
        }
        TokensCommand::Revoke { name } => {
            let store = api_tokens()?;
            crate::trust::access::ApiTokens::new(&*store)
                .revoke(&name)
                .map_err(refused)?;
            say!("revoked {name}");
            return Ok(0);
        }
    };
    let keys = TrustedKeys::load(home.root())?;
    let now = std::time::SystemTime::now();
    match crate::trust::tokens::verify(
        &keys,
        token.trim(),
        &audience,
        now,
        crate::trust::tokens::DEFAULT_LEEWAY,
    ) {
        Ok(claims) => {
            say!(
                "{}",
                serde_json::to_string_pretty(&claims).unwrap_or_default()
            );
            Ok(0)
        }
        Err(e) => Err(Failure {
            code: EXIT_TAMPERED,
            message: format!("token {e}"),
        }),
    }
}
