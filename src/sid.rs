//! Twilio SIDs: two letters naming the resource type, then 32 hexadecimal digits. A [`Sid`] is
//! parsed once, where it enters (a request body, the config file, the environment); past that
//! an ill-formed SID, or one of the wrong kind, cannot exist.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer};

/// The resource types tokenmint handles, with the prefix Twilio gives their SIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidKind {
    Account,
    ApiKey,
    Application,
    PushCredential,
    Service,
    Role,
    Workspace,
    Worker,
}

impl SidKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Account => "AC",
            Self::ApiKey => "SK",
            Self::Application => "AP",
            Self::PushCredential => "CR",
            Self::Service => "IS",
            Self::Role => "RL",
            Self::Workspace => "WS",
            Self::Worker => "WK",
        }
    }

    /// Whether `value` is a SID of this kind.
    pub fn matches(self, value: &str) -> bool {
        value.len() == 34 && value.starts_with(self.prefix()) && value[2..].bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// What a SID of this kind looks like, for error messages.
    pub fn shape(self) -> String {
        format!("{} followed by 32 hexadecimal digits", self.prefix())
    }
}

/// A resource type at the type level, so a Service SID can never fill an Application SID's place.
pub trait Kind {
    const KIND: SidKind;
}

macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub enum $name {}
            impl Kind for $name {
                const KIND: SidKind = SidKind::$name;
            }
        )*
    };
}

kinds! {
    /// `AC…`: a Twilio account.
    Account,
    /// `SK…`: an API key.
    ApiKey,
    /// `AP…`: a TwiML application (Voice's outgoing calls).
    Application,
    /// `CR…`: a push credential (APNs or FCM).
    PushCredential,
    /// `IS…`: a Conversations or Sync service.
    Service,
    /// `RL…`: a Conversations role.
    Role,
    /// `WS…`: a TaskRouter workspace.
    Workspace,
    /// `WK…`: a TaskRouter worker.
    Worker,
}

/// A well-formed SID of kind `K`. Not a secret: `Debug` shows it.
pub struct Sid<K> {
    value: String,
    kind: PhantomData<fn() -> K>,
}

/// Why a value is not a SID of the kind wanted: "must be AP followed by 32 hexadecimal digits".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be {}", .0.shape())]
pub struct SidError(pub SidKind);

impl<K: Kind> Sid<K> {
    pub fn parse(value: &str) -> Result<Self, SidError> {
        if K::KIND.matches(value) {
            Ok(Self { value: value.to_owned(), kind: PhantomData })
        } else {
            Err(SidError(K::KIND))
        }
    }
}

impl<K: Kind> Sid<K> {
    /// The all-zero SID of this kind, which Twilio never issues: `serve --dev`'s stand-in.
    pub fn placeholder() -> Self {
        Self { value: format!("{}{}", K::KIND.prefix(), "0".repeat(32)), kind: PhantomData }
    }
}

impl<K> Sid<K> {
    /// Whether this is a [`Sid::placeholder`].
    pub fn is_placeholder(&self) -> bool {
        self.value[2..].bytes().all(|b| b == b'0')
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl<K> AsRef<str> for Sid<K> {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

// Written out rather than derived: a derive would ask `K` (an uninhabited marker) for the trait.
impl<K> Clone for Sid<K> {
    fn clone(&self) -> Self {
        Self { value: self.value.clone(), kind: PhantomData }
    }
}

impl<K> PartialEq for Sid<K> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<K> Eq for Sid<K> {}

impl<K> fmt::Debug for Sid<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.value, f)
    }
}

impl<K> fmt::Display for Sid<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl<'de, K: Kind> Deserialize<'de> for Sid<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_prefix_length_and_digits() {
        assert!(SidKind::Application.matches("AP11111111111111111111111111111111"));
        assert!(SidKind::Account.matches("AC0123456789abcdef0123456789ABCDEF"));
        assert!(!SidKind::Application.matches("AC11111111111111111111111111111111"));
        assert!(!SidKind::Application.matches("AP1111111111111111111111111111111"));
        assert!(!SidKind::Application.matches("AP1111111111111111111111111111111g"));
        assert!(!SidKind::Application.matches("AP11111111111111111111111111111111é"));
    }

    #[test]
    fn a_sid_is_parsed_for_its_kind_only() {
        let app = Sid::<Application>::parse("AP11111111111111111111111111111111").unwrap();
        assert_eq!(app.as_str(), "AP11111111111111111111111111111111");
        assert_eq!(format!("{app:?}"), "\"AP11111111111111111111111111111111\"");
        let wrong = Sid::<Service>::parse("AP11111111111111111111111111111111").unwrap_err();
        assert_eq!(wrong.to_string(), "must be IS followed by 32 hexadecimal digits");
        let json: Result<Sid<Worker>, _> = serde_json::from_str("\"WK1\"");
        assert!(json.unwrap_err().to_string().contains("must be WK followed by 32 hexadecimal digits"));
    }
}
