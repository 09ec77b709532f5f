//! Trust: the keys and tokens that say who did what.
//!
//! - [`keys`]: the runner's Ed25519 signing key and the trusted public keys;
//! - [`tokens`]: run tokens (EdDSA JWTs) issued to tools, and their
//!   verification;
//! - [`access`]: API tokens and the roles of `airlock serve`;
//! - [`pinned`]: the trust file an operator pins for verification;
//! - [`decision`]: approvers' own keys, pinned in the trust file, and the
//!   signatures on approval decisions.
//!
//! Defends against forged seals, tokens and decisions, and against a
//! caller acting beyond its role.

pub mod access;
pub mod decision;
pub mod keys;
pub mod pinned;
pub mod slots;
pub mod tokens;
