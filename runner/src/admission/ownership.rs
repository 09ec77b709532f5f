//! Who may change a registered tool: its owner, or an admin.
//!
//! Tool names are global, so whoever controls a name controls what every
//! later run of that name executes. A tool's owner is the identity that
//! first registered the name, recorded in the `tools.owner` column and in
//! the signed control log (`tool.add`, see [`crate::evidence::control`]):
//!
//! - `token:<name>`: the API token that uploaded it (`POST /v1/tools`);
//! - `local:<name>`: the local actor that added it (`airlock tools add
//!   --actor`, default the OS user).
//!
//! The two kinds never match each other, so a local actor named like a
//! token is not that token's holder.
//!
//! Only the owner or an admin may replace the tool with another component,
//! change its signature, or remove it. Over the API an admin is a token of
//! role `admin`. Locally an admin is whoever passes `--admin`: anyone who
//! can run the CLI on a home holds its runner key and could rewrite the
//! store anyway, so the local rule guards against mistakes and records who
//! overrode whom (the control-log entry carries `as_admin: true`); the
//! boundary between people is the API. A tool registered before tools had
//! owners has none and may be replaced or removed only by an admin.
//!
//! What it defends against: one submitter replacing or removing another
//! submitter's tool, so that the victim's next run executes the attacker's
//! component (issue #20, finding 2).

use std::fmt;

/// Prefix of an owner that is an API token.
const TOKEN: &str = "token:";

/// Prefix of an owner that is a local actor.
const LOCAL: &str = "local:";

/// Who asks to change the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The identity recorded as owner: `token:<name>` or `local:<name>`.
    pub id: String,
    /// Whether it may change tools it does not own.
    pub admin: bool,
}

impl Actor {
    /// The API token `name`; an admin when its role is `admin`.
    pub fn token(name: &str, admin: bool) -> Actor {
        Actor {
            id: format!("{TOKEN}{name}"),
            admin,
        }
    }

    /// The local actor `name` (`--actor` or the OS user); an admin when it
    /// passed `--admin`.
    pub fn local(name: &str, admin: bool) -> Actor {
        Actor {
            id: format!("{LOCAL}{name}"),
            admin,
        }
    }

    /// Whether this actor may change a tool owned by `owner` (`None`: a
    /// tool registered before tools had owners). `Ok(true)` when it may only
    /// as an admin (recorded as such).
    pub fn may_change(&self, owner: Option<&str>) -> Result<bool, Refusal> {
        if owner == Some(self.id.as_str()) {
            return Ok(false);
        }
        if self.admin {
            return Ok(true);
        }
        Err(Refusal {
            owner: owner.map(str::to_owned),
            actor: self.id.clone(),
        })
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// Why an actor may not change a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The tool's owner, if it has one.
    pub owner: Option<String>,
    /// Who asked.
    pub actor: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            Some(owner) => write!(
                f,
                "it is owned by {owner}, and {} is neither its owner nor an admin (rule: only a tool's owner or an admin may replace or remove it; register yours under another name, or ask {owner} or an admin)",
                self.actor
            ),
            None => write!(
                f,
                "it was registered before tools had owners, so only an admin may replace or remove it, and {} is not one (rule: ownerless tools are admin-only; ask an admin)",
                self.actor
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_or_admin_only() {
        let alice = Actor::token("alice", false);
        let mallory = Actor::token("mallory", false);
        let root = Actor::token("root", true);
        let local_alice = Actor::local("alice", false);
        let owner = Some("token:alice");
        assert_eq!(alice.may_change(owner), Ok(false));
        assert_eq!(root.may_change(owner), Ok(true));
        assert_eq!(root.may_change(None), Ok(true));
        for (actor, owner) in [
            (&mallory, owner),
            (&local_alice, owner),
            (&alice, None),
            (&alice, Some("alice")),
        ] {
            let refusal = actor.may_change(owner).err();
            let text = refusal.map(|r| r.to_string()).unwrap_or_default();
            assert!(text.contains(&actor.id), "{actor} {owner:?}: {text}");
            assert!(text.contains("rule: "), "{text}");
        }
    }
}
