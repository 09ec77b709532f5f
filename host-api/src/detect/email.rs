//! E-mail addresses.

use super::{Detector, Finding};

/// Longest local part (RFC 5321 §4.5.3.1.1). A longer run before `@`
/// is not an address; it is rejected, not truncated, so a long token
/// that happens to precede an `@` is not half-flagged.
const MAX_LOCAL: usize = 64;
/// Longest domain in text form (RFC 1035 §2.3.4, less the root dot).
const MAX_DOMAIN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;
/// Shortest top-level domain in use (two-letter country codes).
const MIN_TLD_CHARS: usize = 2;

/// "TLDs" that are really file extensions and are not delegated in the
/// root zone: `logo@2x.png`, `icon@3x.webp` (retina asset names) and
/// `bundle@1.2.js` are file names, not addresses. Real TLDs that are
/// also extensions (`.zip`, `.py`, `.rs`, `.md`) are kept.
const FILE_EXTENSIONS: [&str; 15] = [
    "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "ico", "bmp", "tif", "tiff", "js", "css",
    "json", "html",
];

/// Characters of a local part: the common practical set (letters,
/// digits, `.`, `_`, `%`, `+`, `-`), plus any non-ASCII letter or digit
/// for internationalised addresses. Quoted local parts and the rarer
/// RFC 5322 `atext` symbols (`'`, `/`, `{`, ...) are left out: they are
/// almost never used, and including them makes the match swallow
/// quotes and paths around an address.
fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '.' | '_' | '%' | '+' | '-')
        || (!c.is_ascii() && c.is_alphanumeric())
}

/// Characters of a domain: LDH plus dots, plus non-ASCII letters and
/// digits for internationalised domain names in Unicode form. In
/// scripts written without spaces the match can run into the next
/// word (`a@b.cn谢谢`); that over-redacts, which is the safe side.
fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-') || (!c.is_ascii() && c.is_alphanumeric())
}

/// Finds `local@domain.tld` around each `@`.
///
/// Choices: the domain needs at least two labels and an alphabetic (or
/// `xn--` punycode) TLD, so `user@localhost`, `root@10.0.0.1`,
/// `pkg@1.2.3` and decorators are not addresses — single-label and IP
/// hosts appear constantly in connection strings and SSH targets and
/// carry no personal data. `git@github.com:org/repo` does match
/// `git@github.com`: it is address-shaped and redacting it is harmless.
pub(super) fn scan(text: &str, out: &mut Vec<Finding>) {
    for (at, _) in text.match_indices('@') {
        let Some(start) = local_start(text, at) else {
            continue;
        };
        let Some(end) = domain_end(text, at + 1) else {
            continue;
        };
        out.push(Finding {
            detector: Detector::Email,
            start,
            end,
        });
    }
}

/// Start of a valid local part ending just before `at`.
fn local_start(text: &str, at: usize) -> Option<usize> {
    let before = text.get(..at)?;
    // Bounded walk: a run longer than MAX_LOCAL is rejected anyway.
    let mut start = at;
    let mut chars = 0;
    for (i, c) in before.char_indices().rev() {
        if !is_local_char(c) {
            break;
        }
        chars += 1;
        if chars > MAX_LOCAL {
            return None;
        }
        start = i;
    }
    let mut local = text.get(start..at)?;
    // A dot cannot start a local part or repeat: keep what follows the
    // last `..` and drop leading dots (`..bob@x.org` -> `bob@x.org`).
    if let Some(i) = local.rfind("..") {
        local = local.get(i + 2..)?;
    }
    local = local.trim_start_matches('.');
    if local.is_empty() || local.ends_with('.') {
        return None;
    }
    Some(at - local.len())
}

