//! API tokens and roles for `airlock serve`.
//!
//! A token is 32 random bytes (`alk_` + base64url), shown once when it is
//! created; the store keeps only its SHA-256, so a copy of the database does
//! not grant access. Each token has one [`Role`], and the server checks the
//! role a route needs ([`Role::allows`]) before it does anything else.
//!
//! Defends against: stolen database copies being usable as credentials
//! (hashes only), guessing (256 bits of entropy), a revoked token staying
//! usable (revocation is checked on every request), and privilege creep
//! (roles are a closed set, and each route names the roles it admits).

use crate::admission::registry::MAX_NAME_LEN;
use crate::evidence::StoreError;
use crate::evidence::chain::now_rfc3339;
use crate::store::tokens::{TokenRepo, TokenRow};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use std::fmt;

/// Prefix of every API token, so a leaked one is recognisable in logs and
/// secret scanners.
pub const TOKEN_PREFIX: &str = "alk_";

/// Random bytes in a token: 256 bits, beyond guessing.
const TOKEN_BYTES: usize = 32;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submits tools and starts runs; reads its own runs.
    Submitter,
    /// Lists and decides approval requests (never for its own runs).
    Approver,
    /// Reads every run, its evidence and verification, tools and approvals.
    Auditor,
    /// Everything, including managing tokens.
    Admin,
}

/// What a route does, for the role check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Upload a tool.
    SubmitTool,
    /// Start a run.
    StartRun,
    /// List and show tools.
    ReadTools,
    /// Read one's own runs and their evidence.
    ReadOwnRuns,
    /// Read every run and its evidence, and the metrics.
    ReadAllRuns,
    /// List approval requests.
    ReadApprovals,
    /// Approve or deny a request.
    DecideApprovals,
    /// Create, list and revoke API tokens.
    ManageTokens,
}

impl Role {
    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored role name.
    pub fn parse(text: &str) -> Option<Role> {
        [Role::Submitter, Role::Approver, Role::Auditor, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == text)
    }

    /// Whether this role may do `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Submitter => {
                matches!(permission, SubmitTool | StartRun | ReadTools | ReadOwnRuns)
            }
            Role::Approver => matches!(permission, ReadApprovals | DecideApprovals),
            Role::Auditor => matches!(
                permission,
                ReadTools | ReadOwnRuns | ReadAllRuns | ReadApprovals
            ),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Who a request comes from, once its token is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name.
    pub name: String,
    /// The token's role.
    pub role: Role,
}

impl Principal {
    /// The submitter whose runs this principal is limited to: itself,
    /// unless its role reads every run (`None`).
    pub fn run_scope(&self) -> Option<String> {
        (!self.role.allows(Permission::ReadAllRuns)).then(|| self.name.clone())
    }

    /// Whether this principal may read a run started by `submitted_by`:
    /// readers of all runs may; others only their own.
    pub fn may_read_run(&self, submitted_by: Option<&str>) -> bool {
        self.role.allows(Permission::ReadAllRuns)
            || (self.role.allows(Permission::ReadOwnRuns) && submitted_by == Some(&self.name))
    }
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Unique name (who holds it).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was created (RFC 3339 UTC).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A token with this name exists.
    #[error("a token named {name} exists (revoke it first, or pick another name)")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// No token has this name.
    #[error("no token named {name} (see `airlock tokens list`)")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The name is not acceptable.
    #[error(
        "token name {name:?} is not valid: use 1 to {MAX_NAME_LEN} characters from a-z, 0-9, '.', '_', '-', starting with a letter or digit"
    )]
    InvalidName {
        /// The name.
        name: String,
    },
    /// The system random source failed.
    #[error("the system random source failed; no token was created")]
    Random,
}

/// The API tokens of one store.
pub struct ApiTokens<'a> {
    repo: &'a dyn TokenRepo,
}

impl<'a> ApiTokens<'a> {
    /// The tokens kept in `repo` (a [`crate::store::Store`]).
    pub fn new(repo: &'a dyn TokenRepo) -> ApiTokens<'a> {
        ApiTokens { repo }
    }

    /// Creates a token; returns its record and the secret, which is not
    /// stored and cannot be shown again.
    pub fn create(&self, name: &str, role: Role) -> Result<(ApiToken, String), AccessError> {
        check_name(name)?;
        let mut random = [0u8; TOKEN_BYTES];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| AccessError::Random)?;
        use base64::Engine as _;
        let secret = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        );
        let created_at = now_rfc3339();
        let row = TokenRow {
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            created_at: created_at.clone(),
            revoked_at: None,
        };
        self.repo.insert_token(&row, &hash(&secret))?;
        let token = ApiToken {
            name: name.to_owned(),
            role,
            created_at,
            revoked_at: None,
        };
        Ok((token, secret))
    }

    /// Every token, revoked ones included, by name.
    pub fn list(&self) -> Result<Vec<ApiToken>, AccessError> {
        self.repo
            .tokens()?
            .into_iter()
            .map(|row| {
                let role = parse_stored_role(&row.name, &row.role)?;
                Ok(ApiToken {
                    name: row.name,
                    role,
                    created_at: row.created_at,
                    revoked_at: row.revoked_at,
                })
            })
            .collect()
    }

    /// Revokes the token named `name`; it stops working at once.
    pub fn revoke(&self, name: &str) -> Result<(), AccessError> {
        self.repo.revoke_token(name, &now_rfc3339())
    }

    /// The principal holding `secret`, if it is a live token.
    pub fn authenticate(&self, secret: &str) -> Result<Option<Principal>, AccessError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        self.repo
            .live_token(&hash(secret))?
            .map(|(name, role)| {
                let role = parse_stored_role(&name, &role)?;
                Ok(Principal { name, role })
            })
            .transpose()
    }
}

