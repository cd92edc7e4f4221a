//! Twilio SIDs: two letters naming the resource type, then 32 hexadecimal digits.

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

#[cfg(test)]
mod tests {
    use super::SidKind;

    #[test]
    fn checks_prefix_length_and_digits() {
        assert!(SidKind::Application.matches("AP11111111111111111111111111111111"));
        assert!(SidKind::Account.matches("AC0123456789abcdef0123456789ABCDEF"));
        assert!(!SidKind::Application.matches("AC11111111111111111111111111111111"));
        assert!(!SidKind::Application.matches("AP1111111111111111111111111111111"));
        assert!(!SidKind::Application.matches("AP1111111111111111111111111111111g"));
        assert!(!SidKind::Application.matches("AP11111111111111111111111111111111é"));
    }
}
