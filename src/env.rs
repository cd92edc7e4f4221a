//! A snapshot of the process environment, and secrets read from it.
//!
//! Everything that reads a variable goes through [`EnvVars`], so tests hand in a map instead of
//! calling `set_var` (which is `unsafe` in edition 2024 and races between tests), and every
//! secret is read the same way: `NAME`, or `NAME_FILE` naming a file that holds it (the way
//! Docker and Kubernetes mount secrets).

use std::collections::HashMap;
use std::path::PathBuf;

use secrecy::SecretString;

/// The environment variables tokenmint was started with.
#[derive(Clone, Default)]
pub struct EnvVars(HashMap<String, String>);

/// Why a variable could not be read; the message names the variable and the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("{name} and {name}_FILE are both set: set only one of them")]
    Both { name: String },
    #[error(
        "{name}_FILE names {path:?}, which cannot be read ({reason}): point it at a readable file that holds the value"
    )]
    Unreadable { name: String, path: PathBuf, reason: String },
    #[error("{name} is empty: give it a value, or unset it")]
    Empty { name: String },
}

impl EnvVars {
    /// Takes a snapshot of the process environment (variables that are not UTF-8 are skipped).
    pub fn from_process() -> Self {
        Self(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect())
    }

    /// The map itself, for the config crate's environment layer.
    pub fn as_map(&self) -> &HashMap<String, String> {
        &self.0
    }

    /// A plain variable; an empty value counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Whether `NAME` or `NAME_FILE` is set.
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some() || self.get(&format!("{name}_FILE")).is_some()
    }

    /// Sets a variable in this snapshot (the process environment is untouched).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// A digest of `settings` and of the secrets named `secret_vars` (or why each cannot be
    /// read), so a reload can tell whether a part's inputs changed without keeping the secrets.
    pub fn fingerprint(&self, settings: &impl serde::Serialize, secret_vars: &[&str]) -> [u8; 32] {
        use secrecy::ExposeSecret;
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(serde_json::to_vec(settings).unwrap_or_default());
        for name in secret_vars {
            hash.update(name.as_bytes());
            match self.secret(name) {
                Ok(Some(secret)) => {
                    hash.update([1]);
                    hash.update(Sha256::digest(secret.expose_secret().as_bytes()));
                }
                Ok(None) => hash.update([0]),
                Err(e) => hash.update(format!("\u{2}{e}")),
            }
        }
        hash.finalize().into()
    }

    /// Reads `NAME`, or the file `NAME_FILE` names, trimming surrounding white space (a file
    /// written by `echo` ends in a newline). `Ok(None)` when neither is set.
    pub fn secret(&self, name: &str) -> Result<Option<SecretString>, EnvError> {
        self.value(name).map(|v| v.map(SecretString::from))
    }

    /// Like [`EnvVars::secret`], for values that are not secret (SIDs).
    pub fn value(&self, name: &str) -> Result<Option<String>, EnvError> {
        let file_var = format!("{name}_FILE");
        let value = match (self.get(name), self.get(&file_var)) {
            (Some(_), Some(_)) => return Err(EnvError::Both { name: name.into() }),
            (Some(value), None) => value.trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| EnvError::Unreadable {
                    name: name.into(),
                    path: path.into(),
                    reason: e.kind().to_string(),
                })?
                .trim()
                .to_owned(),
            (None, None) => return Ok(None),
        };
        if value.is_empty() {
            return Err(EnvError::Empty { name: name.into() });
        }
        Ok(Some(value))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for EnvVars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// Values are left out: the environment holds secrets.
impl std::fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvVars").field("variables", &self.0.len()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn reads_a_value_or_its_file_trimmed() {
        let dir = std::env::temp_dir().join(format!("tokenmint-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "from-file\n").unwrap();
        let env: EnvVars = [("A", "plain"), ("B_FILE", path.to_str().unwrap())].into_iter().collect();
        assert_eq!(env.secret("A").unwrap().unwrap().expose_secret(), "plain");
        assert_eq!(env.secret("B").unwrap().unwrap().expose_secret(), "from-file");
        assert!(env.secret("C").unwrap().is_none());
    }

    #[test]
    fn refuses_both_forms_unreadable_files_and_empty_files() {
        let env: EnvVars =
            [("A", "x"), ("A_FILE", "/nonexistent"), ("B_FILE", "/nonexistent/x"), ("C_FILE", "/dev/null")]
                .into_iter()
                .collect();
        assert_eq!(env.secret("A").unwrap_err(), EnvError::Both { name: "A".into() });
        assert!(matches!(env.secret("B").unwrap_err(), EnvError::Unreadable { .. }));
        assert_eq!(env.secret("C").unwrap_err(), EnvError::Empty { name: "C".into() });
    }

    #[test]
    fn debug_output_shows_no_values() {
        let env: EnvVars = [("TWILIO_API_SECRET", "hunter2-very-secret")].into_iter().collect();
        assert!(!format!("{env:?}").contains("hunter2"));
    }
}
