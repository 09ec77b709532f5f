//! Profile-written globs over paths (and hosts), and the path spellings
//! that would carry a request past one.
//!
//! The network allowlist ([`crate::net::policy`]: may this request be
//! sent?) and the runner's approval rules (must a human approve it?) both
//! match a request path against a glob from a profile. They use this one
//! module, so a spelling one of them refuses or flags the other cannot
//! miss.
//!
//! What it defends against:
//! - **Dot segments a server resolves after the check.** `..` written
//!   literally, percent-encoded in any case (`%2e%2e`, `.%2E`, `%2e.`), or
//!   followed by a `;` parameter (`..;`, which some servers read as `..`):
//!   [`has_dot_segment`] recognizes every spelling, so `/api/%2e%2e/admin`
//!   cannot pass for a path under `/api/**`.
//! - **Encoded separators.** `%2F` and `%5C` keep `a%2Fb` one segment for
//!   `*`, but a server may decode them into a separator afterwards
//!   ([`has_encoded_separator`]).
//! - **Glob syntax in profile text.** In a [`Glob`] only `*` is special
//!   (`*` within one segment, `**` across segments); `?`, `[`, `{` and `\`
//!   match themselves, so a character of a path never widens a rule.

use globset::{GlobBuilder, GlobMatcher};

/// Whether any `/`-separated segment of `path` is a dot segment: `.` or
/// `..`, literally or percent-encoded (any case), ignoring `;` parameters
/// (`..;` counts).
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(is_dot_segment)
}

/// `.` or `..`, literally or percent-encoded, ignoring `;` parameters.
fn is_dot_segment(segment: &str) -> bool {
    let head = segment.split(';').next().unwrap_or(segment);
    matches!(
        head.to_ascii_lowercase().as_str(),
        "." | ".." | "%2e" | ".%2e" | "%2e." | "%2e%2e"
    )
}

/// Whether `path` holds `%2F` or `%5C` (any case): separators a server may
/// decode after the path was checked.
pub fn has_encoded_separator(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("%2f") || lower.contains("%5c")
}

/// Whether a server could resolve `path` outside a glob that matched it:
/// it has an encoded separator or a dot segment in any spelling.
pub fn is_ambiguous(path: &str) -> bool {
    has_encoded_separator(path) || has_dot_segment(path)
}

/// Whether a [`Glob`] tells upper from lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `/API` is not `/api`: for allowlists, where a request spelled
    /// differently from the rule is refused (fail closed).
    Sensitive,
    /// `/API` is `/api`: for rules that must err toward matching, such as
    /// which requests need approval.
    Insensitive,
}

/// A compiled glob in which only `*` is special: `*` matches within one
/// `/`-separated segment, `**` as a whole segment spans segments. Every
/// other character, glob syntax included, matches itself.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    matcher: GlobMatcher,
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str, case: Case) -> Result<Glob, globset::Error> {
        let mut glob = String::with_capacity(pattern.len());
        for c in pattern.chars() {
            if c == '*' {
                glob.push('*');
            } else {
                glob.push_str(&globset::escape(c.encode_utf8(&mut [0; 4])));
            }
        }
        let matcher = GlobBuilder::new(&glob)
            .literal_separator(true)
            .backslash_escape(false)
            .case_insensitive(case == Case::Insensitive)
            .build()?
            .compile_matcher();
        Ok(Glob {
            pattern: pattern.to_owned(),
            matcher,
        })
    }

    /// The pattern as compiled.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the glob matches `path` exactly as spelled.
    pub fn is_match(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }

    /// Whether the glob matches `path` or `path` with its trailing slashes
    /// added or removed: `dir/**` covers `dir`, and `/pay` covers `/pay/`
    /// (servers often treat them as one). Errs toward matching; for rules
    /// that ask, never for rules that allow.
    pub fn covers(&self, path: &str) -> bool {
        if self.is_match(path) {
            return true;
        }
        let trimmed = path.trim_end_matches('/');
        if !trimmed.is_empty() && trimmed != path && self.is_match(trimmed) {
            return true;
        }
        !path.ends_with('/') && self.is_match(&format!("{path}/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_in_every_spelling() {
        #[rustfmt::skip]
        let rows: &[(&str, bool)] = &[
            ("/a/../b", true), ("/a/./b", true), ("/a/%2e%2e/b", true), ("/a/%2E%2e/b", true),
            ("/a/.%2e/b", true), ("/a/%2e./b", true), ("/a/%2e/b", true), ("/a/..;/b", true),
            ("/a/..;jsessionid=1/b", true), ("/a/%2e%2e;x/b", true),
            ("/a/.../b", false), ("/a/..b/b", false), ("/a/b..", false), ("/a/%2e%2e%2e/b", false),
            ("/a/%252e%252e/b", false),
        ];
        for &(path, expected) in rows {
            assert_eq!(has_dot_segment(path), expected, "{path}");
            assert_eq!(is_ambiguous(path), expected, "{path}");
        }
        for path in ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a%5cb"] {
            assert!(has_encoded_separator(path) && is_ambiguous(path), "{path}");
        }
    }

    #[test]
    fn only_star_is_special() -> Result<(), globset::Error> {
        #[rustfmt::skip]
        let rows: &[(&str, Case, &str, bool)] = &[
            ("/v1/*/x", Case::Sensitive, "/v1/a/x", true),
            ("/v1/*/x", Case::Sensitive, "/v1/a/b/x", false),
            ("/v1/**", Case::Sensitive, "/v1/a/b", true),
            ("/a?b", Case::Sensitive, "/axb", false),
            ("/a?b", Case::Sensitive, "/a?b", true),
            ("/[a]", Case::Sensitive, "/a", false),
            ("/a\\*", Case::Sensitive, "/a\\x", true),
            ("/api/*", Case::Sensitive, "/API/x", false),
            ("/api/*", Case::Insensitive, "/API/x", true),
        ];
        for &(pattern, case, path, expected) in rows {
            assert_eq!(
                Glob::new(pattern, case)?.is_match(path),
                expected,
                "{pattern} {path}"
            );
        }
        Ok(())
    }

    #[test]
    fn covers_tolerates_trailing_slashes() -> Result<(), globset::Error> {
        let dir = Glob::new("/ledger/**", Case::Sensitive)?;
        assert!(dir.covers("/ledger") && !dir.is_match("/ledger"));
        let pay = Glob::new("/pay", Case::Sensitive)?;
        assert!(pay.covers("/pay/") && !pay.is_match("/pay/"));
        assert!(!pay.covers("/pay/x"));
        Ok(())
    }
}
