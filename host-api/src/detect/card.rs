//! Payment card numbers.

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
///   four is no card (a card whose run another detector's finding
///   lengthens, `xoxb-…-5678 4111 1111 1111 1111`, is found when
///   [`super::scan`] looks again with that finding masked); the boundary
///   rules below apply to whichever is tried;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::detect::tests::table;
    use crate::detect::*;

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
}
