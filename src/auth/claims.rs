//! Reading claims out of a verified JWT, the same way for every kind of token: by top-level name
//! or dotted path, the identity (optionally from a template) and the roles.

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

/// `"{tenant}:{sub}"` with each `{path}` replaced by that claim.
pub fn fill_template(template: &str, claims: &Map<String, Value>) -> Result<String, AuthError> {
    let mut identity = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        identity.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or(AuthError::BadIdentityClaim)? + start;
        identity.push_str(&claim_text(claims, &rest[start + 1..end])?);
        rest = &rest[end + 1..];
    }
    identity.push_str(rest);
    Ok(identity)
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
    fn templates_join_claims() {
        let c = claims(serde_json::json!({"tenant": "acme", "sub": "42", "org": {"id": 7}}));
        assert_eq!(fill_template("{tenant}:{sub}", &c).unwrap(), "acme:42");
        assert_eq!(fill_template("org-{org.id}", &c).unwrap(), "org-7");
        assert_eq!(fill_template("{nope}", &c), Err(AuthError::MissingClaim("nope".into())));
    }

    #[test]
    fn roles_from_a_string_an_array_or_the_default() {
        let c = claims(serde_json::json!({"one": "admin", "many": ["a", "b", 3]}));
        assert_eq!(roles(&c, "one", &[]), ["admin"]);
        assert_eq!(roles(&c, "many", &[]), ["a", "b"]);
        assert_eq!(roles(&c, "none", &["user".to_owned()]), ["user"]);
    }
}
