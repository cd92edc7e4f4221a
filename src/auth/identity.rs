//! How an issuer's verified claims become a Twilio identity, the same way for app sessions and
//! identity providers: the claims it requires (with their values), the claim or template the
//! identity is read from, and the issuer's prefix.
//!
//! Three ways an identity could be claimed by the wrong person are closed here:
//! - **Another issuer's user.** With several issuers, `alice` at one and `alice` at another
//!   must not be the same Twilio identity. Each issuer then has an `identity_prefix` that no
//!   other issuer's prefix begins with (so no identity can come from two issuers), unless the
//!   operator declares with `identity_namespace` that some issuers share one user namespace.
//! - **An unverified e-mail.** An identity read from the `email` claim requires
//!   `email_verified` to be true, unless the operator sets `allow_unverified_email`.
//! - **An ambiguous template.** `{org}:{sub}` would give `acme:x:bob` for (`acme`, `x:bob`) and
//!   (`acme:x`, `bob`); a claim value holding a character of the template's separators is
//!   refused, and two claims with nothing between them are a configuration error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AuthError;
use super::claims::{claim, claim_text};

/// `required_claims`: names that must be present (`["email_verified"]`), or names with the
/// value each must have (`{ email_verified = true, hd = "example.com" }`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum RequiredClaims {
    Present(Vec<String>),
    Values(BTreeMap<String, Value>),
}

impl Default for RequiredClaims {
    fn default() -> Self {
        Self::Present(Vec::new())
    }
}

/// One issuer's identity settings, as its `[[auth.sessions]]` or `[[auth.providers]]` entry
/// gives them.
pub struct IdentitySettings<'a> {
    pub identity_claim: &'a str,
    pub identity_template: Option<&'a str>,
    pub identity_prefix: Option<&'a str>,
    pub identity_namespace: Option<&'a str>,
    pub required_claims: &'a RequiredClaims,
    pub allow_unverified_email: bool,
}

/// The claim that says an e-mail address was verified (OpenID Connect Core §5.1).
const EMAIL_VERIFIED: &str = "email_verified";

/// A claim the credential must carry.
#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    claim: String,
    /// `None`: present (and not null); else this value (see [`matches`]).
    value: Option<Value>,
}

/// Builds identities from one issuer's claims.
#[derive(Debug, Clone)]
pub struct IdentityRule {
    source: Source,
    prefix: String,
    namespace: Option<String>,
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone)]
enum Source {
    Claim(String),
    Template(Template),
}

/// `"{org}:{sub}"`, parsed: literal text and claim paths.
#[derive(Debug, Clone)]
struct Template {
    parts: Vec<Part>,
    /// Every character of the literal text between two claims: a claim value holding one could
    /// be read two ways.
    separators: Vec<char>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Claim(String),
}

