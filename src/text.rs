//! Text that reaches Twilio and the logs: which characters never belong in an identity, a room
//! or a label, and how a log line shows the ones an attacker slipped into other fields.

/// Characters no identity, room or label may hold: C0 and C1 controls (a newline forges a log
/// line, an ESC starts a terminal escape sequence), Unicode's line and paragraph separators
/// (some log viewers break lines at them), and the bidirectional overrides and isolates (they
/// make a line read differently from what it holds).
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `text` holds a character of [`is_forbidden_char`].
pub fn has_forbidden_chars(text: &str) -> bool {
    text.chars().any(is_forbidden_char)
}

/// Text of 1 to `MAX` characters without a forbidden character, parsed once where it enters:
/// a video room (128) or a label such as an endpoint id (256).
#[derive(Clone, PartialEq, Eq)]
pub struct BoundedText<const MAX: usize>(String);

/// Why a value is not a [`BoundedText`]: "must be 1 to 128 characters without control characters".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to {0} characters without control characters")]
pub struct BoundedTextError(pub usize);

impl<const MAX: usize> BoundedText<MAX> {
    pub fn parse(value: &str) -> Result<Self, BoundedTextError> {
        if value.is_empty() || value.chars().count() > MAX || has_forbidden_chars(value) {
            Err(BoundedTextError(MAX))
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> AsRef<str> for BoundedText<MAX> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> std::fmt::Debug for BoundedText<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de, const MAX: usize> serde::Deserialize<'de> for BoundedText<MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::parse(&value).map_err(serde::de::Error::custom)
    }
}

/// `line` with every forbidden character written as a visible escape (`\n`, `\u{1b}`), except
/// one trailing newline, which ends the line.
pub fn escape_line(line: &str) -> std::borrow::Cow<'_, str> {
    let (body, end) = match line.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (line, ""),
    };
    if !has_forbidden_chars(body) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut escaped = String::with_capacity(line.len() + 16);
    for c in body.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if is_forbidden_char(c) => escaped.push_str(&c.escape_unicode().to_string()),
            c => escaped.push(c),
        }
    }
    escaped.push_str(end);
    std::borrow::Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_separators_and_bidi_overrides_are_forbidden_and_letters_are_not() {
        for bad in ["a\nb", "a\u{1b}[31m", "\u{0}", "a\u{85}", "a\u{2028}b", "\u{202E}gnp.exe", "a\u{2066}"] {
            assert!(has_forbidden_chars(bad), "{bad:?}");
        }
        for good in ["alice", "zoë", "李雷", "auth0|5f7c", "a b", "🎥", "user@example.com"] {
            assert!(!has_forbidden_chars(good), "{good:?}");
        }
    }

    #[test]
    fn a_line_keeps_its_end_and_shows_what_was_hidden_in_it() {
        assert_eq!(escape_line("plain line\n"), "plain line\n");
        assert_eq!(escape_line("id=a\nINFO forged\n"), "id=a\\nINFO forged\n");
        assert_eq!(escape_line("x\u{1b}[2Jy"), "x\\u{1b}[2Jy");
        assert_eq!(escape_line("tab\there\r\n"), "tab\\there\\r\n");
    }
}
