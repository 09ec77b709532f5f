//! PEM private key blocks and PuTTY key files.

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::detect::tests::{RSA_BLOCK, found};
    use crate::detect::*;

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
}
