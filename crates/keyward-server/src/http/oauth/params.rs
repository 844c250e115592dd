//! The parameters of an OAuth request, read once from its body.
//!
//! RFC 6749 §3.1–3.2: form-encoded; a parameter sent without a value is treated as
//! omitted; no parameter may appear twice. A JSON object whose values are strings is
//! read the same way, for clients that cannot send forms.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;

use super::OAuthError;

/// The largest body an OAuth endpoint reads. An assertion is a few kilobytes at most.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request's parameters by name; `lists` holds the few fields a form may repeat
/// (checkbox groups), which nothing else may.
#[derive(Default)]
pub struct Params {
    single: BTreeMap<String, String>,
    lists: BTreeMap<String, Vec<String>>,
}

/// Never prints values: they are secrets, assertions and tokens.
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.single.keys().chain(self.lists.keys())).finish()
    }
}

impl Params {
    /// Reads the body of a request with these headers.
    pub async fn read(headers: &HeaderMap, body: Body) -> Result<Self, OAuthError> {
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| OAuthError::too_large())?;
        let mime = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        match mime.as_deref() {
            Some("application/x-www-form-urlencoded") => Self::from_form(&bytes),
            Some("application/json") => Self::from_json(&bytes),
            None if bytes.is_empty() => Ok(Self::default()),
            _ => Err(OAuthError::invalid_request("send the parameters as application/x-www-form-urlencoded")),
        }
    }

    pub fn from_form(bytes: &[u8]) -> Result<Self, OAuthError> {
        Self::from_form_with_lists(bytes, &[])
    }

    /// A form in which the fields named in `lists` may repeat (read with `get_all`).
    pub fn from_form_with_lists(bytes: &[u8], lists: &[&str]) -> Result<Self, OAuthError> {
        let mut params = Self::default();
        for (k, v) in url::form_urlencoded::parse(bytes) {
            if lists.contains(&k.as_ref()) {
                params.lists.entry(k.into_owned()).or_default().push(v.into_owned());
            } else if params.single.insert(k.clone().into_owned(), v.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!("the parameter {} is repeated", printable(&k))));
            }
        }
        Ok(params)
    }

    fn from_json(bytes: &[u8]) -> Result<Self, OAuthError> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|_| OAuthError::invalid_request("the body is not valid JSON"))?;
        let serde_json::Value::Object(object) = value else {
            return Err(OAuthError::invalid_request("the JSON body must be an object"));
        };
        let mut params = Self::default();
        for (k, v) in object {
            match v {
                serde_json::Value::String(s) => {
                    params.single.insert(k, s);
                }
                serde_json::Value::Null => {}
                _ => {
                    return Err(OAuthError::invalid_request(format!(
                        "the parameter {} must be a string",
                        printable(&k)
                    )))
                }
            }
        }
        Ok(params)
    }

    /// The value of `name`; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.single.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Every value of a repeatable field (empty values left out).
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.lists
            .get(name)
            .map(|v| v.iter().map(String::as_str).filter(|v| !v.is_empty()).collect())
            .unwrap_or_default()
    }

    /// Whether `name` was sent at all, even empty.
    pub fn has(&self, name: &str) -> bool {
        self.single.contains_key(name)
    }

    /// The value of `name`, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("the parameter {name} is required")))
    }
}

/// A parameter name as it may be quoted in an error: short and plain, else elided.
fn printable(name: &str) -> &str {
    if name.len() <= 40 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        name
    } else {
        "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_empty_values_count_as_absent() {
        let p = Params::from_form(b"grant_type=client_credentials&scope=a%3Ab+c&client_id=").unwrap();
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert_eq!(p.get("scope"), Some("a:b c"));
        assert_eq!(p.get("client_id"), None);
        assert_eq!(p.require("client_id").unwrap_err().code(), "invalid_request");
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        let err = Params::from_form(b"grant_type=a&grant_type=b").unwrap_err();
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn named_lists_may_repeat() {
        let p = Params::from_form_with_lists(b"permission=a%3Ar&permission=b%3Aw&name=x", &["permission"]).unwrap();
        assert_eq!(p.get_all("permission"), ["a:r", "b:w"]);
        assert_eq!(p.get("name"), Some("x"));
        assert!(Params::from_form_with_lists(b"name=x&name=y", &["permission"]).is_err());
    }

    #[test]
    fn json_objects_of_strings_are_read() {
        let p = Params::from_json(br#"{"grant_type":"client_credentials","scope":null}"#).unwrap();
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert!(Params::from_json(br#"{"grant_type":1}"#).is_err());
        assert!(Params::from_json(b"[1]").is_err());
        assert!(Params::from_json(b"{").is_err());
    }
}
