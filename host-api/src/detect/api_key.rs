//! Prefixed credentials and high-entropy tokens.

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
            || (body.iter().any(u8::is_ascii_digit) && body.iter().any(u8::is_ascii_alphabetic));
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
        && (has(u8::is_ascii_digit) || (has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase)))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::detect::tests::{found, key, table};
    use crate::detect::*;

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
}
