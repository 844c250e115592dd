//! Why a credential was refused, as metrics, logs and audit events name it: one list,
//! which [`super::Rejection::reason`] maps onto and `/metrics` counts by.

/// A rejection's reason. The declaration order is the order of [`Reason::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Missing,
    Malformed,
    Unknown,
    Revoked,
    Expired,
    NotMember,
    Unavailable,
    /// Not looked up: the client address is over its failed-authentication limit.
    RateLimited,
}

impl Reason {
    /// Every reason, in declaration order (so `reason as usize` indexes it).
    pub const ALL: [Reason; 8] = [
        Reason::Missing,
        Reason::Malformed,
        Reason::Unknown,
        Reason::Revoked,
        Reason::Expired,
        Reason::NotMember,
        Reason::Unavailable,
        Reason::RateLimited,
    ];

    /// The label in metrics, logs and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::Unknown => "unknown",
            Reason::Revoked => "revoked",
            Reason::Expired => "expired",
            Reason::NotMember => "not_member",
            Reason::Unavailable => "unavailable",
            Reason::RateLimited => "rate_limited",
        }
    }

    /// Whether the credential's record was found (so its kind is known).
    pub fn found_the_credential(self) -> bool {
        matches!(self, Reason::Revoked | Reason::Expired | Reason::NotMember)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_once_in_declaration_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        let labels: std::collections::BTreeSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Reason::ALL.len(), "labels are distinct");
    }
}
