//! Permissions (`resource:action`, `resource:*` or `*`), sets of them, and roles.
//!
//! The one rule everything else relies on: a key's effective permissions are its own
//! list intersected with what its principal holds now ([`PermissionSet::intersect`]).
//! Wildcards intersect as a person would expect: `{projects:*} ∩ {projects:read,
//! members:read} = {projects:read}`.
//!
//! A set keeps every entry it was given, even one a wildcard beside it covers: what a
//! list *names* matters on its own, since managing API keys with a key needs
//! `api_keys:read`/`api_keys:write` named in the key's list (DESIGN.md: "a list that
//! also holds `*` keeps the explicit entries").

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::domain::Invalid;

/// One permission. Ordered and hashable so sets print the same way every time.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission(String);

fn is_word(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.'))
}

impl Permission {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok =
            s == "*" || matches!(s.split_once(':'), Some((res, act)) if is_word(res) && (act == "*" || is_word(act)));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            // The value is not quoted: it could be a secret pasted into the wrong field.
            Err(Invalid("invalid permission: use resource:action, resource:* or * (a-z, 0-9, '_', '-', '.')".into()))
        }
    }

    pub fn all() -> Self {
        Self("*".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether holding `self` grants `other`.
    pub fn covers(&self, other: &Permission) -> bool {
        if self.0 == "*" || self.0 == other.0 {
            return true;
        }
        match (self.0.strip_suffix(":*"), other.0.split_once(':')) {
            (Some(res), Some((other_res, _))) => res == other_res,
            _ => false,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of permissions, in a stable order, each entry once. Entries covered by a
/// wildcard in the same set are kept: `{*, api_keys:write}` names `api_keys:write`
/// ([`PermissionSet::names`]) while it allows everything.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    pub fn new(perms: impl IntoIterator<Item = Permission>) -> Self {
        Self(perms.into_iter().collect())
    }

    /// Parses a list of permission strings; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Result<Self, Invalid> {
        items.into_iter().map(|s| Permission::parse(s.as_ref())).collect::<Result<Vec<_>, _>>().map(Self::new)
    }

    pub fn allows(&self, p: &Permission) -> bool {
        self.0.iter().any(|held| held.covers(p))
    }

    /// Whether the set names `p` itself (not through a wildcard).
    pub fn names(&self, p: &Permission) -> bool {
        self.0.contains(p)
    }

    pub fn is_subset_of(&self, other: &PermissionSet) -> bool {
        self.0.iter().all(|p| other.allows(p))
    }

    /// What both sets grant: each entry of either set that the other allows (so an
    /// entry one side names, and the other allows, stays named).
    pub fn intersect(&self, other: &PermissionSet) -> PermissionSet {
        let from_self = self.0.iter().filter(|p| other.allows(p));
        let from_other = other.0.iter().filter(|p| self.allows(p));
        Self::new(from_self.chain(from_other).cloned())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Permission> {
        self.0.iter()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|p| p.0.clone()).collect()
    }

    /// What a credential may do: its own list (a key's permissions, a token's scopes)
    /// ∩ what its principal holds now; without a list, everything the principal holds.
    pub fn effective(own: Option<&PermissionSet>, holds: &PermissionSet) -> PermissionSet {
        match own {
            Some(own) => own.intersect(holds),
            None => holds.clone(),
        }
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

/// The deployment's permission catalogue and roles (configuration).
#[derive(Clone, Debug)]
pub struct Roles {
    catalogue: Vec<Permission>,
    roles: BTreeMap<String, PermissionSet>,
}

/// The default permission catalogue (DESIGN.md).
pub const DEFAULT_CATALOGUE: &[&str] = &[
    "api_keys:read",
    "api_keys:write",
    "service_accounts:read",
    "service_accounts:write",
    "members:read",
    "members:write",
    "audit:read",
    "keys:verify",
    "projects:read",
    "projects:write",
];

/// The role that owns an organization: only an owner gives or takes it, and an
/// organization keeps at least one person holding it (DESIGN.md, "Rules for keys").
pub const OWNER_ROLE: &str = "owner";

/// The default roles (DESIGN.md).
pub fn default_roles() -> BTreeMap<String, Vec<String>> {
    let member = "api_keys:read api_keys:write members:read service_accounts:read projects:read projects:write";
    let viewer = "api_keys:read api_keys:write members:read projects:read";
    [("owner", "*"), ("admin", "*"), ("member", member), ("viewer", viewer)]
        .into_iter()
        .map(|(name, perms)| (name.to_owned(), perms.split(' ').map(str::to_owned).collect()))
        .collect()
}

impl Roles {
    /// Builds the role book; every role's permissions must be in the catalogue (or `*`,
    /// or a `resource:*` of a catalogued resource). Errors name the offending role.
    pub fn new(catalogue: &[String], roles: &BTreeMap<String, Vec<String>>) -> Result<Self, Invalid> {
        let catalogue = catalogue.iter().map(|s| Permission::parse(s)).collect::<Result<Vec<_>, _>>()?;
        if let Some(wild) = catalogue.iter().find(|p| p.as_str().ends_with('*')) {
            return Err(Invalid(format!("the permission catalogue lists concrete permissions only, not {wild}")));
        }
        let mut book = BTreeMap::new();
        for (name, perms) in roles {
            if !is_word(name) {
                return Err(Invalid(format!("invalid role name {name:?}: use a-z, 0-9, '_', '-' or '.'")));
            }
            let set = PermissionSet::parse(perms).map_err(|e| Invalid(format!("role {name:?}: {e}")))?;
            for p in set.iter() {
                if !Self::catalogued(&catalogue, p) {
                    return Err(Invalid(format!(
                        "role {name:?} grants {p}, which is not in the permission catalogue: add it to `permissions` or remove it from the role"
                    )));
                }
            }
            book.insert(name.clone(), set);
        }
        Ok(Self { catalogue, roles: book })
    }

    fn catalogued(catalogue: &[Permission], p: &Permission) -> bool {
        p.as_str() == "*" || catalogue.iter().any(|c| p.covers(c) && (p == c || p.as_str().ends_with(":*")))
    }

    /// Whether `p` names something in the catalogue (or is a wildcard over it).
    pub fn is_catalogued(&self, p: &Permission) -> bool {
        Self::catalogued(&self.catalogue, p)
    }

    pub fn role(&self, name: &str) -> Option<&PermissionSet> {
        self.roles.get(name)
    }

    /// What a member with role `name` holds; an unknown role (removed from the
    /// configuration since) holds nothing, so a configuration change fails closed.
    pub fn permissions_of(&self, name: &str) -> PermissionSet {
        self.roles.get(name).cloned().unwrap_or_default()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    pub fn catalogue(&self) -> &[Permission] {
        &self.catalogue
    }
}

impl Default for Roles {
    fn default() -> Self {
        let catalogue: Vec<String> = DEFAULT_CATALOGUE.iter().map(|s| s.to_string()).collect();
        Self::new(&catalogue, &default_roles()).expect("the default roles are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(s: &str) -> PermissionSet {
        PermissionSet::parse(s.split_whitespace()).unwrap()
    }

    #[test]
    fn parse() {
        for ok in ["*", "projects:read", "projects:*", "a.b:c-d"] {
            assert!(Permission::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "projects", "Projects:read", "*:read", "a:b:c", "a: b"] {
            assert!(Permission::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards_intersect_to_the_narrower_grant() {
        assert_eq!(set("*").intersect(&set("projects:read")), set("projects:read"));
        assert_eq!(set("projects:* members:read").intersect(&set("projects:read audit:read")), set("projects:read"));
        assert_eq!(set("a:x").intersect(&set("b:x")), set(""));
        let holds = set("projects:read members:read");
        assert_eq!(PermissionSet::effective(Some(&set("projects:* audit:read")), &holds), set("projects:read"));
        assert_eq!(PermissionSet::effective(None, &holds), holds, "no list: everything held");
        assert_eq!(set("a:x a:x").to_strings(), ["a:x"], "each entry once");
    }

    #[test]
    fn a_list_with_a_wildcard_keeps_its_explicit_entries() {
        let p = |s| Permission::parse(s).unwrap();
        let own = set("* api_keys:write api_keys:read");
        assert!(own.names(&p("api_keys:write")) && own.names(&p("api_keys:read")));
        assert_eq!(own.to_strings(), ["*", "api_keys:read", "api_keys:write"]);
        // Intersected with an owner's `*`, the named entries survive: a key made with this
        // list can still manage keys.
        let effective = PermissionSet::effective(Some(&own), &set("*"));
        assert!(effective.names(&p("api_keys:write")) && effective.allows(&p("audit:read")));
        // With a narrower role, what the role does not allow goes, named or not.
        let effective = PermissionSet::effective(Some(&own), &set("api_keys:read projects:read"));
        assert_eq!(effective, set("api_keys:read projects:read"));
        assert!(set("projects:* projects:read").names(&p("projects:read")));
    }

    #[test]
    fn default_roles_match_the_design() {
        let roles = Roles::default();
        let owner = roles.permissions_of("owner");
        let viewer = roles.permissions_of("viewer");
        let perm = |s| Permission::parse(s).unwrap();
        assert!(owner.allows(&perm("keys:verify")));
        assert!(viewer.allows(&perm("api_keys:write")));
        assert!(!viewer.allows(&perm("projects:write")));
        assert!(!roles.permissions_of("member").allows(&perm("audit:read")));
        assert!(roles.permissions_of("no-such-role").is_empty());
    }

    #[test]
    fn roles_must_use_catalogued_permissions() {
        let cat = vec!["projects:read".to_string()];
        let mut roles = BTreeMap::new();
        roles.insert("x".to_string(), vec!["projects:write".to_string()]);
        let err = Roles::new(&cat, &roles).unwrap_err();
        assert!(err.0.contains("role \"x\""), "{err}");
        roles.insert("x".to_string(), vec!["projects:*".to_string()]);
        assert!(Roles::new(&cat, &roles).is_ok());
    }

    fn arb_perm() -> impl Strategy<Value = Permission> {
        prop_oneof![
            Just(Permission::all()),
            ("[ab]", "[xy*]").prop_map(|(r, a)| Permission::parse(&format!("{r}:{a}")).unwrap()),
        ]
    }

    proptest! {
        #[test]
        fn intersection_grants_exactly_what_both_grant(
            a in prop::collection::vec(arb_perm(), 0..4),
            b in prop::collection::vec(arb_perm(), 0..4),
            probe in arb_perm(),
        ) {
            let (a, b) = (PermissionSet::new(a), PermissionSet::new(b));
            let i = a.intersect(&b);
            prop_assert_eq!(i.allows(&probe), a.allows(&probe) && b.allows(&probe));
            prop_assert!(i.is_subset_of(&a) && i.is_subset_of(&b));
        }
    }
}
