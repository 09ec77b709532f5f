//! Trust: the keys and tokens that say who did what.
//!
//! - [`keys`]: the runner's Ed25519 signing key and the trusted public keys;
//! - [`tokens`]: run tokens (EdDSA JWTs) issued to tools, and their
//!   verification;
//! - [`access`]: API tokens and the roles of `airlock serve`;
//! - [`pinned`]: the trust file an operator pins for verification.
//!
//! Defends against forged seals and tokens, and against a caller acting
//! beyond its role.

pub mod access;
pub mod keys;
pub mod pinned;
pub mod tokens;
