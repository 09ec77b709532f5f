//! Data classification of a run's input: `public < internal <
//! confidential < restricted`. A run declares the classification of what it
//! carries (`--classification`); a profile caps it
//! (`[admission] max_classification`), so restricted data cannot flow into a
//! workflow category that was never approved for it.

use std::fmt;
use std::str::FromStr;

/// A data classification, ordered from least to most sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    /// May be published.
    Public,
    /// Internal to the organisation.
    Internal,
    /// Limited to those who need it.
    Confidential,
    /// The most sensitive data (regulated, secrets, personal data at scale).
    Restricted,
}

/// The accepted spellings, for error messages.
pub const ACCEPTED: &str = "\"public\", \"internal\", \"confidential\" or \"restricted\"";

impl FromStr for Classification {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "public" => Ok(Classification::Public),
            "internal" => Ok(Classification::Internal),
            "confidential" => Ok(Classification::Confidential),
            "restricted" => Ok(Classification::Restricted),
            other => Err(format!(
                "{other:?} is not a classification (use {ACCEPTED})"
            )),
        }
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
            Classification::Restricted => "restricted",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_and_parsed() {
        let all: Vec<Classification> = ["public", "internal", "confidential", "restricted"]
            .iter()
            .map(|s| s.parse().expect("valid"))
            .collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert!("secret".parse::<Classification>().is_err());
        assert_eq!(Classification::Confidential.to_string(), "confidential");
    }
}