impl IdentityRule {
    /// Checks the settings; every problem at once, as sentences naming the key.
    pub fn new(settings: &IdentitySettings<'_>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let source = match settings.identity_template {
            Some(template) => Template::parse(template).map(Source::Template).map_err(|p| problems.push(p)).ok(),
            None if settings.identity_claim.is_empty() => {
                problems.push("identity_claim is empty: name the claim that becomes the Twilio identity".to_owned());
                None
            }
            None => Some(Source::Claim(settings.identity_claim.to_owned())),
        };
        let prefix = settings.identity_prefix.unwrap_or_default();
        if crate::text::has_forbidden_chars(prefix) {
            problems.push("identity_prefix holds a control character".to_owned());
        }
        if settings.identity_namespace.is_some_and(str::is_empty) {
            problems.push("identity_namespace is empty: name the namespace, or leave it out".to_owned());
        }
        let mut requirements: Vec<Requirement> = match settings.required_claims {
            RequiredClaims::Present(names) => {
                names.iter().map(|claim| Requirement { claim: claim.clone(), value: None }).collect()
            }
            RequiredClaims::Values(values) => values
                .iter()
                .map(|(claim, value)| Requirement { claim: claim.clone(), value: Some(value.clone()) })
                .collect(),
        };
        if requirements.iter().any(|r| r.claim.is_empty()) {
            problems.push("required_claims names an empty claim".to_owned());
        }
        let uses_email = source.as_ref().is_some_and(|source| source.claims().any(|c| c == "email"));
        let email_verified_required =
            requirements.iter().any(|r| r.claim == EMAIL_VERIFIED && r.value.as_ref().is_some_and(is_true));
        if uses_email && !settings.allow_unverified_email && !email_verified_required {
            // A required claim that only asks for presence would accept `false`: the value wins.
            requirements.retain(|r| r.claim != EMAIL_VERIFIED);
            requirements.push(Requirement { claim: EMAIL_VERIFIED.to_owned(), value: Some(Value::Bool(true)) });
        }
        match source {
            Some(source) if problems.is_empty() => Ok(Self {
                source,
                prefix: prefix.to_owned(),
                namespace: settings.identity_namespace.map(str::to_owned),
                requirements,
            }),
            _ => Err(problems),
        }
    }

    /// The Twilio identity `claims` name, once every required claim holds.
    pub fn identity(&self, claims: &Map<String, Value>) -> Result<String, AuthError> {
        for requirement in &self.requirements {
            let found = claim(claims, &requirement.claim).filter(|value| !value.is_null());
            match (&requirement.value, found) {
                (_, None) => return Err(AuthError::MissingClaim(requirement.claim.clone())),
                (Some(wanted), Some(found)) if !matches(wanted, found) => {
                    return Err(AuthError::RequiredClaimValue(requirement.claim.clone()));
                }
                _ => {}
            }
        }
        let identity = match &self.source {
            Source::Claim(path) => claim_text(claims, path)?,
            Source::Template(template) => template.fill(claims)?,
        };
        Ok(format!("{}{identity}", self.prefix))
    }

    /// How identities are made, for `check-config`: e.g. `"google:" + {sub}, requires
    /// email_verified = true`.
    /// What every identity from this issuer begins with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn describe(&self) -> String {
        let mut text = match &self.source {
            Source::Claim(path) => format!("{{{path}}}"),
            Source::Template(template) => template.source(),
        };
        if !self.prefix.is_empty() {
            text = format!("{:?} + {text}", self.prefix);
        }
        if let Some(namespace) = &self.namespace {
            text.push_str(&format!(", in the shared namespace {namespace:?}"));
        }
        for requirement in &self.requirements {
            match &requirement.value {
                Some(value) => text.push_str(&format!(", requires {} = {value}", requirement.claim)),
                None => text.push_str(&format!(", requires {}", requirement.claim)),
            }
        }
        text
    }
}

/// Why identities from these issuers (`(name, rule)`, every JWT issuer configured) could
/// collide, if they could. With one issuer nothing can. With several, two issuers that do not
/// share a declared namespace must each have a prefix, neither the start of the other; issuers
/// that share one must have the same prefix.
pub fn collision_problems(issuers: &[(&str, &IdentityRule)]) -> Vec<String> {
    let mut problems = Vec::new();
    if issuers.len() < 2 {
        return problems;
    }
    for (index, (name, rule)) in issuers.iter().enumerate() {
        for (other, other_rule) in &issuers[..index] {
            let shared = rule.namespace.is_some() && rule.namespace == other_rule.namespace;
            if shared && rule.prefix != other_rule.prefix {
                problems.push(format!(
                    "auth: {other} and {name} share the identity_namespace {:?} but have different identity_prefix values; give them the same prefix",
                    rule.namespace.as_deref().unwrap_or_default()
                ));
            } else if !shared
                && (rule.prefix.starts_with(&other_rule.prefix) || other_rule.prefix.starts_with(&rule.prefix))
            {
                problems.push(format!(
                    "auth: {other} and {name} could mint the same Twilio identity for two different users (the same username at each): give each issuer its own identity_prefix, none the start of another (e.g. identity_prefix = \"google:\"), or, only if both issuers name the same people, declare it with the same identity_namespace on both"
                ));
            }
        }
    }
    problems
}

impl Source {
    fn claims(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Self::Claim(path) => Box::new(std::iter::once(path.as_str())),
            Self::Template(template) => Box::new(template.parts.iter().filter_map(|part| match part {
                Part::Claim(path) => Some(path.as_str()),
                Part::Text(_) => None,
            })),
        }
    }
}

