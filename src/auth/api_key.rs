//! Backend API keys: long random strings held by an app's own servers. The configuration stores
//! only their SHA-256 hashes, and a presented key is compared with every hash in constant time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Principal, PrincipalSource};

/// One `[[auth.api_keys]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// Who holds the key; it names the principal in the audit log and is its identity when it
    /// names none.
    pub name: String,
    /// Lowercase hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// Roles that select policy rules.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Whether the key may mint tokens for an identity it names in the request.
    #[serde(default)]
    pub act_as: bool,
    /// The tenant the key's backend serves: with a policy rule over several Twilio accounts, it
    /// picks the account.
    pub tenant: Option<String>,
}

struct StoredKey {
    hash: [u8; 32],
    name: String,
    roles: Vec<String>,
    act_as: bool,
    tenant: Option<String>,
}

/// The configured backend keys.
#[derive(Default)]
pub struct ApiKeyStore {
    keys: Vec<StoredKey>,
}

impl ApiKeyStore {
    pub fn new(settings: &[ApiKeySettings]) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut keys = Vec::new();
        for (index, key) in settings.iter().enumerate() {
            if key.name.is_empty() {
                problems.push(format!("auth.api_keys[{index}]: name is empty"));
            }
            if settings[..index].iter().any(|other| other.name == key.name) {
                problems.push(format!("auth.api_keys[{index}]: the name {:?} is used twice", key.name));
            }
            match parse_sha256(&key.sha256) {
                Some(hash) => keys.push(StoredKey {
                    hash,
                    name: key.name.clone(),
                    roles: key.roles.clone(),
                    act_as: key.act_as,
                    tenant: key.tenant.clone(),
                }),
                None => problems.push(format!(
                    "auth.api_keys[{index}] ({}): sha256 must be 64 hex digits, the SHA-256 of the key (printf %s \"$KEY\" | sha256sum)",
                    key.name
                )),
            }
        }
        if problems.is_empty() { Ok(Self { keys }) } else { Err(problems) }
    }

    /// Finds the key whose hash matches. Every stored hash is compared, so the time taken does
    /// not depend on which key (if any) matched.
    pub fn verify(&self, presented: &str) -> Result<Principal, AuthError> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.hash.ct_eq(&hash)) {
                found = Some(key);
            }
        }
        let key = found.ok_or(AuthError::UnknownApiKey)?;
        Ok(Principal {
            identity: key.name.clone(),
            subject: key.name.clone(),
            roles: key.roles.clone(),
            may_act_as: key.act_as,
            tenant: key.tenant.clone(),
            source: PrincipalSource::ApiKey { name: key.name.clone() },
        })
    }
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(key: &str) -> ApiKeySettings {
        let hash: String = Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        ApiKeySettings {
            name: "billing".into(),
            sha256: hash,
            roles: vec!["backend".into()],
            act_as: true,
            tenant: None,
        }
    }

    #[test]
    fn matches_the_key_whose_hash_is_stored() {
        let store = ApiKeyStore::new(&[settings("tmk_live_abc")]).unwrap();
        let principal = store.verify("tmk_live_abc").unwrap();
        assert_eq!(principal.source, PrincipalSource::ApiKey { name: "billing".into() });
        assert!(principal.may_act_as);
        assert_eq!(store.verify("tmk_live_abd"), Err(AuthError::UnknownApiKey));
    }

    #[test]
    fn refuses_hashes_that_are_not_sha256_hex() {
        let bad = ApiKeySettings { sha256: "xyz".into(), ..settings("k") };
        assert!(ApiKeyStore::new(&[bad]).is_err());
    }
}
