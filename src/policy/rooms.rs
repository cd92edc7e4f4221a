//! Video room patterns: literal text, `*` for any run of characters, and `{identity}` for the
//! caller's identity, which is always matched literally (a `*` in an identity is no wildcard).

/// A room name Twilio Video accepts: 1 to 128 characters, none of them a control character.
pub type Room = crate::text::BoundedText<128>;

/// What a room name must be, as every refusal says it.
pub(super) const ROOM_RULE: &str = "video.room must be 1 to 128 characters without control characters";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Identity,
    Star,
}

/// A parsed room pattern such as `"team-*"` or `"user-{identity}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPattern {
    source: String,
    parts: Vec<Part>,
}

const IDENTITY: &str = "{identity}";

impl RoomPattern {
    pub fn parse(source: &str) -> Self {
        let mut parts = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix(IDENTITY) {
                parts.push(Part::Identity);
                rest = after;
            } else if let Some(after) = rest.strip_prefix('*') {
                parts.push(Part::Star);
                rest = after;
            } else {
                // Text runs to the next `*` or `{`, past the first character (which may be a `{`
                // that does not open `{identity}`, and may be several bytes long).
                let first = rest.chars().next().map_or(0, char::len_utf8);
                let end = rest[first..].find(['*', '{']).map_or(rest.len(), |i| i + first);
                match parts.last_mut() {
                    Some(Part::Text(text)) => text.push_str(&rest[..end]),
                    _ => parts.push(Part::Text(rest[..end].to_owned())),
                }
                rest = &rest[end..];
            }
        }
        Self { source: source.to_owned(), parts }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern is exactly `*`: any room, including a grant for no particular room.
    pub fn is_any(&self) -> bool {
        self.parts == [Part::Star]
    }

    pub fn has_wildcard(&self) -> bool {
        self.parts.contains(&Part::Star)
    }

    /// The room this pattern names for `identity`; `None` when it has a wildcard.
    pub fn expand(&self, identity: &str) -> Option<String> {
        let mut room = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => room.push_str(text),
                Part::Identity => room.push_str(identity),
                Part::Star => return None,
            }
        }
        Some(room)
    }

    pub fn matches(&self, identity: &str, room: &str) -> bool {
        // Literal characters (identity included) and stars, matched by the classic greedy
        // wildcard algorithm that backtracks only to the last star.
        let mut items: Vec<Option<char>> = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => items.extend(text.chars().map(Some)),
                Part::Identity => items.extend(identity.chars().map(Some)),
                Part::Star => items.push(None),
            }
        }
        let room: Vec<char> = room.chars().collect();
        let (mut p, mut r) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None;
        while r < room.len() {
            match items.get(p) {
                Some(None) => {
                    backtrack = Some((p, r));
                    p += 1;
                }
                Some(Some(c)) if *c == room[r] => {
                    p += 1;
                    r += 1;
                }
                _ => match backtrack {
                    Some((star, matched)) => {
                        p = star + 1;
                        r = matched + 1;
                        backtrack = Some((star, matched + 1));
                    }
                    None => return false,
                },
            }
        }
        items[p..].iter().all(Option::is_none)
    }
}

#[cfg(test)]
mod tests {
    use super::RoomPattern;

    #[test]
    fn literal_patterns_match_only_themselves() {
        let p = RoomPattern::parse("standup");
        assert!(p.matches("alice", "standup"));
        assert!(!p.matches("alice", "standup2"));
        assert_eq!(p.expand("alice").as_deref(), Some("standup"));
    }

    #[test]
    fn identity_is_substituted_literally() {
        let p = RoomPattern::parse("user-{identity}");
        assert!(p.matches("alice", "user-alice"));
        assert!(!p.matches("alice", "user-bob"));
        let star = RoomPattern::parse("{identity}-room");
        assert!(star.matches("a*", "a*-room"));
        assert!(!star.matches("a*", "abc-room"), "a * in an identity is not a wildcard");
    }

    #[test]
    fn stars_match_any_run() {
        let p = RoomPattern::parse("team-*-{identity}");
        assert!(p.matches("bob", "team-red-bob"));
        assert!(p.matches("bob", "team--bob"));
        assert!(!p.matches("bob", "team-red-alice"));
        assert!(RoomPattern::parse("*").is_any());
        assert!(RoomPattern::parse("*").matches("x", "anything at all"));
        assert!(!RoomPattern::parse("a*b*c").matches("x", "abcb"));
        assert!(RoomPattern::parse("a*b*c").matches("x", "aXbYbZc"));
        assert_eq!(RoomPattern::parse("team-*").expand("x"), None);
    }

    #[test]
    fn patterns_in_any_script_parse_match_and_expand() {
        let p = RoomPattern::parse("équipe-*");
        assert!(p.matches("x", "équipe-rouge"));
        assert!(!p.matches("x", "equipe-rouge"));
        assert_eq!(RoomPattern::parse("über-{identity}").expand("zoë").as_deref(), Some("über-zoë"));
        for source in ["é", "{é", "{identity}ü{", "会議室-{identity}-*", "🎥*🎥", "{{identity}}"] {
            let p = RoomPattern::parse(source);
            assert_eq!(p.as_str(), source);
        }
        assert_eq!(RoomPattern::parse("{{identity}}").expand("a").as_deref(), Some("{a}"));
    }

    proptest::proptest! {
        /// Any text parses, and a pattern without `*` or `{identity}` matches exactly itself.
        #[test]
        fn any_text_parses(source in "\\PC{0,24}") {
            let p = RoomPattern::parse(&source);
            if !source.contains('*') && !source.contains("{identity}") {
                proptest::prop_assert!(p.matches("id", &source));
                proptest::prop_assert_eq!(p.expand("id"), Some(source.clone()));
            }
        }
    }
}
