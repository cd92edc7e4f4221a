//! Reading claims out of a verified JWT, the same way for every kind of token: by top-level name
//! or dotted path, as text, the expiry and the roles (`identity` builds identities from them).

use serde_json::{Map, Value};

use super::AuthError;

/// A claim by top-level name first (names like `https://example.com/uid` or `cognito:groups`),
/// else by dotted path into nested objects (`realm_access.roles`).
pub fn claim<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    claims.get(path).or_else(|| {
        let mut parts = path.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |value, part| value.get(part))
    })
}

/// A claim as text: a non-empty string, or a number written out.
pub fn claim_text(claims: &Map<String, Value>, path: &str) -> Result<String, AuthError> {
    match claim(claims, path) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(AuthError::BadIdentityClaim),
        None => Err(AuthError::MissingClaim(path.to_owned())),
    }
}

/// The `exp` claim, which every verified token carries (validation requires it).
pub fn expiry(claims: &Map<String, Value>) -> Result<u64, AuthError> {
    claims.get("exp").and_then(Value::as_u64).ok_or_else(|| AuthError::MissingClaim("exp".to_owned()))
}

/// Roles from a claim holding a string or an array of strings; `default` when there is none.
pub fn roles(claims: &Map<String, Value>, path: &str, default: &[String]) -> Vec<String> {
    match claim(claims, path) {
        Some(Value::String(role)) => vec![role.clone()],
        Some(Value::Array(roles)) => roles.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect(),
        _ => default.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: Value) -> Map<String, Value> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn claims_by_name_or_by_path() {
        let c = claims(serde_json::json!({
            "https://example.com/uid": "u1",
            "cognito:groups": ["admins"],
            "realm_access": {"roles": ["user", "admin"]}
        }));
        assert_eq!(claim(&c, "https://example.com/uid"), Some(&Value::from("u1")));
        assert_eq!(claim(&c, "cognito:groups"), Some(&serde_json::json!(["admins"])));
        assert_eq!(claim(&c, "realm_access.roles"), Some(&serde_json::json!(["user", "admin"])));
        assert_eq!(claim(&c, "realm_access.missing"), None);
    }

    #[test]
    fn roles_from_a_string_an_array_or_the_default() {
        let c = claims(serde_json::json!({"one": "admin", "many": ["a", "b", 3]}));
        assert_eq!(roles(&c, "one", &[]), ["admin"]);
        assert_eq!(roles(&c, "many", &[]), ["a", "b"]);
        assert_eq!(roles(&c, "none", &["user".to_owned()]), ["user"]);
    }
}
