//! Sensitive-content detectors: the pure functions behind a profile's
//! `[admission] detectors` and `on_detect`.
//!
//! Four detectors, named as in profiles:
//!
//! - `email` — addresses shaped `local@domain.tld`;
//! - `credit-card` — payment card numbers (13–19 digits, Luhn-valid);
//! - `private-key` — PEM private key blocks and PuTTY key files;
//! - `api-key` — credentials with a well-known prefix (OpenAI, Stripe,
//!   GitHub, Slack, AWS, Google, GitLab, JWTs) and long high-entropy
//!   tokens.
//!
//! [`scan`] returns where each detector fired as byte ranges, [`redact`]
//! replaces those ranges with `[redacted:<detector>]`, and [`summary`]
//! counts findings per detector: that count (never the matched text) is all
//! evidence records. A [`Finding`] holds only a detector and offsets, so a
//! finding logged by mistake does not leak the value either.
//!
//! **What this defends against:** accidental leakage of personal data,
//! card numbers and secrets into a run — a customer record or a `.env`
//! pasted into a tool's input, or a tool POSTing a key or a card number in
//! an outbound request body. Admission scans the input before the run
//! starts; the network host scans each outbound body.
//!
//! **What it does not defend against:** a guest that *means* to exfiltrate.
//! Detectors see plain text; anything encoded, encrypted, compressed, split
//! across requests or spelled out in words passes. Base64 is not decoded.
//! Containing a hostile guest is the job of the network allowlist, the
//! mounts and the credential model, not of this module.
//!
//! Every decision here is a pure function of its arguments: no I/O, no
//! global state, no panics on any input, and work linear in the input
//! (every scanner either advances or does bounded work per position; only
//! sorting the findings adds a log factor).
//! Offsets are byte offsets into the scanned text and always fall on
//! `char` boundaries. When findings overlap, [`scan`] merges them into one
//! finding covering their union, so redaction never leaves part of a
//! detected value in the clear; the merged finding is named after the
//! longest candidate (ties: private key, then API key, card, email).
//!
//! False-positive choices are documented on each detector's constants and
//! helpers below; they lean toward fewer false alarms only where the thing
//! skipped is public by design (hashes we record ourselves, certificates,
//! SSH public keys, image data) or cannot be a real value of the kind.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One kind of sensitive content, named as in a profile's
/// `[admission] detectors` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detector {
    /// `email`: an e-mail address.
    Email,
    /// `credit-card`: a Luhn-valid payment card number.
    CreditCard,
    /// `private-key`: a PEM private key block or a PuTTY key file.
    PrivateKey,
    /// `api-key`: a prefixed credential or a long high-entropy token.
    ApiKey,
}

impl Detector {
    /// Every detector, in a fixed order.
    pub const ALL: [Detector; 4] = [
        Detector::Email,
        Detector::CreditCard,
        Detector::PrivateKey,
        Detector::ApiKey,
    ];

