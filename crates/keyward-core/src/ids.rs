//! Prefixed, time-ordered identifiers (`key_0192…`, `org_0192…`).
//!
//! Identifiers are UUIDv7 in simple hex form behind a type prefix: the prefix tells a
//! reader (and a support engineer) what an id names, and the time order lets audit
//! events be paginated by id. An id from a URL is parsed before any database work, so a
//! malformed one is a plain `404` and never reaches SQL.

use std::fmt;

/// Declares one identifier type with its prefix.
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this type starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new, unique id ordered after every id generated before it in this process.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Parses an id as it appears in a URL or a database row.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                (rest.len() == 32 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// An organization.
    OrgId, "org_"
);
prefixed_id!(
    /// A person.
    UserId, "usr_"
);
prefixed_id!(
    /// An API key (the key's settings; its secrets come and go with rolls).
    KeyId, "key_"
);
prefixed_id!(
    /// An audit event.
    EventId, "evt_"
);
prefixed_id!(
    /// A service account: a non-human member of one organization. A generated
    /// account's OAuth client id is this id; an imported one keeps its own.
    ServiceAccountId, "sa_"
);
prefixed_id!(
    /// An issued access or refresh token (the row; the secret is only hashed).
    TokenId, "tok_"
);
prefixed_id!(
    /// A device authorization (RFC 8628): one code a client asked for.
    DeviceId, "dev_"
);
prefixed_id!(
    /// A token family: the tokens descended from one grant through refresh-token
    /// rotation, revoked together when a used refresh token comes back.
    FamilyId, "fam_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_in_creation_order() {
        let a = KeyId::generate();
        let b = KeyId::generate();
        assert_eq!(KeyId::parse(a.as_str()), Some(a.clone()));
        assert!(a < b);
    }

    #[test]
    fn foreign_or_malformed_ids_are_refused() {
        let org = OrgId::generate();
        assert_eq!(KeyId::parse(org.as_str()), None);
        assert_eq!(KeyId::parse("key_"), None);
        assert_eq!(KeyId::parse("key_../../etc/passwd0000000000000000000"), None);
        assert_eq!(KeyId::parse("key_0192ABCDEF0000000000000000000000"), None);
    }
}