fn parse_stored_role(name: &str, role: &str) -> Result<Role, AccessError> {
    Role::parse(role).ok_or_else(|| {
        AccessError::Store(StoreError::Corrupt {
            run_id: format!("api token {name}"),
            reason: format!("unknown role {role:?}"),
        })
    })
}

/// The stored form of a token: lowercase hex SHA-256.
fn hash(secret: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        secret.as_bytes(),
    ))
}

/// Token names follow the tool-name rules (they appear in evidence and
/// approval records).
fn check_name(name: &str) -> Result<(), AccessError> {
    crate::admission::registry::check_name(name).map_err(|_| AccessError::InvalidName {
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        (dir, store)
    }

    #[test]
    fn a_created_token_authenticates_until_revoked() {
        let (_dir, store) = store();
        let tokens = ApiTokens::new(&store);
        let (record, secret) = tokens.create("ci-bot", Role::Submitter).expect("create");
        assert_eq!(record.role, Role::Submitter);
        assert!(secret.starts_with(TOKEN_PREFIX));
        let who = tokens.authenticate(&secret).expect("auth").expect("known");
        assert_eq!(who.name, "ci-bot");
        tokens.revoke("ci-bot").expect("revoke");
        assert_eq!(tokens.authenticate(&secret).expect("auth"), None);
    }

    #[test]
    fn wrong_and_foreign_tokens_are_refused() {
        let (_dir, store) = store();
        let tokens = ApiTokens::new(&store);
        let (_, secret) = tokens.create("alice", Role::Auditor).expect("create");
        let mut altered = secret.clone();
        altered.pop();
        altered.push(if secret.ends_with('A') { 'B' } else { 'A' });
        for bad in [altered.as_str(), "", "Bearer x", "alk_", &secret[4..]] {
            assert_eq!(tokens.authenticate(bad).expect("auth"), None, "{bad}");
        }
    }

    #[test]
    fn names_are_unique_and_checked() {
        let (_dir, store) = store();
        let tokens = ApiTokens::new(&store);
        tokens.create("alice", Role::Auditor).expect("create");
        assert!(matches!(
            tokens.create("alice", Role::Admin),
            Err(AccessError::Duplicate { .. })
        ));
        for bad in ["", "Alice", "-x", "a b", &"a".repeat(65)] {
            assert!(
                matches!(
                    tokens.create(bad, Role::Admin),
                    Err(AccessError::InvalidName { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            tokens.revoke("nobody"),
            Err(AccessError::NotFound { .. })
        ));
    }

    #[test]
    fn roles_grant_what_the_issue_lists() {
        use Permission::*;
        let all = [
            SubmitTool,
            StartRun,
            ReadTools,
            ReadOwnRuns,
            ReadAllRuns,
            ReadApprovals,
            DecideApprovals,
            ManageTokens,
        ];
        let granted = |role: Role| -> Vec<Permission> {
            all.into_iter().filter(|p| role.allows(*p)).collect()
        };
        assert_eq!(
            granted(Role::Submitter),
            [SubmitTool, StartRun, ReadTools, ReadOwnRuns]
        );
        assert_eq!(granted(Role::Approver), [ReadApprovals, DecideApprovals]);
        assert_eq!(
            granted(Role::Auditor),
            [ReadTools, ReadOwnRuns, ReadAllRuns, ReadApprovals]
        );
        assert_eq!(granted(Role::Admin), all);
    }

    #[test]
    fn submitters_read_only_their_own_runs() {
        let me = Principal {
            name: "alice".into(),
            role: Role::Submitter,
        };
        assert!(me.may_read_run(Some("alice")));
        assert!(!me.may_read_run(Some("bob")));
        assert!(!me.may_read_run(None));
        let auditor = Principal {
            name: "audit".into(),
            role: Role::Auditor,
        };
        assert!(auditor.may_read_run(Some("bob")) && auditor.may_read_run(None));
        let approver = Principal {
            name: "alice".into(),
            role: Role::Approver,
        };
        assert!(!approver.may_read_run(Some("alice")));
    }
}