impl Template {
    fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let Some(length) = rest[start..].find('}') else {
                return Err(format!("identity_template {template:?} has a {{ without its }}"));
            };
            let path = &rest[start + 1..start + length];
            if path.is_empty() || path.contains('{') {
                return Err(format!("identity_template {template:?} has an empty or nested {{claim}}"));
            }
            if matches!(parts.last(), Some(Part::Claim(_))) {
                return Err(format!(
                    "identity_template {template:?} puts two claims side by side: separate them (e.g. \"{{org}}:{{sub}}\") so the identity can be read only one way"
                ));
            }
            parts.push(Part::Claim(path.to_owned()));
            rest = &rest[start + length + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        if !parts.iter().any(|part| matches!(part, Part::Claim(_))) {
            return Err(format!("identity_template {template:?} names no {{claim}}"));
        }
        let first_claim = parts.iter().position(|p| matches!(p, Part::Claim(_))).unwrap_or(0);
        let last_claim = parts.iter().rposition(|p| matches!(p, Part::Claim(_))).unwrap_or(0);
        let mut separators: Vec<char> = parts[first_claim..last_claim]
            .iter()
            .filter_map(|part| match part {
                Part::Text(text) => Some(text.chars()),
                Part::Claim(_) => None,
            })
            .flatten()
            .collect();
        separators.sort_unstable();
        separators.dedup();
        Ok(Self { parts, separators })
    }

    fn fill(&self, claims: &Map<String, Value>) -> Result<String, AuthError> {
        let mut identity = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => identity.push_str(text),
                Part::Claim(path) => {
                    let value = claim_text(claims, path)?;
                    if value.contains(self.separators.as_slice()) {
                        return Err(AuthError::AmbiguousIdentity(path.clone()));
                    }
                    identity.push_str(&value);
                }
            }
        }
        Ok(identity)
    }

    fn source(&self) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.clone(),
                Part::Claim(path) => format!("{{{path}}}"),
            })
            .collect()
    }
}

fn is_true(value: &Value) -> bool {
    matches!(value, Value::Bool(true))
}