/// End of a valid domain starting at `from`, or `None`.
fn domain_end(text: &str, from: usize) -> Option<usize> {
    let after = text.get(from..)?;
    let mut len = 0;
    for c in after.chars() {
        if !is_domain_char(c) {
            break;
        }
        len += c.len_utf8();
        if len > MAX_DOMAIN + 1 {
            return None;
        }
    }
    // Trailing dots and dashes are punctuation: `mail bob@x.org.`,
    // `bob@x.org--thanks` is rare, `bob@x.org-` at a line break is not.
    let domain = after.get(..len)?.trim_end_matches(['.', '-']);
    if domain.len() > MAX_DOMAIN {
        return None;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || !labels.iter().all(|l| valid_label(l)) {
        return None;
    }
    let tld = labels.last()?;
    if !valid_tld(tld) {
        return None;
    }
    Some(from + domain.len())
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn valid_tld(tld: &str) -> bool {
    let alphabetic = tld.chars().count() >= MIN_TLD_CHARS && tld.chars().all(char::is_alphabetic);
    let punycode = tld.len() > 4
        && tld.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
        && tld.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (alphabetic || punycode)
        && !FILE_EXTENSIONS
            .iter()
            .any(|ext| tld.eq_ignore_ascii_case(ext))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::detect::tests::{found, table};
    use crate::detect::*;

    #[test]
    fn email_table() {
        table(
            Detector::Email,
            &[
                ("alice@example.com", &["alice@example.com"]),
                (
                    "mail Alice.Smith+tag@mail.example.co.uk.",
                    &["Alice.Smith+tag@mail.example.co.uk"],
                ),
                (
                    "<bob_1%x@sub-domain.example.org>",
                    &["bob_1%x@sub-domain.example.org"],
                ),
                ("{\"email\":\"carol@example.io\"}", &["carol@example.io"]),
                ("'dave@example.net'", &["dave@example.net"]),
                ("mailto:erin@example.com?subject=hi", &["erin@example.com"]),
                ("git@github.com:org/repo.git", &["git@github.com"]),
                (
                    "postgres://user:pw@db.example.com/app",
                    &["pw@db.example.com"],
                ),
                ("josé@exämple.de", &["josé@exämple.de"]),
                ("a@xn--bcher-kva.example", &["a@xn--bcher-kva.example"]),
                ("x@example.xn--p1ai", &["x@example.xn--p1ai"]),
                ("a@b.com, c@d.org", &["a@b.com", "c@d.org"]),
                ("write to a@b.org-\nthanks", &["a@b.org"]),
                ("..bob@x.org", &["bob@x.org"]),
                ("a..b@x.org", &["b@x.org"]),
                ("a@b@c.org", &["b@c.org"]),
                // not addresses
                ("user@localhost", &[]),
                ("root@10.0.0.1", &[]),
                ("ssh deploy@web1", &[]),
                ("lodash@4.17.21", &[]),
                ("logo@2x.png icon@3x.WEBP", &[]),
                ("@decorator.name", &[]),
                ("alice@", &[]),
                ("alice@.com", &[]),
                ("alice@example.", &[]),
                ("alice@example.c", &[]),
                ("alice@example.c0m", &[]),
                ("alice@-example.com", &[]),
                ("alice@example-.com", &[]),
                ("trailing.@example.com", &[]),
                ("alice@@example.com", &[]),
                (&format!("{}@example.com", "x".repeat(65)), &[]),
            ],
        );
    }

    #[test]
    fn email_long_label_and_domain_limits() {
        let long_label = format!("a@{}.com", "b".repeat(64));
        assert!(found(Detector::Email, &long_label).is_empty());
        let ok_label = format!("a@{}.com", "b".repeat(63));
        assert_eq!(found(Detector::Email, &ok_label), [ok_label.as_str()]);
        let local64 = format!("{}@example.com", "l".repeat(64));
        assert_eq!(found(Detector::Email, &local64), [local64.as_str()]);
        let huge_domain = format!("a@{}com", "abcdefghi.".repeat(30));
        assert!(found(Detector::Email, &huge_domain).is_empty());
    }
}