    /// The detector a profile names `name` (`"email"`, `"credit-card"`,
    /// `"private-key"`, `"api-key"`; exact, lowercase), if any.
    pub fn parse(name: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The profile name of this detector; also the label in redactions and
    /// the key in [`summary`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::CreditCard => "credit-card",
            Detector::PrivateKey => "private-key",
            Detector::ApiKey => "api-key",
        }
    }

    /// Tie-break when overlapping candidates are equally long: the more
    /// damaging leak names the merged finding (lower is stronger).
    const fn rank(self) -> u8 {
        match self {
            Detector::PrivateKey => 0,
            Detector::ApiKey => 1,
            Detector::CreditCard => 2,
            Detector::Email => 3,
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A detector name that is not one of [`Detector::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown detector {0:?} (use one of: email, credit-card, private-key, api-key)")]
pub struct UnknownDetector(pub String);

impl FromStr for Detector {
    type Err = UnknownDetector;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Detector::parse(s).ok_or_else(|| UnknownDetector(s.to_owned()))
    }
}

/// Where a detector fired: byte offsets `start..end` into the scanned text,
/// on `char` boundaries. Deliberately holds no copy of the matched value,
/// so neither `Debug` output nor evidence can leak it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Finding {
    /// Which detector fired.
    pub detector: Detector,
    /// Byte offset of the first byte of the match.
    pub start: usize,
    /// Byte offset one past the last byte of the match.
    pub end: usize,
}

impl Finding {
    /// The finding's byte range, for slicing the scanned text.
    pub const fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// Scans `text` with `detectors` (duplicates and order don't matter) and
/// returns the findings sorted by `start`, pairwise non-overlapping.
/// Overlapping candidates are merged into one finding spanning their union
/// and named after the longest (see the module docs).
pub fn scan(detectors: &[Detector], text: &str) -> Vec<Finding> {
    let mut candidates = Vec::new();
    for detector in Detector::ALL {
        if !detectors.contains(&detector) {
            continue;
        }
        match detector {
            Detector::Email => email::scan(text, &mut candidates),
            Detector::CreditCard => card::scan(text, &mut candidates),
            Detector::PrivateKey => private_key::scan(text, &mut candidates),
            Detector::ApiKey => api_key::scan(text, &mut candidates),
        }
    }
    merge(candidates)
}

/// Byte that stands in for each invalid UTF-8 byte in [`scan_bytes`]: an
/// ASCII control character, so offsets are preserved one-to-one and no
/// detector treats it as part of a value.
const INVALID_BYTE_STANDIN: char = '\u{1A}';

/// [`scan`] for a body that need not be UTF-8 (an HTTP request body).
/// Valid UTF-8 is scanned as text; each invalid byte acts as a separator.
/// Offsets are into `body`.
pub fn scan_bytes(detectors: &[Detector], body: &[u8]) -> Vec<Finding> {
    let mut text = String::with_capacity(body.len());
    for chunk in body.utf8_chunks() {
        text.push_str(chunk.valid());
        text.extend(std::iter::repeat_n(
            INVALID_BYTE_STANDIN,
            chunk.invalid().len(),
        ));
    }
    scan(detectors, &text)
}

/// The redaction text for one finding: `[redacted:<detector>]`.
fn redaction(detector: Detector) -> String {
    format!("[redacted:{detector}]")
}

/// Replaces each finding in `text` with `[redacted:<detector>]`.
///
/// Meant for the findings [`scan`] returned for the same `text`. Other
/// input is handled without panicking and errs toward hiding more:
/// findings are taken in `start` order, ranges are clamped to the text and
/// widened to `char` boundaries, a finding overlapping the previous one
/// extends that redaction, and empty ones are skipped.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    for (detector, range) in normalized(findings, text.len()) {
        let start = text.floor_char_boundary(range.start);
        let end = text.ceil_char_boundary(range.end);
        if end <= start {
            continue;
        }
        if start < cursor {
            cursor = cursor.max(end);
            continue;
        }
        out.push_str(text.get(cursor..start).unwrap_or_default());
        out.push_str(&redaction(detector));
        cursor = end;
    }
    out.push_str(text.get(cursor..).unwrap_or_default());
    out
}

/// [`redact`] for a body that need not be UTF-8, with findings from
/// [`scan_bytes`]. Same rules, except ranges are not widened (there are no
/// `char` boundaries to respect).
pub fn redact_bytes(body: &[u8], findings: &[Finding]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut cursor = 0;
    for (detector, range) in normalized(findings, body.len()) {
        let start = range.start;
        if range.end <= start {
            continue;
        }
        if start < cursor {
            cursor = cursor.max(range.end);
            continue;
        }
        out.extend_from_slice(body.get(cursor..start).unwrap_or_default());
        out.extend_from_slice(redaction(detector).as_bytes());
        cursor = range.end;
    }
    out.extend_from_slice(body.get(cursor..).unwrap_or_default());
    out
}

/// Findings sorted by start, each range clamped to `0..len`.
fn normalized(findings: &[Finding], len: usize) -> Vec<(Detector, Range<usize>)> {
    let mut sorted: Vec<(Detector, Range<usize>)> = findings
        .iter()
        .map(|f| (f.detector, f.start.min(len)..f.end.min(len)))
        .collect();
    sorted.sort_by_key(|(_, r)| (r.start, r.end));
    sorted
}

/// How many findings each detector produced, keyed by profile name: what
/// an `admission.check` or `net.request` evidence event records.
pub fn summary(findings: &[Finding]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for finding in findings {
        *counts.entry(finding.detector.as_str()).or_insert(0) += 1;
    }
    counts
}

/// Merges overlapping candidates into their union, named after the
/// longest one (ties broken by [`Detector::rank`]); result sorted by start.
fn merge(mut candidates: Vec<Finding>) -> Vec<Finding> {
    candidates.retain(|c| c.start < c.end);
    candidates.sort_by_key(|c| (c.start, std::cmp::Reverse(c.end)));
    // (union span, strongest candidate inside it)
    let mut merged: Vec<(Finding, Finding)> = Vec::new();
    for candidate in candidates {
        if let Some((union, strongest)) = merged.last_mut()
            && candidate.start < union.end
        {
            union.end = union.end.max(candidate.end);
            let longer = (
                candidate.end - candidate.start,
                std::cmp::Reverse(candidate.detector.rank()),
            ) > (
                strongest.end - strongest.start,
                std::cmp::Reverse(strongest.detector.rank()),
            );
            if longer {
                *strongest = candidate;
            }
        } else {
            merged.push((candidate, candidate));
        }
    }
    merged
        .into_iter()
        .map(|(union, strongest)| Finding {
            detector: strongest.detector,
            start: union.start,
            end: union.end,
        })
        .collect()
}

/// The character before byte offset `i`, if any.
fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i)?.chars().next_back()
}

/// The character at byte offset `i`, if any.
fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..)?.chars().next()
}

/// ASCII letters, digits and `_`: what makes two values one word.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// E-mail addresses.
mod email {
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
        "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "ico", "bmp", "tif", "tiff", "js",
        "css", "json", "html",
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
        c.is_ascii_alphanumeric()
            || matches!(c, '.' | '-')
            || (!c.is_ascii() && c.is_alphanumeric())
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
        let alphabetic =
            tld.chars().count() >= MIN_TLD_CHARS && tld.chars().all(char::is_alphabetic);
        let punycode = tld.len() > 4
            && tld.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
            && tld.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        (alphabetic || punycode)
            && !FILE_EXTENSIONS
                .iter()
                .any(|ext| tld.eq_ignore_ascii_case(ext))
    }
}

/// Payment card numbers.
mod card {
    use super::{Detector, Finding, is_word_byte};

    /// Shortest card number in use (early Visa numbers).
    const MIN_DIGITS: usize = 13;
    /// Longest card number ISO/IEC 7812 allows.
    const MAX_DIGITS: usize = 19;
    /// UATP (airline) cards are the only issuer range starting with `1`,
    /// and they are exactly 15 digits long.
    const UATP_DIGITS: usize = 15;

    /// Finds card numbers: 13–19 digits, contiguous or in groups separated
    /// by single spaces or dashes, passing the Luhn check.
    ///
    /// Choices, each against a common non-card number:
    /// - the whole digit sequence (groups joined by single separators) is
    ///   the candidate; if it is not a card, each group of 13–19 digits is
    ///   tried alone (`qty 12 4111111111111111`), and so is the sequence
    ///   without a leading group that is longer or shorter than the group
    ///   after it or glued to a word (`qty 2 4111 1111 1111 1111`,
    ///   `ref x0123 4111 1111 1111 1111`: a number, then a grouped card); the
    ///   sequence is never cut elsewhere, so a 20-digit number in groups of
    ///   four is no card; the boundary rules below apply to whichever is
    ///   tried;
    /// - no letter, digit or `_` directly before or after (hex hashes,
    ///   identifiers, longer numbers), no `.` plus digit (decimals such as
    ///   `0.30000000000000004`; a comma is not excluded, CSV rows are where
    ///   card numbers leak), and no leading `+` (E.164 phone numbers);
    /// - the first digit is an issuer range used by payment networks
    ///   (2–6; 1 only for 15-digit UATP): this rejects millisecond
    ///   timestamps (`1732543200000`) and `0`-padded identifiers;
    /// - all-same-digit numbers (`0000 0000 0000 0000`) are rejected even
    ///   when Luhn-valid.
    pub(super) fn scan(text: &str, out: &mut Vec<Finding>) {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
                continue;
            }
            let start = i;
            let mut groups = Vec::new();
            loop {
                let group_start = i;
                while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                groups.push(group_start..i);
                let separator = matches!(bytes.get(i), Some(b' ' | b'-'));
                if separator && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                } else {
                    break;
                }
            }
            let end = i;
            if standalone(bytes, start, end) && is_card(bytes, start, end) {
                out.push(finding(start, end));
            } else if groups.len() > 1 {
                let rest = groups
                    .get(1..)
                    .filter(|rest| {
                        rest.len() > 1
                            && (rest[0].len() != groups[0].len()
                                || !standalone(bytes, groups[0].start, groups[0].end))
                    })
                    .map(|rest| rest[0].start);
                if let Some(rest) = rest
                    && standalone(bytes, rest, end)
                    && is_card(bytes, rest, end)
                {
                    out.push(finding(rest, end));
                    continue;
                }
                for group in groups {
                    if standalone(bytes, group.start, group.end)
                        && is_card(bytes, group.start, group.end)
                    {
                        out.push(finding(group.start, group.end));
                    }
                }
            }
        }
    }

    fn finding(start: usize, end: usize) -> Finding {
        Finding {
            detector: Detector::CreditCard,
            start,
            end,
        }
    }

    /// Whether `start..end` is not glued to a word, a decimal or a `+`.
    fn standalone(bytes: &[u8], start: usize, end: usize) -> bool {
        let before = start.checked_sub(1).and_then(|i| bytes.get(i)).copied();
        let before2 = start.checked_sub(2).and_then(|i| bytes.get(i)).copied();
        let after = bytes.get(end).copied();
        let after2 = bytes.get(end + 1).copied();
        let glued = |b: Option<u8>| b.is_some_and(is_word_byte);
        let decimal = |sep: Option<u8>, digit: Option<u8>| {
            sep == Some(b'.') && digit.is_some_and(|d| d.is_ascii_digit())
        };
        !glued(before)
            && !glued(after)
            && before != Some(b'+')
            && !decimal(before, before2)
            && !decimal(after, after2)
    }

    /// Whether the digits in `start..end` (separators skipped) are a card.
    fn is_card(bytes: &[u8], start: usize, end: usize) -> bool {
        let digits: Vec<u8> = bytes
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .filter(|b| b.is_ascii_digit())
            .map(|b| b - b'0')
            .collect();
        let (Some(&first), n) = (digits.first(), digits.len()) else {
            return false;
        };
        (MIN_DIGITS..=MAX_DIGITS).contains(&n)
            && (matches!(first, 2..=6) || (first == 1 && n == UATP_DIGITS))
            && digits.iter().any(|&d| d != first)
            && luhn(&digits)
    }

    /// The Luhn (mod 10) check over decimal digit values.
    pub(super) fn luhn(digits: &[u8]) -> bool {
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                let d = u32::from(d);
                if i % 2 == 1 {
                    let doubled = d * 2;
                    if doubled > 9 { doubled - 9 } else { doubled }
                } else {
                    d
                }
            })
            .sum();
        sum.is_multiple_of(10)
    }
}

/// PEM private key blocks and PuTTY key files.
mod private_key {
    use super::{Detector, Finding};

    pub(super) const BEGIN: &str = "-----BEGIN ";
    pub(super) const END: &str = "-----END ";
    const DASHES: &str = "-----";
    /// Longest PEM label we accept (`ENCRYPTED PRIVATE KEY` is 21; real
    /// labels are short). Anything longer is prose, not a marker.
    const MAX_LABEL: usize = 64;
    const PUTTY: &str = "PuTTY-User-Key-File-";
    /// Last line of a PuTTY key: `Private-MAC:` (v2, v3) or
    /// `Private-Hash:` (v1).
    const PUTTY_LAST: [&str; 2] = ["Private-MAC:", "Private-Hash:"];
    /// Common prefix of [`PUTTY_LAST`], searched for once.
    const PUTTY_LAST_PREFIX: &str = "Private-";

    /// Every well-formed PEM marker opening with `open` (`BEGIN`/`END`):
    /// `(start, label, end)`. Each label search stops at the next `-----`,
    /// which is at latest the next marker, so the whole pass is linear.
    pub(super) fn markers<'t>(
        text: &'t str,
        open: &'static str,
    ) -> impl Iterator<Item = (usize, &'t str, usize)> + 't {
        text.match_indices(open).filter_map(move |(at, _)| {
            let label_start = at + open.len();
            let rest = text.get(label_start..)?;
            let label_len = rest.find(DASHES)?;
            let label = rest.get(..label_len)?;
            let well_formed = !label.is_empty()
                && label.len() <= MAX_LABEL
                && label
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ');
            well_formed.then_some((at, label, label_start + label_len + DASHES.len()))
        })
    }

    /// Whether a PEM label names private key material: `PRIVATE KEY` with
    /// any qualifier (`RSA `, `EC `, `DSA `, `OPENSSH `, `ENCRYPTED `,
    /// `ANY `, ...) and PGP's `PRIVATE KEY BLOCK`. Wider than a fixed list
    /// on purpose: a new key type is still a private key.
    pub(super) fn is_private_label(label: &str) -> bool {
        label.ends_with("PRIVATE KEY") || label.ends_with("PRIVATE KEY BLOCK")
    }

    /// Finds private key blocks, from the first `-` of `BEGIN` through the
    /// last `-` of the first private-key `END` marker after it (its label
    /// need not repeat the `BEGIN` label exactly; `END CERTIFICATE` does
    /// not close it). A `BEGIN` with no such `END` counts to the end of the
    /// text: a truncated key is still a leaked key, and failing closed
    /// hides the rest of it. PuTTY key files count from
    /// `PuTTY-User-Key-File-` through the end of their `Private-MAC:` line,
    /// or likewise to the end of the text without one.
    pub(super) fn scan(text: &str, out: &mut Vec<Finding>) {
        let ends: Vec<(usize, usize)> = markers(text, END)
            .filter(|(_, label, _)| is_private_label(label))
            .map(|(at, _, end)| (at, end))
            .collect();
        let mut covered = 0;
        for (at, label, body) in markers(text, BEGIN) {
            if at < covered || !is_private_label(label) {
                continue;
            }
            let next = ends.partition_point(|&(end_at, _)| end_at < body);
            let end = ends.get(next).map_or(text.len(), |&(_, end)| end);
            out.push(finding(at, end));
            covered = end;
        }
        let mut covered = 0;
        for (at, _) in text.match_indices(PUTTY) {
            if at < covered {
                continue;
            }
            let end = putty_end(text, at).unwrap_or(text.len());
            out.push(finding(at, end));
            covered = end;
        }
    }

    fn finding(start: usize, end: usize) -> Finding {
        Finding {
            detector: Detector::PrivateKey,
            start,
            end,
        }
    }

    /// End of the line holding the PuTTY key's last field, if present.
    fn putty_end(text: &str, at: usize) -> Option<usize> {
        let rest = text.get(at..)?;
        let (last, _) = rest.match_indices(PUTTY_LAST_PREFIX).find(|&(i, _)| {
            rest.get(i..)
                .is_some_and(|r| PUTTY_LAST.iter().any(|m| r.starts_with(m)))
        })?;
        let line = rest.get(last..)?;
        let line_len = line.find(['\r', '\n']).unwrap_or(line.len());
        Some(at + last + line_len)
    }
}

/// Prefixed credentials and high-entropy tokens.
mod api_key {
    use std::collections::HashMap;
    use std::ops::Range;

    use super::private_key::{BEGIN, END, is_private_label, markers};
    use super::{Detector, Finding, char_at, char_before};

    /// Characters of a prefixed key's body.
    #[derive(Clone, Copy)]
    enum Body {
        /// `[A-Za-z0-9]`
        Alnum,
        /// `[A-Z0-9]`
        UpperAlnum,
        /// `[A-Za-z0-9_]`
        AlnumUnderscore,
        /// `[A-Za-z0-9-]`
        AlnumDash,
        /// `[A-Za-z0-9_-]` (base64url)
        Url,
    }

    impl Body {
        fn accepts(self, b: u8) -> bool {
            match self {
                Body::Alnum => b.is_ascii_alphanumeric(),
                Body::UpperAlnum => b.is_ascii_uppercase() || b.is_ascii_digit(),
                Body::AlnumUnderscore => b.is_ascii_alphanumeric() || b == b'_',
                Body::AlnumDash => b.is_ascii_alphanumeric() || b == b'-',
                Body::Url => b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
            }
        }
    }

    /// A credential format recognised by its prefix.
    struct Prefixed {
        prefix: &'static str,
        body: Body,
        /// Fewest body characters after the prefix.
        min: usize,
        /// Most body characters after the prefix; a longer run is some
        /// other token that merely starts the same way.
        max: usize,
        /// The body must hold a digit and a letter (see `sk-`).
        mixed: bool,
    }

    /// No upper bound on a body: the format has none.
    const ANY_LENGTH: usize = usize::MAX;

    /// Prefixed formats and their body lengths, from the vendors' formats.
    /// `sk-` (OpenAI, also `sk-proj-`, `sk-ant-`) needs 20+ characters and
    /// a digit and a letter, so kebab-case words like
    /// `sk-learn-compatible-transformers` are not keys. Stripe publishable
    /// keys (`pk_`) are public and not listed.
    const PREFIXED: [Prefixed; 21] = [
        p("sk-", Body::Url, 20, ANY_LENGTH, true),
        p("sk_live_", Body::Alnum, 16, ANY_LENGTH, false),
        p("sk_test_", Body::Alnum, 16, ANY_LENGTH, false),
        p("rk_live_", Body::Alnum, 16, ANY_LENGTH, false),
        p("rk_test_", Body::Alnum, 16, ANY_LENGTH, false),
        // GitHub: 36 today; GitHub may grow them to 255 characters in all.
        p("ghp_", Body::Alnum, 36, 251, false),
        p("gho_", Body::Alnum, 36, 251, false),
        p("ghu_", Body::Alnum, 36, 251, false),
        p("ghs_", Body::Alnum, 36, 251, false),
        p("ghr_", Body::Alnum, 36, 251, false),
        p("github_pat_", Body::AlnumUnderscore, 22, ANY_LENGTH, false),
        p("xoxa-", Body::AlnumDash, 10, ANY_LENGTH, false),
        p("xoxb-", Body::AlnumDash, 10, ANY_LENGTH, false),
        p("xoxp-", Body::AlnumDash, 10, ANY_LENGTH, false),
        p("xoxo-", Body::AlnumDash, 10, ANY_LENGTH, false),
        p("xoxr-", Body::AlnumDash, 10, ANY_LENGTH, false),
        p("xoxs-", Body::AlnumDash, 10, ANY_LENGTH, false),
        p("AKIA", Body::UpperAlnum, 16, 16, false),
        p("ASIA", Body::UpperAlnum, 16, 16, false),
        p("AIza", Body::Url, 35, 35, false),
        p("glpat-", Body::Url, 20, ANY_LENGTH, false),
    ];

    const fn p(prefix: &'static str, body: Body, min: usize, max: usize, mixed: bool) -> Prefixed {
        Prefixed {
            prefix,
            body,
            min,
            max,
            mixed,
        }
    }

    /// Shortest high-entropy run considered. Below this a random token and
    /// an identifier cannot be told apart: plug-in entropy over `n`
    /// characters is at most `log2(n)` (5 bits at 32), and shorter generic
    /// secrets are rare (a 128-bit key is 32 hex or 22+ base64 characters).
    const ENTROPY_MIN_LEN: usize = 32;
    /// Longest high-entropy run considered. Longer runs are encoded
    /// payloads (images sent to a vision model, archives, certificates),
    /// not credentials; flagging them would deny ordinary uploads.
    const ENTROPY_MAX_LEN: usize = 1024;
    /// Minimum Shannon entropy, bits per character. Measured on random
    /// 32-character tokens: base64 never fell below 4.05 (median 4.56),
    /// alphanumeric is above 4.18 in 99% of cases. Hex cannot exceed 4.0
    /// (16 symbols), so hex digests never pass on entropy alone. Paths and
    /// snake_case identifiers measured 4.0–4.5 (English letters alone carry
    /// ~4.1 bits), which is why [`TOKEN_SEGMENT_MIN`] exists.
    const ENTROPY_MIN_BITS: f64 = 4.0;
    /// A high-entropy run must contain an unbroken alphanumeric segment of
    /// at least this many characters that is not a word (it has a digit or
    /// mixed case) and not hex. Paths, snake_case, kebab-case, target
    /// triples and dates break into short segments and are skipped; random
    /// base64 of 32 characters keeps such a segment ~98% of the time.
    const TOKEN_SEGMENT_MIN: usize = 12;
    /// Runs starting with these are public by design: hash algorithm
    /// prefixes of Subresource Integrity / npm / Nix `integrity` values
    /// (`sha512-<base64>`, digests), and Stripe publishable keys (`pk_`,
    /// embedded in every checkout page).
    const PUBLIC_PREFIXES: [&str; 6] = [
        "sha1-", "sha256-", "sha384-", "sha512-", "pk_live_", "pk_test_",
    ];
    /// Base64 of the length-prefixed key type that starts every OpenSSH
    /// public key blob (`ssh-rsa`/`ssh-dss`, `ssh-ed25519`, `ssh-ed448`,
    /// `ecdsa-sha2-*`, `sk-ssh-ed25519@…`, `sk-ecdsa-sha2-*@…`): public.
    const SSH_PUBLIC_PREFIXES: [&str; 6] = [
        "AAAAB3NzaC1",
        "AAAAC3NzaC1",
        "AAAACXNzaC1",
        "AAAAE2VjZHNh",
        "AAAAGnNrLXNzaC1",
        "AAAAInNrLWVjZHNh",
    ];
    /// Text right before base64 image/file data in a data URI.
    const DATA_URI_MARKER: &str = ";base64,";
    /// Shortest JWT header or payload segment: the smallest real one,
    /// `{"alg":"none"}`, encodes to 20; this keeps `eyJ.eyJ.` noise out.
    const JWT_MIN_SEGMENT: usize = 10;

    /// Finds prefixed credentials, JWTs and high-entropy tokens.
    pub(super) fn scan(text: &str, out: &mut Vec<Finding>) {
        for format in &PREFIXED {
            prefixed(text, format, out);
        }
        jwts(text, out);
        high_entropy(text, out);
    }

    /// Whether a key may start after `c`: not inside a longer word or
    /// dashed name (`task-…` does not hold an `sk-` key).
    fn starts_clean(c: Option<char>) -> bool {
        !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    fn prefixed(text: &str, format: &Prefixed, out: &mut Vec<Finding>) {
        let bytes = text.as_bytes();
        for (at, _) in text.match_indices(format.prefix) {
            // Checked first, so a run of repeated prefixes costs O(1) each.
            if !starts_clean(char_before(text, at)) {
                continue;
            }
            let body_start = at + format.prefix.len();
            let mut end = body_start;
            while bytes.get(end).is_some_and(|&b| format.body.accepts(b)) {
                end += 1;
            }
            let body = bytes.get(body_start..end).unwrap_or_default();
            let mixed_ok = !format.mixed
                || (body.iter().any(u8::is_ascii_digit)
                    && body.iter().any(u8::is_ascii_alphabetic));
            let glued = char_at(text, end).is_some_and(|c| c.is_ascii_alphanumeric());
            if (format.min..=format.max).contains(&body.len()) && mixed_ok && !glued {
                out.push(Finding {
                    detector: Detector::ApiKey,
                    start: at,
                    end,
                });
            }
        }
    }

    fn is_url_b64(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
    }

    /// JSON Web Tokens: `eyJ…` `.` `eyJ…` `.` signature (possibly empty).
    /// Caught as one bearer credential rather than three entropy runs.
    fn jwts(text: &str, out: &mut Vec<Finding>) {
        let bytes = text.as_bytes();
        let segment = |from: usize| {
            let mut end = from;
            while bytes.get(end).copied().is_some_and(is_url_b64) {
                end += 1;
            }
            end
        };
        for (at, _) in text.match_indices("eyJ") {
            if !starts_clean(char_before(text, at)) {
                continue;
            }
            let header_end = segment(at);
            let payload = header_end + 1;
            if bytes.get(header_end) != Some(&b'.')
                || header_end - at < JWT_MIN_SEGMENT
                || bytes.get(payload..payload + 3) != Some(b"eyJ".as_slice())
            {
                continue;
            }
            let payload_end = segment(payload);
            if payload_end - payload < JWT_MIN_SEGMENT || bytes.get(payload_end) != Some(&b'.') {
                continue;
            }
            out.push(Finding {
                detector: Detector::ApiKey,
                start: at,
                end: segment(payload_end + 1),
            });
        }
    }

    /// Characters of a high-entropy run (base64 and base64url, without
    /// `=`, which only counts as trailing padding so `secret=<token>`
    /// yields the token, not `secret=<token>`).
    fn is_run_byte(b: u8) -> bool {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-')
    }

    /// Long high-entropy tokens (see the `ENTROPY_*` and
    /// [`TOKEN_SEGMENT_MIN`] constants). Skipped as public or not secret:
    /// hex strings of any length (digests: we record SHA-256s of every
    /// payload ourselves, so flagging them would flag our own evidence) and
    /// UUIDs, both because their segments are all hex; `sha512-…` integrity
    /// values and `pk_` keys; OpenSSH public key blobs; data URI payloads;
    /// and runs inside terminated non-private PEM blocks (certificates,
    /// public keys).
    fn high_entropy(text: &str, out: &mut Vec<Finding>) {
        let bytes = text.as_bytes();
        let public = public_pem_blocks(text);
        let mut public_iter = public.iter().peekable();
        let mut i = 0;
        while i < bytes.len() {
            if !bytes.get(i).copied().is_some_and(is_run_byte) {
                i += 1;
                continue;
            }
            let start = i;
            while bytes.get(i).copied().is_some_and(is_run_byte) {
                i += 1;
            }
            while bytes.get(i) == Some(&b'=') {
                i += 1;
            }
            let end = i;
            while public_iter.next_if(|block| block.end <= start).is_some() {}
            let in_public = public_iter.peek().is_some_and(|block| block.start <= start);
            let run = text.get(start..end).unwrap_or_default();
            let after_data_uri = text
                .get(..start)
                .is_some_and(|before| before.ends_with(DATA_URI_MARKER));
            if !in_public && !after_data_uri && is_secret_like(run) {
                out.push(Finding {
                    detector: Detector::ApiKey,
                    start,
                    end,
                });
            }
        }
    }

    /// The entropy test proper, on one run.
    pub(super) fn is_secret_like(run: &str) -> bool {
        (ENTROPY_MIN_LEN..=ENTROPY_MAX_LEN).contains(&run.len())
            && run.bytes().any(|b| b.is_ascii_digit())
            && run.bytes().any(|b| b.is_ascii_alphabetic())
            && !PUBLIC_PREFIXES.iter().any(|p| run.starts_with(p))
            && !SSH_PUBLIC_PREFIXES.iter().any(|p| run.starts_with(p))
            && run
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(is_token_segment)
            && shannon_entropy(run.as_bytes()) >= ENTROPY_MIN_BITS
    }

    /// An alphanumeric segment that looks random rather than like a word.
    fn is_token_segment(segment: &str) -> bool {
        let has = |f: fn(&u8) -> bool| segment.bytes().any(|b| f(&b));
        segment.len() >= TOKEN_SEGMENT_MIN
            && !segment.bytes().all(|b| b.is_ascii_hexdigit())
            && (has(u8::is_ascii_digit)
                || (has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase)))
    }

    /// Shannon entropy of the byte distribution, in bits per byte.
    pub(super) fn shannon_entropy(data: &[u8]) -> f64 {
        if data.is_empty() {
            return 0.0;
        }
        let mut counts = [0usize; 256];
        for &b in data {
            counts[usize::from(b)] += 1;
        }
        let n = data.len() as f64;
        counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f64 / n;
                -p * p.log2()
            })
            .sum()
    }

    /// Spans of terminated PEM blocks whose label is not a private key
    /// (`CERTIFICATE`, `PUBLIC KEY`, ...), sorted by start. A block ends at
    /// the first `END` with the same label.
    fn public_pem_blocks(text: &str) -> Vec<Range<usize>> {
        let mut ends: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
        for (at, label, end) in markers(text, END) {
            if !is_private_label(label) {
                ends.entry(label).or_default().push((at, end));
            }
        }
        let mut blocks = Vec::new();
        let mut covered = 0;
        for (at, label, body) in markers(text, BEGIN) {
            if at < covered || is_private_label(label) {
                continue;
            }
            let Some(candidates) = ends.get(label) else {
                continue;
            };
            let next = candidates.partition_point(|&(end_at, _)| end_at < body);
            if let Some(&(_, end)) = candidates.get(next) {
                blocks.push(at..end);
                covered = end;
            }
        }
        blocks
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ALL: &[Detector] = &Detector::ALL;

    /// The matched substrings for `detector` in `text`.
    fn found(detector: Detector, text: &str) -> Vec<String> {
        scan(&[detector], text)
            .iter()
            .map(|f| {
                assert_eq!(f.detector, detector);
                text[f.range()].to_owned()
            })
            .collect()
    }

    /// Runs table rows `(input, expected matches)` through one detector.
    fn table(detector: Detector, rows: &[(&str, &[&str])]) {
        let mut failures = Vec::new();
        for (input, expected) in rows {
            let got = found(detector, input);
            if got != *expected {
                failures.push(format!("{input:?}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{detector}:\n{}", failures.join("\n"));
    }

    #[test]
    fn detector_names_round_trip() {
        for d in Detector::ALL {
            assert_eq!(Detector::parse(d.as_str()), Some(d));
            assert_eq!(d.as_str().parse::<Detector>(), Ok(d));
            assert_eq!(d.to_string(), d.as_str());
        }
        for bad in [
            "",
            "Email",
            "EMAIL",
            "credit_card",
            "creditcard",
            "api-keys",
            " email",
        ] {
            assert_eq!(Detector::parse(bad), None, "{bad:?}");
        }
        let err = "ssn".parse::<Detector>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown detector \"ssn\" (use one of: email, credit-card, private-key, api-key)"
        );
    }

    #[test]
    fn detector_serde_names_match_profile_names() {
        // serde's rename_all = "kebab-case" must produce as_str().
        for d in Detector::ALL {
            let variant = format!("{d:?}");
            let mut kebab = String::new();
            for (i, c) in variant.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    kebab.push('-');
                }
                kebab.push(c.to_ascii_lowercase());
            }
            assert_eq!(kebab, d.as_str());
        }
    }

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

    #[test]
    fn luhn_table() {
        let rows: &[(&str, bool)] = &[
            ("4111111111111111", true),
            ("5555555555554444", true),
            ("378282246310005", true),
            ("6011111111111117", true),
            ("0000000000000000", true),
            ("4111111111111112", false),
            ("5555555555554445", false),
            ("378282246310006", false),
            ("0", true),
            ("18", true),
            ("17", false),
        ];
        for (digits, ok) in rows {
            let values: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
            assert_eq!(card::luhn(&values), *ok, "{digits}");
        }
    }

    #[test]
    fn credit_card_table() {
        table(
            Detector::CreditCard,
            &[
                ("4111 1111 1111 1111", &["4111 1111 1111 1111"]),
                ("4111111111111111", &["4111111111111111"]),
                ("5555-5555-5555-4444", &["5555-5555-5555-4444"]),
                ("378282246310005", &["378282246310005"]),
                ("3782 822463 10005", &["3782 822463 10005"]),
                ("2223000048400011", &["2223000048400011"]),
                ("4222222222222", &["4222222222222"]),
                ("6011 1111 1111 1117", &["6011 1111 1111 1117"]),
                (
                    "card: 4111-1111 1111-1111, exp 12/29",
                    &["4111-1111 1111-1111"],
                ),
                ("\"pan\":\"4111111111111111\"", &["4111111111111111"]),
                ("total 4111111111111111.", &["4111111111111111"]),
                ("qty 12 4111111111111111", &["4111111111111111"]),
                // a number, then a grouped card (found by fuzzing)
                ("qty 2 4111 1111 1111 1111", &["4111 1111 1111 1111"]),
                ("012 4111 1111 1111 1111", &["4111 1111 1111 1111"]),
                ("no 7 3782 822463 10005", &["3782 822463 10005"]),
                ("ref x0123 4111 1111 1111 1111", &["4111 1111 1111 1111"]),
                ("4111111111111111 1234", &["4111111111111111"]),
                ("v2 4111111111111111", &["4111111111111111"]),
                ("x1 4111111111111111-1", &["4111111111111111"]),
                // UATP: the only range starting with 1, exactly 15 digits.
                ("122000000000003", &["122000000000003"]),
                // one digit changed: Luhn fails
                ("4111 1111 1111 1112", &[]),
                ("5555-5555-5555-4445", &[]),
                ("378282246310006", &[]),
                // lengths
                ("411111111111", &[]),
                ("41111111111111111111", &[]),
                ("4111 1111 1111 1111 1111", &[]),
                // all the same digit, even though Luhn-valid
                ("0000 0000 0000 0000", &[]),
                ("0000000000000000", &[]),
                ("4444444444444444", &[]),
                // not cards
                ("550e8400-e29b-41d4-a716-446655440000", &[]),
                ("12345678-1234-1234-1234-123456789012", &[]),
                ("+1 555-123-4567", &[]),
                ("+441234567890123", &[]),
                ("call 555 123 4567 now", &[]),
                ("1732543200000", &[]),
                ("1732543200007", &[]),
                ("ts=1732543200000123", &[]),
                ("id 94111111111111111111", &[]),
                ("x4111111111111111", &[]),
                ("4111111111111111x", &[]),
                ("_4111111111111111", &[]),
                ("3.4111111111111111", &[]),
                ("4111111111111111.5", &[]),
                ("1,4111111111111111,visa", &["4111111111111111"]),
                ("0.30000000000000004 2.6011111111111117", &[]),
                ("4111  1111  1111  1111", &[]),
                ("4111--1111--1111--1111", &[]),
                (
                    "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    &[],
                ),
                ("4111.1111.1111.1111", &[]),
            ],
        );
    }

    #[test]
    fn luhn_valid_timestamp_is_rejected_by_issuer_rule() {
        let values: Vec<u8> = "1732543200007".bytes().map(|b| b - b'0').collect();
        assert!(
            card::luhn(&values),
            "row must be Luhn-valid to test the issuer rule"
        );
    }

    const RSA_BLOCK: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7Yx9\nabc+/=\n-----END RSA PRIVATE KEY-----";

    #[test]
    fn private_key_table() {
        let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
        let pkcs8 = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----";
        let ec = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----";
        let dsa = "-----BEGIN DSA PRIVATE KEY-----\nMIIBuw\n-----END DSA PRIVATE KEY-----";
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHD\n-----END ENCRYPTED PRIVATE KEY-----";
        let pgp =
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----";
        let putty = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k\nPublic-Lines: 2\nAAAAC3Nz\nPrivate-Lines: 1\nAAAAIG\nPrivate-MAC: 8a7d0f";
        let unterminated = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7Yx9 and the rest";
        let mismatched = "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----";
        let two = format!("{RSA_BLOCK}\nmiddle\n{ec}");
        let rows: Vec<(String, Vec<&str>)> = vec![
            (RSA_BLOCK.to_owned(), vec![RSA_BLOCK]),
            (format!("key:\n{RSA_BLOCK}\nthanks"), vec![RSA_BLOCK]),
            (openssh.to_owned(), vec![openssh]),
            (format!("{{\"private_key\":\"{pkcs8}\\n\"}}"), vec![pkcs8]),
            (ec.to_owned(), vec![ec]),
            (dsa.to_owned(), vec![dsa]),
            (enc.to_owned(), vec![enc]),
            (pgp.to_owned(), vec![pgp]),
            (format!("{putty}\nnext line"), vec![putty]),
            (unterminated.to_owned(), vec![unterminated]),
            (format!("x {mismatched} y"), vec![mismatched]),
            (two.clone(), vec![RSA_BLOCK, ec]),
            // an END of another type does not close the block
            (
                "-----BEGIN EC PRIVATE KEY-----\nA\n-----END CERTIFICATE-----\nB".to_owned(),
                vec!["-----BEGIN EC PRIVATE KEY-----\nA\n-----END CERTIFICATE-----\nB"],
            ),
            // not private keys
            (
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----".to_owned(),
                vec![],
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----".to_owned(),
                vec![],
            ),
            ("-----BEGIN RSA PRIVATE KEY".to_owned(), vec![]),
            ("-----BEGIN rsa private key-----".to_owned(), vec![]),
            ("----BEGIN RSA PRIVATE KEY----".to_owned(), vec![]),
            ("-----END RSA PRIVATE KEY-----".to_owned(), vec![]),
            ("the private key goes here".to_owned(), vec![]),
        ];
        for (input, expected) in rows {
            assert_eq!(found(Detector::PrivateKey, &input), expected, "{input:?}");
        }
    }

    #[test]
    fn putty_without_mac_runs_to_end() {
        let text = "PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nPrivate-Lines: 1\nAAAA";
        assert_eq!(found(Detector::PrivateKey, text), [text]);
    }

    // Test credentials assembled at runtime so this file itself does not
    // trip secret scanners.
    fn key(prefix: &str, body: &str) -> String {
        format!("{prefix}{body}")
    }

    #[test]
    fn api_key_prefixed_table() {
        let b36 = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8";
        let rows: Vec<(String, Vec<String>)> = vec![
            (
                key("sk-", "abc123DEF456ghi789JKL0"),
                vec![key("sk-", "abc123DEF456ghi789JKL0")],
            ),
            (
                format!(
                    "Authorization: Bearer {}",
                    key("sk-proj-", "Ab3_cD4-eF5gH6iJ7kL8mN9")
                ),
                vec![key("sk-proj-", "Ab3_cD4-eF5gH6iJ7kL8mN9")],
            ),
            (
                key("sk_live_", "4eC39HqLyjWDarjtT1zdp7dc"),
                vec![key("sk_live_", "4eC39HqLyjWDarjtT1zdp7dc")],
            ),
            (
                key("rk_live_", "4eC39HqLyjWDarjtT1zdp7dc"),
                vec![key("rk_live_", "4eC39HqLyjWDarjtT1zdp7dc")],
            ),
            (
                key("sk_test_", "4eC39HqLyjWDarjtT1zdp7dc"),
                vec![key("sk_test_", "4eC39HqLyjWDarjtT1zdp7dc")],
            ),
            (
                format!("token={}", key("ghp_", b36)),
                vec![key("ghp_", b36)],
            ),
            (key("gho_", b36), vec![key("gho_", b36)]),
            (key("ghu_", b36), vec![key("ghu_", b36)]),
            (key("ghs_", b36), vec![key("ghs_", b36)]),
            (key("ghr_", b36), vec![key("ghr_", b36)]),
            (
                key("github_pat_", "11ABCDEFG0123456789abc_def"),
                vec![key("github_pat_", "11ABCDEFG0123456789abc_def")],
            ),
            (
                key("xoxb-", "1234567890-abcdefGHIJ"),
                vec![key("xoxb-", "1234567890-abcdefGHIJ")],
            ),
            (
                key("xoxp-", "1234567890-abcdefGHIJ"),
                vec![key("xoxp-", "1234567890-abcdefGHIJ")],
            ),
            (
                format!("aws_access_key_id = {}", key("AKIA", "IOSFODNN7EXAMPLE")),
                vec![key("AKIA", "IOSFODNN7EXAMPLE")],
            ),
            (
                key("ASIA", "IOSFODNN7EXAMPLE"),
                vec![key("ASIA", "IOSFODNN7EXAMPLE")],
            ),
            (
                format!(
                    "?key={}&q=1",
                    key("AIza", "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q")
                ),
                vec![key("AIza", "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q")],
            ),
            (
                key("glpat-", "xYz123AbC456dEf789gH"),
                vec![key("glpat-", "xYz123AbC456dEf789gH")],
            ),
            // not keys
            (key("sk-", "short123"), vec![]),
            (key("sk-", "learn-compatible-transformers"), vec![]),
            (key("task-", "abc123DEF456ghi789JKL0"), vec![]),
            (key("ghp_", "tooShort123"), vec![]),
            (key("AKIA", "IOSFODNN7EXAMPL"), vec![]),
            (key("AKIA", "IOSFODNN7EXAMPLEX"), vec![]),
            (key("AKIA", "IOSFODNN7EXAMPLEx"), vec![]),
            (key("XAKIA", "IOSFODNN7EXAMPLE"), vec![]),
            (key("pk_live_", "4eC39HqLyjWDarjtT1zdp7dc"), vec![]),
            (
                key("pk_live_", "4eC39HqLyjWDarjtT1zdp7dc4eC39HqLyjWD"),
                vec![],
            ),
            (key("xoxz-", "1234567890-abcdefGHIJ"), vec![]),
            ("sk-sk-sk-sk-sk-sk-sk-sk-".to_owned(), vec![]),
        ];
        for (input, expected) in rows {
            assert_eq!(found(Detector::ApiKey, &input), expected, "{input:?}");
        }
    }

    #[test]
    fn api_key_jwt_is_one_finding() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let text = format!("Authorization: Bearer {jwt}\r\n");
        assert_eq!(found(Detector::ApiKey, &text), [jwt]);
        let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
        assert_eq!(found(Detector::ApiKey, unsigned), [unsigned]);
    }

    #[test]
    fn api_key_high_entropy_table() {
        let rows: &[(&str, &[&str])] = &[
            (
                "secret: 8Kx2pQ9vLm3nR7tY1wZ5aB6cD4eF0gHj",
                &["8Kx2pQ9vLm3nR7tY1wZ5aB6cD4eF0gHj"],
            ),
            (
                "client_secret=8Kx2pQ9vLm3nR7tY1wZ5aB6cD4eF0gHj",
                &["8Kx2pQ9vLm3nR7tY1wZ5aB6cD4eF0gHj"],
            ),
            (
                "tok q7/Jf+9kLzX2mWc4Vb8nR1tYp0sDa5gH== end",
                &["q7/Jf+9kLzX2mWc4Vb8nR1tYp0sDa5gH=="],
            ),
            (
                "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
                &["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"],
            ),
            (
                "a8f3k2l9x7q1w5e6r4t0y2u8i3o9p1z7",
                &["a8f3k2l9x7q1w5e6r4t0y2u8i3o9p1z7"],
            ),
            // hashes we record ourselves, and other hex
            ("d41d8cd98f00b204e9800998ecf8427e", &[]),
            ("da39a3ee5e6b4b0d3255bfef95601890afd80709", &[]),
            (
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                &[],
            ),
            (
                "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                &[],
            ),
            (
                "0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210",
                &[],
            ),
            // UUIDs, alone and joined
            ("550e8400-e29b-41d4-a716-446655440000", &[]),
            (
                "550e8400-e29b-41d4-a716-446655440000_6ba7b810-9dad-11d1-80b4-00c04fd430c8",
                &[],
            ),
            ("run-550e8400-e29b-41d4-a716-446655440000", &[]),
            // words, paths, identifiers
            ("home/runner/work/airlock/airlock/target/debug/deps", &[]),
            ("x86_64-unknown-linux-gnu/release/build/ring-3f2a9c", &[]),
            ("2024-11-25T14-30-00Z_backup_of_production_db_v2", &[]),
            ("api/v1/users/12345/orders/67890/items/abcdef", &[]),
            ("The_quick_brown_fox_jumps_over_the_lazy_dog_42", &[]),
            ("wasmtime_wasi_http_outgoing_handler_v0_2_0", &[]),
            ("src/authentication/middleware/handlers2/index", &[]),
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", &[]),
            ("abababababababababababababababab12", &[]),
            ("NoDigitsAtAllInThisLongIdentifierName", &[]),
            ("8Kx2pQ9vLm3nR7tY1wZ5aB6cD4eF0gH", &[]),
            // public material
            (
                "\"integrity\": \"sha512-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC\"",
                &[],
            ),
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host",
                &[],
            ),
            (
                "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7mUl5Xq3vDxq2Lm9pQ4rT8wZ1kY6bN3cF7gH0jJ5 me@host",
                &[],
            ),
            (
                "c0ffee11-2233-4455-6677-8899aabbccdd-e1f2a3b4-c5d6-e7f8-9a0b-1c2d3e4f5a6b",
                &[],
            ),
            (
                "<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\">",
                &[],
            ),
            (
                "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n-----END CERTIFICATE-----",
                &[],
            ),
        ];
        table(Detector::ApiKey, rows);
    }

    /// The exclusion rows must be rejected by their exclusion, not merely
    /// by falling under the entropy threshold.
    #[test]
    fn api_key_exclusions_are_not_just_low_entropy() {
        let rows = [
            "0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210",
            "c0ffee11-2233-4455-6677-8899aabbccdd-e1f2a3b4-c5d6-e7f8-9a0b-1c2d3e4f5a6b",
            "home/runner/work/airlock/airlock/target/debug/deps",
            "x86_64-unknown-linux-gnu/release/build/ring-3f2a9c",
            "2024-11-25T14-30-00Z_backup_of_production_db_v2",
            "api/v1/users/12345/orders/67890/items/abcdef",
            "The_quick_brown_fox_jumps_over_the_lazy_dog_42",
            "wasmtime_wasi_http_outgoing_handler_v0_2_0",
            "sha512-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC",
            "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7mUl5Xq3vDxq2Lm9pQ4rT8wZ1kY6bN3cF7gH0jJ5",
            "pk_live_4eC39HqLyjWDarjtT1zdp7dc4eC39HqLyjWD",
        ];
        for run in rows {
            assert!(run.len() >= 32, "{run}");
            assert!(api_key::shannon_entropy(run.as_bytes()) >= 4.0, "{run}");
            assert!(!api_key::is_secret_like(run), "{run}");
            assert!(found(Detector::ApiKey, run).is_empty(), "{run}");
        }
    }

    #[test]
    fn api_key_entropy_length_bounds() {
        let unit = "8Kx2pQ9vLm3nR7tY1wZ5aB6cD4eF0gHj";
        let max = unit.repeat(32);
        assert_eq!(max.len(), 1024);
        assert!(api_key::is_secret_like(&max));
        let over = format!("{max}Z");
        assert!(!api_key::is_secret_like(&over));
        assert!(found(Detector::ApiKey, &over).is_empty());
        assert!(!api_key::is_secret_like(&unit[..31]));
    }

    #[test]
    fn api_key_certificate_unterminated_is_scanned() {
        // Only a terminated public block is exempt.
        let text = "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n";
        assert_eq!(found(Detector::ApiKey, text).len(), 1);
    }

    #[test]
    fn entropy_values() {
        assert!(api_key::shannon_entropy(b"").abs() < 1e-12);
        assert!(api_key::shannon_entropy(b"aaaa").abs() < 1e-12);
        assert!((api_key::shannon_entropy(b"ab") - 1.0).abs() < 1e-12);
        assert!((api_key::shannon_entropy(b"0123456789abcdef") - 4.0).abs() < 1e-12);
    }

    #[test]
    fn overlaps_merge_to_longest_and_cover_union() {
        // The private key block wins over the api-key runs inside it.
        let text = format!("before {RSA_BLOCK} after");
        let findings = scan(ALL, &text);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].detector, Detector::PrivateKey);
        assert_eq!(&text[findings[0].range()], RSA_BLOCK);

        // A body line inside the block is an api-key candidate on its own.
        let body_line = "MIIEowIBAAKCAQEA7Yx9q2Lm3nR7tY1wZ5aB6cD4eF0gHjK8";
        let block =
            format!("-----BEGIN RSA PRIVATE KEY-----\n{body_line}\n-----END RSA PRIVATE KEY-----");
        assert_eq!(found(Detector::ApiKey, &block), [body_line]);
        assert_eq!(
            summary(&scan(ALL, &block)),
            BTreeMap::from([("private-key", 1)])
        );

        // Partial overlap: email local part glued to a token with '/'.
        // The union is redacted, so no part of either is left in clear.
        let text = "x q7/Jf9kLzX2mWc4Vb8nR1tYp0sDa5gHq@example.com y";
        let all = scan(ALL, text);
        assert_eq!(all.len(), 1);
        assert_eq!(
            &text[all[0].range()],
            "q7/Jf9kLzX2mWc4Vb8nR1tYp0sDa5gHq@example.com"
        );
        // the email candidate (local part onward) is the longer one
        assert_eq!(all[0].detector, Detector::Email);
        assert_eq!(redact(text, &all), "x [redacted:email] y");

        // Prefixed key and entropy run on the same span: one finding.
        let text = key("ghp_", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
        assert_eq!(scan(ALL, &text).len(), 1);
    }

    #[test]
    fn merge_rules() {
        let f = |detector, start, end| Finding {
            detector,
            start,
            end,
        };
        // equal length: rank decides
        let got = merge(vec![f(Detector::Email, 0, 10), f(Detector::ApiKey, 0, 10)]);
        assert_eq!(got, [f(Detector::ApiKey, 0, 10)]);
        // chain of overlaps becomes one union named after the longest
        let got = merge(vec![
            f(Detector::Email, 0, 5),
            f(Detector::CreditCard, 4, 20),
            f(Detector::Email, 19, 22),
            f(Detector::Email, 22, 25),
        ]);
        assert_eq!(
            got,
            [f(Detector::CreditCard, 0, 22), f(Detector::Email, 22, 25)]
        );
        // empty candidates vanish
        assert_eq!(merge(vec![f(Detector::Email, 3, 3)]), []);
    }

    #[test]
    fn scan_respects_selected_detectors() {
        let text = format!(
            "a@example.com 4111111111111111 {}",
            key("AKIA", "IOSFODNN7EXAMPLE")
        );
        assert_eq!(scan(&[], &text), []);
        let only_card = scan(&[Detector::CreditCard, Detector::CreditCard], &text);
        assert_eq!(summary(&only_card), BTreeMap::from([("credit-card", 1)]));
        let all = scan(ALL, &text);
        assert_eq!(
            summary(&all),
            BTreeMap::from([("api-key", 1), ("credit-card", 1), ("email", 1)])
        );
        assert!(all.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn redact_table() {
        let aws = key("AKIA", "IOSFODNN7EXAMPLE");
        let rows: Vec<(String, String)> = vec![
            ("no secrets here".into(), "no secrets here".into()),
            ("".into(), "".into()),
            (
                "mail a@example.com now".into(),
                "mail [redacted:email] now".into(),
            ),
            (
                "4111 1111 1111 1111".into(),
                "[redacted:credit-card]".into(),
            ),
            (
                format!("{aws},b@example.org;5555-5555-5555-4444"),
                "[redacted:api-key],[redacted:email];[redacted:credit-card]".into(),
            ),
            (
                format!("k:\n{RSA_BLOCK}\n"),
                "k:\n[redacted:private-key]\n".into(),
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIE".into(),
                "[redacted:private-key]".into(),
            ),
        ];
        for (input, expected) in rows {
            assert_eq!(redact(&input, &scan(ALL, &input)), expected, "{input:?}");
        }
    }

    #[test]
    fn utf8_around_findings() {
        let text = "Grüße → ünïcødé@exämple.de, Karte 4111 1111 1111 1111€ 🔑 sk-ÄÖ 中文a@b.cn";
        let findings = scan(ALL, text);
        for f in &findings {
            assert!(
                text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
                "{f:?}"
            );
        }
        let matched: Vec<&str> = findings.iter().map(|f| &text[f.range()]).collect();
        assert_eq!(
            matched,
            ["ünïcødé@exämple.de", "4111 1111 1111 1111", "中文a@b.cn"]
        );
        assert_eq!(
            redact(text, &findings),
            "Grüße → [redacted:email], Karte [redacted:credit-card]€ 🔑 sk-ÄÖ [redacted:email]"
        );
    }

    #[test]
    fn redact_tolerates_foreign_findings() {
        let text = "ab€cd";
        let f = |start, end| Finding {
            detector: Detector::Email,
            start,
            end,
        };
        // mid-char offsets widen to the whole char
        assert_eq!(redact(text, &[f(3, 4)]), "ab[redacted:email]cd");
        // out of range is clamped; unsorted is sorted; overlaps extend
        assert_eq!(
            redact(text, &[f(6, 100), f(0, 2), f(1, 3)]),
            "[redacted:email]c[redacted:email]"
        );
        assert_eq!(
            redact_bytes(b"abcdef", &[f(3, 5), f(0, 2), f(1, 4)]),
            b"[redacted:email]f"
        );
        assert_eq!(redact(text, &[f(100, 200)]), text);
        assert_eq!(redact(text, &[f(4, 2)]), text);
    }

    #[test]
    fn bytes_scan_and_redact() {
        let mut body = b"{\"card\":\"4111111111111111\",\"bin\":\"".to_vec();
        body.extend_from_slice(&[0xff, 0xfe, 0x80]);
        body.extend_from_slice(b"\",\"to\":\"a@example.com\"}");
        let findings = scan_bytes(ALL, &body);
        let matched: Vec<&[u8]> = findings.iter().map(|f| &body[f.range()]).collect();
        assert_eq!(
            matched,
            [b"4111111111111111".as_slice(), b"a@example.com".as_slice()]
        );
        let mut expected = b"{\"card\":\"[redacted:credit-card]\",\"bin\":\"".to_vec();
        expected.extend_from_slice(&[0xff, 0xfe, 0x80]);
        expected.extend_from_slice(b"\",\"to\":\"[redacted:email]\"}");
        assert_eq!(redact_bytes(&body, &findings), expected);
        // an invalid byte separates values
        let glued = [b"4111111111111111".as_slice(), &[0xff], b"a@example.com"].concat();
        assert_eq!(scan_bytes(ALL, &glued).len(), 2);
        // a private key with binary junk inside is still one block
        let junk = [
            b"-----BEGIN PRIVATE KEY-----\n".as_slice(),
            &[0xc3, 0x28],
            b"\n-----END PRIVATE KEY-----",
        ]
        .concat();
        assert_eq!(
            scan_bytes(ALL, &junk),
            [Finding {
                detector: Detector::PrivateKey,
                start: 0,
                end: junk.len()
            }]
        );
        assert_eq!(
            redact_bytes(
                b"abc",
                &[Finding {
                    detector: Detector::Email,
                    start: 1,
                    end: 99
                }]
            ),
            b"a[redacted:email]"
        );
    }

    #[test]
    fn finding_debug_holds_no_value() {
        let text = key("AKIA", "IOSFODNN7EXAMPLE");
        let findings = scan(ALL, &text);
        let debug = format!("{findings:?}");
        assert!(!debug.contains("IOSFODNN"), "{debug}");
        assert_eq!(debug, "[Finding { detector: ApiKey, start: 0, end: 20 }]");
    }

    #[test]
    fn adversarial_inputs_are_linear_and_do_not_panic() {
        let big = 200_000;
        let inputs = [
            "@".repeat(big),
            "a@".repeat(big / 2),
            "a.".repeat(big / 2) + "@",
            "@a.".repeat(big / 3),
            "1 ".repeat(big / 2),
            "4-".repeat(big / 2),
            "sk-".repeat(big / 3),
            "eyJ.".repeat(big / 4),
            "-----BEGIN ".repeat(big / 11),
            "-----BEGIN PRIVATE KEY-----".repeat(big / 27),
            "-----END PRIVATE KEY-----".repeat(big / 25),
            "PuTTY-User-Key-File-".repeat(big / 20),
            "A".repeat(big),
            "é".repeat(big),
        ];
        let started = std::time::Instant::now();
        for input in &inputs {
            let findings = scan(ALL, input);
            let _ = redact(input, &findings);
            for f in findings {
                assert!(input.is_char_boundary(f.start) && input.is_char_boundary(f.end));
            }
        }
        // Generous bound: quadratic behaviour would take minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
