//! The identity a token carries, as Twilio checks it when a client connects: its length per
//! grant, the characters no grant takes, the Voice alphabet, and the voice-safe encoding that
//! maps any identity into that alphabet.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use super::Grants;

/// Why Twilio would refuse an identity at connect time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the identity is empty")]
    Empty,
    #[error(
        "the identity is longer than {max} (counting double-byte characters as 2), the limit for the {grant} grant"
    )]
    TooLong { max: usize, grant: &'static str },
    #[error("the identity contains a space or a control character, which the voice grant does not allow")]
    ForbiddenCharacter,
    #[error(
        "the identity contains a control character, a line separator or a bidirectional override, which no grant allows"
    )]
    ControlCharacter,
    #[error(
        "a Twilio Voice identity holds only letters, digits and _, at most {MAX_VOICE_IDENTITY} characters (Twilio error 31105 when the client connects)"
    )]
    NotVoiceSafe,
}

/// How the voice grant's identity is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceIdentity {
    /// The documented Voice alphabet: letters, digits and `_`, at most 121 characters.
    Documented,
    /// Only what Twilio refuses at mint time (no space, at most 256): the operator chose to pass
    /// other identities on.
    Unchecked,
}

/// Video identities may be 128 long, others 256; double-byte characters count 2.
const MAX_VIDEO_IDENTITY: usize = 128;
const MAX_IDENTITY: usize = 256;
/// The longest Voice identity Twilio's Access Token documentation allows.
pub const MAX_VOICE_IDENTITY: usize = 121;

