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
//! Each detector is a submodule (`email`, `card`, `private_key`,
//! `api_key`). False-positive choices are documented on its constants and
//! helpers; they lean toward fewer false alarms only where the thing
//! skipped is public by design (hashes we record ourselves, certificates,
//! SSH public keys, image data) or cannot be a real value of the kind.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod api_key;
mod card;
mod email;
mod private_key;

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
///
/// A value can stand out only once its neighbour is gone: in
/// `xoxb-…-5678 4111 1111 1111 1111` the key's last digit group and the
/// card form one longer digit run, which is no card, until the key is
/// redacted. So after the first pass `scan` looks again with every finding
/// masked (each of its bytes replaced by [`MASK`], which, like a
/// redaction's brackets, glues to nothing), up to [`RESCANS`] times, and
/// keeps what it finds: what [`redact`] leaves behind is then what a scan
/// of the redacted text would also leave alone.
pub fn scan(detectors: &[Detector], text: &str) -> Vec<Finding> {
    let mut findings = merge(candidates(detectors, text));
    for _ in 0..RESCANS {
        if findings.is_empty() {
            break;
        }
        let more = candidates(detectors, &masked(text, &findings));
        if more.is_empty() {
            break;
        }
        findings.extend(more);
        findings = merge(findings);
    }
    findings
}

/// How many times [`scan`] looks again with its findings masked. Each pass
/// is linear; two cover a value freed by a neighbour that was itself freed
/// by one (the fuzzer's `detectors` target checks that no more are left).
const RESCANS: usize = 2;

/// What stands in for each byte of a finding when [`scan`] looks again: an
/// ASCII control character, not part of any value, not a separator.
const MASK: u8 = 0x1A;

/// Every detector's candidates in `text`, unmerged.
fn candidates(detectors: &[Detector], text: &str) -> Vec<Finding> {
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
    candidates
}

/// `text` with the bytes of each finding replaced by [`MASK`]. Findings
/// fall on `char` boundaries, so the result is UTF-8 with the same
/// offsets.
fn masked(text: &str, findings: &[Finding]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for finding in findings {
        if let Some(span) = bytes.get_mut(finding.range()) {
            span.fill(MASK);
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Byte that stands in for each invalid UTF-8 byte in [`scan_bytes`]: an
/// ASCII control character, so offsets are preserved one-to-one and no
/// detector treats it as part of a value.
const INVALID_BYTE_STANDIN: char = MASK as char;

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ALL: &[Detector] = &Detector::ALL;

    /// The matched substrings for `detector` in `text`.
    pub(super) fn found(detector: Detector, text: &str) -> Vec<String> {
        scan(&[detector], text)
            .iter()
            .map(|f| {
                assert_eq!(f.detector, detector);
                text[f.range()].to_owned()
            })
            .collect()
    }

    /// Runs table rows `(input, expected matches)` through one detector.
    pub(super) fn table(detector: Detector, rows: &[(&str, &[&str])]) {
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

    pub(super) const RSA_BLOCK: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7Yx9\nabc+/=\n-----END RSA PRIVATE KEY-----";

    // Test credentials assembled at runtime so this file itself does not
    // trip secret scanners.
    pub(super) fn key(prefix: &str, body: &str) -> String {
        format!("{prefix}{body}")
    }

    #[test]
    fn a_card_next_to_a_secret_is_found_once_the_secret_is_masked() {
        // The key's last digit group and the card are one 20-digit run,
        // which alone is no card; with the key masked the card stands
        // alone, as it does once the key is redacted.
        let slack = key("xoxb-", "abcdefGHIJ-5678");
        let text = format!("{slack} 4111 1111 1111 1111 end");
        let findings = scan(ALL, &text);
        let named: Vec<_> = findings
            .iter()
            .map(|f| (f.detector, &text[f.range()]))
            .collect();
        assert_eq!(
            named,
            [
                (Detector::ApiKey, slack.as_str()),
                (Detector::CreditCard, "4111 1111 1111 1111"),
            ]
        );
        assert_eq!(
            redact(&text, &findings),
            "[redacted:api-key] [redacted:credit-card] end"
        );
        // Without a detected neighbour a longer grouped run stays no card.
        assert!(scan(ALL, "1234 4111 1111 1111 1111 end").is_empty());
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
