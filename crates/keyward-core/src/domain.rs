//! Small value types of the domain, each with a `parse` constructor that is the only
//! way to make one.

use std::fmt;
use std::str::FromStr;

/// Why a value was refused; the message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// An organization's URL-safe handle: 1–63 characters of `a-z`, `0-9` and `-`, starting
/// with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = (1..=63).contains(&s.len())
            && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
            && !s.starts_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid(format!("invalid slug {s:?}: use 1-63 characters of a-z, 0-9 and '-', not starting with '-'")))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address, trimmed and lower-cased so that one person has one account.
/// Only the shape is checked (`local@domain`); deliverability is not keyward's business.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim().to_lowercase();
        let valid = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(s.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if valid {
            Ok(Self(s))
        } else {
            Err(Invalid(format!("invalid e-mail address {s:?}")))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An organization's plan, ordered from the smallest to the largest, so that a minimum
/// plan is a comparison.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }
}

impl FromStr for Plan {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "free" => Ok(Plan::Free),
            "pro" => Ok(Plan::Pro),
            "enterprise" => Ok(Plan::Enterprise),
            _ => Err(Invalid(format!("unknown plan {s:?}: use free, pro or enterprise"))),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A human-chosen name (a key's name, an organization's or person's display name):
/// 1–100 characters after trimming, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let chars = s.chars().count();
        if chars == 0 {
            return Err(Invalid("a name is required".into()));
        }
        if chars > Self::MAX_CHARS {
            return Err(Invalid(format!("a name is at most {} characters, this one has {chars}", Self::MAX_CHARS)));
        }
        if s.chars().any(char::is_control) {
            return Err(Invalid("a name cannot contain control characters".into()));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(Slug::parse("acme-2").is_ok());
        for bad in ["", "-acme", "Acme", "a b", "a/b", &"a".repeat(64)] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(Email::parse(" Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in ["", "ada", "@x", "a@", "a@b@c", "a b@c"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn plans_are_ordered() {
        assert!(Plan::Free < Plan::Pro && Plan::Pro < Plan::Enterprise);
        assert_eq!("pro".parse::<Plan>().unwrap(), Plan::Pro);
        assert!("gold".parse::<Plan>().is_err());
    }

    #[test]
    fn names_count_characters_not_bytes() {
        assert!(Name::parse(&"é".repeat(100)).is_ok());
        assert!(Name::parse(&"é".repeat(101)).is_err());
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse("a\u{0}b").is_err());
    }
}
