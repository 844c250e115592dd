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

/// An e-mail address, trimmed and lower-cased so that one person has one account, with
/// an internationalized domain kept (and shown) in its ASCII form, punycode (UTS #46,
/// the form browsers and mail servers use: `ada@bücher.example` is
/// `ada@xn--bcher-kva.example`), so two spellings of one domain are one address and a
/// look-alike domain is visibly different. No control or format characters anywhere
/// ([`has_hidden_characters`]), and no mix of scripts in the part before `@` (UTS #39
/// single script: `оwner@` with a Cyrillic `о` beside `owner@` is refused). Only the shape is checked (`local@domain`);
/// deliverability is not keyward's business.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        // The value is quoted with `{:?}`, which escapes what it would hide.
        if has_hidden_characters(s) {
            return Err(Invalid(format!("invalid e-mail address {s:?}: it holds a control or format character")));
        }
        let s = s.trim().to_lowercase();
        let refuse = || Invalid(format!("invalid e-mail address {s:?}"));
        let Some((local, domain)) = s.rsplit_once('@') else { return Err(refuse()) };
        if local.is_empty() || local.contains('@') || local.chars().any(char::is_whitespace) || domain.is_empty() {
            return Err(refuse());
        }
        // UTS #39: letters of several scripts in one local part (`оwner` with a Cyrillic
        // `о`) are how a look-alike of another person's address is made.
        if !local.is_ascii() && !unicode_security::MixedScript::is_single_script(local) {
            return Err(Invalid(format!(
                "invalid e-mail address {s:?}: its name before @ mixes scripts (such as a Cyrillic letter among Latin ones)"
            )));
        }
        let domain = idna::domain_to_ascii_strict(domain).map_err(|_| refuse())?;
        if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
            return Err(refuse());
        }
        let email = format!("{local}@{domain}");
        if email.len() > Self::MAX_LEN {
            return Err(Invalid(format!("an e-mail address is at most {} bytes", Self::MAX_LEN)));
        }
        Ok(Self(email))
    }

    /// An address read back from the database, stored by [`Email::parse`] (possibly under
    /// older, looser rules: a stored person must stay readable).
    pub fn from_stored(s: String) -> Self {
        Self(s)
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

/// A human-chosen name (a key's, a service account's, an organization's, a person's
/// display name): 1–100 characters after trimming, no control or format characters
/// ([`has_hidden_characters`]).
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        // Before trimming: a line separator at the end is refused, not silently dropped.
        if let Some(c) = s.chars().find(|c| is_hidden(*c)) {
            return Err(Invalid(format!(
                "a name cannot contain control or format characters such as U+{:04X}",
                u32::from(c)
            )));
        }
        let s = s.trim();
        let chars = s.chars().count();
        if chars == 0 {
            return Err(Invalid("a name is required".into()));
        }
        if chars > Self::MAX_CHARS {
            return Err(Invalid(format!("a name is at most {} characters, this one has {chars}", Self::MAX_CHARS)));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `c` is a control or format character, or a line or paragraph separator
/// (Unicode general categories Cc, Cf, Zl, Zp): characters that do not show, or that
/// change how the text around them shows — U+202E turns the rest of a line around,
/// U+200B and a BOM (U+FEFF) are invisible, U+2028 breaks a line — so a stored name
/// or e-mail holding one can pass for another.
pub fn is_hidden(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// Whether `s` holds a character [`is_hidden`] refuses.
pub fn has_hidden_characters(s: &str) -> bool {
    s.chars().any(is_hidden)
}

/// An OAuth client id as keyward accepts one from outside (a device client in the
/// configuration, an imported service account's existing id): 1–255 characters, without
/// `:` (HTTP Basic could not carry it as the user-id, RFC 7617 §2), whitespace, or control
/// and format characters. Ids keyward generates (`sa_…`) are of this form too.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty()
            || s.chars().count() > 255
            || has_hidden_characters(s)
            || s.chars().any(|c| c == ':' || c.is_whitespace())
        {
            return Err(Invalid(
                "a client id must be 1–255 characters, without ':', spaces, control or format characters".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
    fn client_ids_have_one_rule() {
        for ok in ["keyward-cli", "sa_01J", "legacy.client@example", "x"] {
            assert_eq!(ClientId::parse(ok).unwrap().as_str(), ok);
        }
        let long = "a".repeat(256);
        for bad in ["", "a b", "a:b", "a\tb", "a\u{200B}b", "a\u{202E}b", long.as_str()] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ClientId::parse(&"é".repeat(255)).is_ok(), "characters, not bytes");
    }

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
        for bad in ["", "ada", "@x", "a@", "a@b@c", "a b@c", "a@b..c", "a@.b", "a@b_c.d"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err(), "too long");
    }

    #[test]
    fn internationalized_domains_are_kept_in_punycode() {
        assert_eq!(Email::parse("ada@bücher.example").unwrap().as_str(), "ada@xn--bcher-kva.example");
        assert_eq!(Email::parse("Ada@BÜCHER.example").unwrap().as_str(), "ada@xn--bcher-kva.example");
        assert_eq!(Email::parse("ada@xn--bcher-kva.example").unwrap().as_str(), "ada@xn--bcher-kva.example");
        // A Cyrillic о in the domain: visibly another domain.
        assert_eq!(Email::parse("owner@ex\u{43e}mple.com").unwrap().as_str(), "owner@xn--exmple-xqf.com");
        // A domain UTS #46 refuses.
        assert!(Email::parse("ada@xn--a.example").is_err());
    }

    #[test]
    fn hidden_characters_are_refused_in_names_and_emails() {
        for c in ['\u{202E}', '\u{200B}', '\u{2028}', '\u{2029}', '\u{FEFF}', '\u{0}', '\u{7}', '\u{85}', '\u{AD}'] {
            assert!(Name::parse(&format!("ci{c}key")).is_err(), "U+{:04X} in a name", u32::from(c));
            assert!(Name::parse(&format!("ci{c}")).is_err(), "U+{:04X} at the end of a name", u32::from(c));
            assert!(Email::parse(&format!("ada@example.com{c}")).is_err(), "U+{:04X} at the end", u32::from(c));
            assert!(Email::parse(&format!("ad{c}a@example.com")).is_err(), "U+{:04X} in a local part", u32::from(c));
            assert!(Email::parse(&format!("ada@exa{c}mple.com")).is_err(), "U+{:04X} in a domain", u32::from(c));
            assert!(has_hidden_characters(&format!("x{c}")));
        }
        let err = Name::parse("invoice\u{202E}fdp.exe").unwrap_err();
        assert!(err.0.contains("U+202E"), "{err}");
        // Visible text of any script stays allowed.
        for ok in ["Ada Lovelace", "Zoë", "Ωmega key", "東京 CI", "ключ", "key 🔑"] {
            assert!(Name::parse(ok).is_ok(), "{ok}");
        }
        assert!(Email::parse("zoë@example.com").is_ok());
    }

    #[test]
    fn a_local_part_of_mixed_scripts_is_refused() {
        // A Cyrillic о (U+043E) before Latin letters: a look-alike of owner@.
        let err = Email::parse("\u{43e}wner@example.com").unwrap_err();
        assert!(err.0.contains("mixes scripts"), "{err}");
        assert!(Email::parse("ad\u{430}@example.com").is_err(), "a Cyrillic \u{430} at the end");
        for ok in [
            "owner@example.com",
            "zoë.o'neil@example.com",
            "ключ@example.com",
            "やまだ太郎@example.jp",
            "a+tag@example.com",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
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
        assert!(Name::parse(" padded ").unwrap().as_str() == "padded");
    }
}