/// Whether a claim holds the required value: the same JSON value; the same value written as a
/// string (some providers send `"email_verified": "true"`); or, for an array, one element that
/// matches.
fn matches(wanted: &Value, found: &Value) -> bool {
    match (wanted, found) {
        (wanted, found) if wanted == found => true,
        (Value::Bool(_) | Value::Number(_), Value::String(text)) => {
            serde_json::from_str::<Value>(text).ok().as_ref() == Some(wanted)
        }
        (wanted, Value::Array(items)) => items.iter().any(|item| item == wanted),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: Value) -> Map<String, Value> {
        json.as_object().unwrap().clone()
    }

    fn settings<'a>(claim: &'a str, required: &'a RequiredClaims) -> IdentitySettings<'a> {
        IdentitySettings {
            identity_claim: claim,
            identity_template: None,
            identity_prefix: None,
            identity_namespace: None,
            required_claims: required,
            allow_unverified_email: false,
        }
    }

    #[test]
    fn an_email_identity_needs_a_verified_email_whatever_the_required_claims_say() {
        for required in [RequiredClaims::default(), RequiredClaims::Present(vec!["email_verified".into()])] {
            let rule = IdentityRule::new(&settings("email", &required)).unwrap();
            let with =
                |verified: Value| claims(serde_json::json!({"email": "alice@example.com", "email_verified": verified}));
            assert_eq!(rule.identity(&with(Value::Bool(true))).unwrap(), "alice@example.com");
            assert_eq!(rule.identity(&with("true".into())).unwrap(), "alice@example.com");
            for unverified in [Value::Bool(false), "false".into(), Value::from(0), Value::from("yes")] {
                assert_eq!(
                    rule.identity(&with(unverified.clone())),
                    Err(AuthError::RequiredClaimValue("email_verified".into())),
                    "{unverified}"
                );
            }
            let missing = claims(serde_json::json!({"email": "alice@example.com"}));
            assert_eq!(rule.identity(&missing), Err(AuthError::MissingClaim("email_verified".into())));
        }
        let none = RequiredClaims::default();
        let opted_out = IdentitySettings { allow_unverified_email: true, ..settings("email", &none) };
        let rule = IdentityRule::new(&opted_out).unwrap();
        assert!(rule.identity(&claims(serde_json::json!({"email": "a@b.c", "email_verified": false}))).is_ok());
    }

    #[test]
    fn required_claims_can_state_values() {
        let required = RequiredClaims::Values(BTreeMap::from([
            ("hd".to_owned(), Value::from("example.com")),
            ("groups".to_owned(), Value::from("staff")),
        ]));
        let rule = IdentityRule::new(&settings("sub", &required)).unwrap();
        let ok = claims(serde_json::json!({"sub": "u1", "hd": "example.com", "groups": ["x", "staff"]}));
        assert_eq!(rule.identity(&ok).unwrap(), "u1");
        let other = claims(serde_json::json!({"sub": "u1", "hd": "evil.example", "groups": ["staff"]}));
        assert_eq!(rule.identity(&other), Err(AuthError::RequiredClaimValue("hd".into())));
        let present = RequiredClaims::Present(vec!["tenant".into()]);
        let rule = IdentityRule::new(&settings("sub", &present)).unwrap();
        assert_eq!(
            rule.identity(&claims(serde_json::json!({"sub": "u1", "tenant": null}))),
            Err(AuthError::MissingClaim("tenant".into()))
        );
    }

    #[test]
    fn a_template_is_read_only_one_way() {
        let required = RequiredClaims::default();
        let rule = IdentityRule::new(&IdentitySettings {
            identity_template: Some("{org}:{sub}"),
            ..settings("sub", &required)
        })
        .unwrap();
        assert_eq!(rule.identity(&claims(serde_json::json!({"org": "acme", "sub": "bob"}))).unwrap(), "acme:bob");
        for (org, sub) in [("acme", "x:bob"), ("acme:x", "bob")] {
            assert_eq!(
                rule.identity(&claims(serde_json::json!({"org": org, "sub": sub}))),
                Err(AuthError::AmbiguousIdentity(if sub.contains(':') { "sub" } else { "org" }.into()))
            );
        }
        // Text before the first claim and after the last separates nothing.
        let rule = IdentityRule::new(&IdentitySettings {
            identity_template: Some("org-{org.id}"),
            ..settings("sub", &required)
        })
        .unwrap();
        assert_eq!(rule.identity(&claims(serde_json::json!({"org": {"id": "o-r-g"}}))).unwrap(), "org-o-r-g");
        for bad in ["{org}{sub}", "{org", "plain", "{}", "a{b{c}}"] {
            let problems =
                IdentityRule::new(&IdentitySettings { identity_template: Some(bad), ..settings("sub", &required) })
                    .unwrap_err();
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
        }
    }

    #[test]
    fn issuers_need_distinct_prefixes_unless_they_declare_one_namespace() {
        let required = RequiredClaims::default();
        let rule = |prefix: Option<&str>, namespace: Option<&str>| {
            IdentityRule::new(&IdentitySettings {
                identity_prefix: prefix,
                identity_namespace: namespace,
                ..settings("sub", &required)
            })
            .unwrap()
        };
        let (bare, google, github, g) =
            (rule(None, None), rule(Some("google:"), None), rule(Some("github:"), None), rule(Some("g"), None));
        assert!(collision_problems(&[("a", &bare)]).is_empty(), "one issuer cannot collide with itself");
        assert_eq!(
            collision_problems(&[("a", &bare), ("b", &google)]).len(),
            1,
            "an unprefixed issuer can name anyone"
        );
        assert!(collision_problems(&[("a", &google), ("b", &github)]).is_empty());
        assert_eq!(collision_problems(&[("a", &google), ("b", &g)]).len(), 1, "g + oogle:x = google: + x");
        let (shared_a, shared_b) = (rule(None, Some("corp")), rule(None, Some("corp")));
        assert!(collision_problems(&[("a", &shared_a), ("b", &shared_b)]).is_empty());
        assert_eq!(collision_problems(&[("a", &shared_a), ("b", &rule(Some("x:"), Some("corp")))]).len(), 1);
        assert_eq!(google.identity(&claims(serde_json::json!({"sub": "alice"}))).unwrap(), "google:alice");
    }
}