/// Checks `identity` against the rules Twilio applies for the grants it will be used with.
pub fn check_identity(identity: &str, grants: &Grants, voice: VoiceIdentity) -> Result<(), IdentityError> {
    if identity.is_empty() {
        return Err(IdentityError::Empty);
    }
    if crate::text::has_forbidden_chars(identity) {
        return Err(IdentityError::ControlCharacter);
    }
    let length: usize = identity.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    if grants.video.is_some() && length > MAX_VIDEO_IDENTITY {
        return Err(IdentityError::TooLong { max: MAX_VIDEO_IDENTITY, grant: "video" });
    }
    if length > MAX_IDENTITY {
        let grant = grants.names().first().copied().unwrap_or("any");
        return Err(IdentityError::TooLong { max: MAX_IDENTITY, grant });
    }
    if grants.voice.is_some() {
        match voice {
            VoiceIdentity::Documented if !is_voice_safe(identity) => return Err(IdentityError::NotVoiceSafe),
            VoiceIdentity::Unchecked if identity.chars().any(char::is_whitespace) => {
                return Err(IdentityError::ForbiddenCharacter);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether `identity` is in the documented Voice alphabet.
pub fn is_voice_safe(identity: &str) -> bool {
    !identity.is_empty()
        && identity.len() <= MAX_VOICE_IDENTITY
        && identity.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Base32 characters of the digest in an encoded identity: 80 bits.
const HASH_CHARS: usize = 16;
/// `__` and the digest.
const SUFFIX_CHARS: usize = 2 + HASH_CHARS;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The voice-safe form of `identity`: the same input always gives the same output, and two
/// different inputs never the same one (short of an 80-bit SHA-256 collision).
///
/// An identity already in the Voice alphabet stays as it is, unless it ends the way encoded
/// identities end (then it is encoded too, so no raw identity can equal another's encoding).
/// Any other becomes a readable part (letters and digits, each run of anything else as one `_`,
/// cut to fit) then `__` then 16 base32 characters of the SHA-256 of the whole identity:
/// `alice@example.com` → `alice_example_com__…`.
pub fn voice_safe(identity: &str) -> Cow<'_, str> {
    if is_voice_safe(identity) && !looks_encoded(identity) {
        return Cow::Borrowed(identity);
    }
    let mut readable = String::with_capacity(MAX_VOICE_IDENTITY);
    for c in identity.chars() {
        if readable.len() == MAX_VOICE_IDENTITY - SUFFIX_CHARS {
            break;
        }
        if c.is_ascii_alphanumeric() {
            readable.push(c);
        } else if !readable.is_empty() && !readable.ends_with('_') {
            readable.push('_');
        }
    }
    let readable = readable.trim_end_matches('_');
    let readable = if readable.is_empty() { "id" } else { readable };
    let digest = Sha256::digest(identity.as_bytes());
    Cow::Owned(format!("{readable}__{}", base32(&digest[..HASH_CHARS * 5 / 8])))
}

/// Whether `identity` ends like an encoded one: `__` then 16 base32 characters, with a letter or
/// digit before them.
fn looks_encoded(identity: &str) -> bool {
    let bytes = identity.as_bytes();
    bytes.len() > SUFFIX_CHARS
        && bytes[bytes.len() - SUFFIX_CHARS..].starts_with(b"__")
        && bytes[bytes.len() - HASH_CHARS..].iter().all(|b| BASE32.contains(b))
}

/// Lower-case RFC 4648 base32 without padding, of whole 5-byte groups.
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5);
    for group in bytes.chunks(5) {
        let bits = group.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) << (8 * (5 - group.len()));
        for shift in (0..8).rev() {
            out.push(char::from(BASE32[((bits >> (shift * 5)) & 31) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{ChatGrant, VideoGrant, VoiceGrant};

    fn video() -> Grants {
        Grants { video: Some(VideoGrant::default()), ..Grants::default() }
    }

    fn voice() -> Grants {
        Grants { voice: Some(VoiceGrant::default()), ..Grants::default() }
    }

    #[test]
    fn video_identities_stop_at_128_with_double_byte_characters_counting_two() {
        let check = |identity: &str, grants: &Grants| check_identity(identity, grants, VoiceIdentity::Unchecked);
        assert!(check(&"a".repeat(128), &video()).is_ok());
        assert!(check(&"a".repeat(129), &video()).is_err());
        assert!(check(&"李".repeat(64), &video()).is_ok());
        assert!(check(&"李".repeat(65), &video()).is_err());
        assert!(check(&"a".repeat(256), &voice()).is_ok());
        assert!(check(&"a".repeat(257), &voice()).is_err());
    }

    #[test]
    fn voice_identities_follow_the_documented_alphabet_unless_the_operator_chose_otherwise() {
        let documented = |identity: &str| check_identity(identity, &voice(), VoiceIdentity::Documented);
        assert!(documented("alice_01").is_ok());
        assert!(documented(&"a".repeat(121)).is_ok());
        assert_eq!(documented(&"a".repeat(122)), Err(IdentityError::NotVoiceSafe));
        for unsafe_identity in ["alice@example.com", "auth0|5f7c", "app:alice", "a-b", "a b", "é", "a<b", "a{b}"] {
            assert_eq!(documented(unsafe_identity), Err(IdentityError::NotVoiceSafe), "{unsafe_identity}");
        }
        let unchecked = |identity: &str| check_identity(identity, &voice(), VoiceIdentity::Unchecked);
        assert!(unchecked("alice@example.com").is_ok());
        assert_eq!(unchecked("a b"), Err(IdentityError::ForbiddenCharacter));
        // Only the voice grant has the alphabet.
        assert!(check_identity("alice@example.com", &video(), VoiceIdentity::Documented).is_ok());
        assert!(check_identity("a b", &video(), VoiceIdentity::Documented).is_ok());
        assert_eq!(check_identity("", &video(), VoiceIdentity::Documented), Err(IdentityError::Empty));
    }

    #[test]
    fn no_grant_takes_an_identity_with_control_characters() {
        let chat = Grants { chat: Some(ChatGrant::default()), ..Grants::default() };
        for grants in [video(), voice(), chat, Grants::default()] {
            for bad in ["a\u{7}", "alice\n{\"forged\":1}", "a\u{1b}[31m", "a\u{2028}", "\u{202E}x"] {
                for voice in [VoiceIdentity::Documented, VoiceIdentity::Unchecked] {
                    assert_eq!(check_identity(bad, &grants, voice), Err(IdentityError::ControlCharacter), "{bad:?}");
                }
            }
        }
    }

    #[test]
    fn the_voice_safe_form_is_readable_stable_and_in_the_alphabet() {
        assert_eq!(voice_safe("alice_01"), "alice_01");
        let email = voice_safe("alice@example.com");
        assert!(email.starts_with("alice_example_com__"), "{email}");
        assert_eq!(email.len(), "alice_example_com__".len() + 16);
        assert_eq!(voice_safe("alice@example.com"), email, "the same user, the same identity");
        // Known answer, so the encoding never changes under the users' feet: SHA-256 of
        // "alice@example.com" starts ff8d9819fc0e12bf0d24.
        assert_eq!(email, "alice_example_com__76gzqgp4byjl6dje");
        for identity in ["", "@@@", "李小龙", "a\u{7}b", &"x.".repeat(300), "auth0|5f7c1e", "app:alice"] {
            let encoded = voice_safe(identity);
            assert!(is_voice_safe(&encoded), "{identity:?} -> {encoded}");
        }
        assert_eq!(&voice_safe("@@@")[..4], "id__");
    }

    #[test]
    fn distinct_identities_never_share_a_voice_safe_form() {
        let encoded = voice_safe("a.b").into_owned();
        // A raw identity spelled like another's encoding is encoded itself.
        assert_ne!(voice_safe(&encoded), encoded);
        let mut seen = std::collections::HashMap::new();
        let inputs = ["a.b", "a-b", "a b", "a__b", "a_b", "A.b", &encoded, "a.b.", ".a.b", "a..b"];
        for input in inputs {
            let output = voice_safe(input).into_owned();
            if let Some(other) = seen.insert(output.clone(), input) {
                panic!("{input:?} and {other:?} both map to {output}");
            }
        }
    }
}
