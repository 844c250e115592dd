//! Values stored as text columns: permission lists as JSON arrays, and the error for a
//! stored value that does not parse back.

use keyward_core::permission::PermissionSet;

use crate::{Result, StoreError};

/// A stored value that does not parse back (a corrupted or hand-edited row).
pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {value:?}"))
}

/// A permission list (a key's permissions, a token's scopes) as JSON text; `None`
/// (inherit everything the principal holds) as NULL.
pub(crate) fn permissions_to_text(p: &Option<PermissionSet>) -> Option<String> {
    p.as_ref().map(|set| serde_json::to_string(&set.to_strings()).expect("strings serialise"))
}

/// Reads back what [`permissions_to_text`] wrote.
pub(crate) fn permissions_from_text(text: Option<String>) -> Result<Option<PermissionSet>> {
    match text {
        None => Ok(None),
        Some(text) => {
            let list: Vec<String> = serde_json::from_str(&text).map_err(|_| corrupt("permissions", &text))?;
            Ok(Some(PermissionSet::parse(&list).map_err(|e| StoreError::Corrupt(e.0))?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_lists_round_trip_and_null_is_inherit() {
        let set = PermissionSet::parse(["projects:read", "api_keys:*"]).unwrap();
        let text = permissions_to_text(&Some(set.clone()));
        assert_eq!(permissions_from_text(text).unwrap(), Some(set));
        assert_eq!(permissions_to_text(&None), None);
        assert_eq!(permissions_from_text(None).unwrap(), None);
        assert!(permissions_from_text(Some("not json".into())).is_err());
        assert!(permissions_from_text(Some("[\"Bad Permission\"]".into())).is_err());
    }
}
