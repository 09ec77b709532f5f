//! `airlock profiles diff A B`: what B allows that A does not, and the
//! reverse, in the sentences of `profiles explain`.
//!
//! Both sides are explained ([`super::explain::statements`]) and compared
//! sentence by sentence, so a reviewer reads a change in the words they
//! would sign off. A grant only one side has, a larger limit, and a
//! restriction (an approval, a required intent, a tool allowlist) only the
//! other side imposes all count as "allows more".
//!
//! What it defends against: a profile change that widens what tools may do
//! slipping through review as a harmless-looking TOML edit (a `*` added to
//! a path, `methods` dropped from an entry, an approval rule removed); the
//! widening is named in plain words, on the side that gains it.

use super::explain::{Polarity, Section, Statement, statements};
use crate::config::profile::Profile;
use std::fmt::Write as _;

/// One line of a diff: what one side allows that the other does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The group it belongs to.
    pub section: Section,
    /// The sentence, as `explain` words it (a lifted restriction is
    /// prefixed "Not required here:" on the side without it).
    pub text: String,
}

/// What each side allows that the other does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileDiff {
    /// What B allows that A does not.
    pub only_b: Vec<Difference>,
    /// What A allows that B does not.
    pub only_a: Vec<Difference>,
}

impl ProfileDiff {
    /// Whether the two profiles allow the same.
    pub fn is_empty(&self) -> bool {
        self.only_a.is_empty() && self.only_b.is_empty()
    }
}

/// Compares `a` and `b`.
pub fn diff(a: &Profile, b: &Profile) -> ProfileDiff {
    let (sa, sb) = (statements(a), statements(b));
    ProfileDiff {
        only_b: more(&sb, &sa),
        only_a: more(&sa, &sb),
    }
}

/// What `this` allows that `other` does not.
fn more(this: &[Statement], other: &[Statement]) -> Vec<Difference> {
    let mut out = Vec::new();
    for s in this {
        let twin = other.iter().find(|o| o.subject == s.subject);
        match s.polarity {
            Polarity::Grant => match twin {
                Some(o) if o.text == s.text => {}
                Some(o) => match (s.amount, o.amount) {
                    (Some(mine), Some(theirs)) if mine <= theirs => {}
                    (Some(_), Some(_)) => out.push(Difference {
                        section: s.section,
                        text: format!("{} (the other: {})", s.text, o.text),
                    }),
                    _ => out.push(Difference {
                        section: s.section,
                        text: s.text.clone(),
                    }),
                },
                None => out.push(Difference {
                    section: s.section,
                    text: s.text.clone(),
                }),
            },
            Polarity::Restriction | Polarity::Note => {}
        }
    }
    // A restriction the other side imposes and this side does not.
    for o in other.iter().filter(|o| o.polarity == Polarity::Restriction) {
        let same = this
            .iter()
            .any(|s| s.subject == o.subject && s.text == o.text);
        if !same {
            out.push(Difference {
                section: o.section,
                text: format!("Not required here: {}", o.text),
            });
        }
    }
    out.sort_by_key(|d| d.section);
    out
}

/// The diff as text: nothing at all when the profiles allow the same.
pub fn render(a: &Profile, b: &Profile, diff: &ProfileDiff) -> String {
    let mut out = String::new();
    for (label, lines) in [
        (
            format!("What {} allows that {} does not:", name(b, a), name(a, b)),
            &diff.only_b,
        ),
        (
            format!("What {} allows that {} does not:", name(a, b), name(b, a)),
            &diff.only_a,
        ),
    ] {
        if lines.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "{label}");
        let mut section = None;
        for d in lines {
            if section != Some(d.section) {
                let _ = writeln!(out, "  {}:", d.section.title());
                section = Some(d.section);
            }
            let _ = writeln!(out, "    - {}", d.text);
        }
    }
    out
}

/// The profile's name, or its file when both sides share a name.
fn name(p: &Profile, other: &Profile) -> String {
    if p.name == other.name {
        p.source.display().to_string()
    } else {
        p.name.clone()
    }
}
