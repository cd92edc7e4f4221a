//! RSA public keys parsed once. jsonwebtoken's own verifier parses an RSA key, and builds its
//! Montgomery context, again for every signature: about 8 % of the first check of an RS256
//! credential (`bench/instructions.sh tokenmint rs256-cold`). This crypto provider keeps the
//! parsed key (aws-lc-rs `ParsedPublicKey`, which keeps that context) per key and algorithm, and
//! verifies with exactly the parameters of jsonwebtoken's aws-lc provider (the same padding and
//! digest, keys of 2048 to 8192 bits). A key it cannot parse goes to that provider, which fails
//! it the same way. Everything else (HMAC, ECDSA, EdDSA, signing, JWK helpers) is that provider.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use aws_lc_rs::signature::{self as lc, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, aws_lc};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};

/// Parsed keys kept at most; beyond that the map starts over (a provider rotating its keys adds
/// one every few months, so this is only reached by many providers and many rotations).
const KEPT: usize = 64;

static PROVIDER: LazyLock<CryptoProvider> =
    LazyLock::new(|| CryptoProvider { verifier_factory: verifier, ..aws_lc::DEFAULT_PROVIDER.clone() });

/// Parsed keys by algorithm and key bytes (the DER, or the modulus and exponent).
type ParsedKeys = HashMap<(Algorithm, Vec<u8>), Arc<ParsedPublicKey>>;

static PARSED: LazyLock<RwLock<ParsedKeys>> = LazyLock::new(Default::default);

/// Makes this the process's jsonwebtoken provider, unless one was already chosen (jsonwebtoken
/// chooses its own at its first use): then that one verifies, as correctly, only slower.
/// Whether this one is in use.
pub fn install() -> bool {
    match CryptoProvider::install_default(&PROVIDER) {
        Ok(()) => true,
        Err(chosen) => std::ptr::eq(chosen, &*PROVIDER),
    }
}

/// The parameters jsonwebtoken's aws-lc provider verifies each RSA algorithm with.
fn parameters(algorithm: Algorithm) -> Option<&'static RsaParameters> {
    match algorithm {
        Algorithm::RS256 => Some(&lc::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Some(&lc::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Some(&lc::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Some(&lc::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Some(&lc::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Some(&lc::RSA_PSS_2048_8192_SHA512),
        _ => None,
    }
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    let prepared = match parameters(*algorithm) {
        Some(parameters) if key.family() == AlgorithmFamily::Rsa => parsed(*algorithm, parameters, key),
        _ => None,
    };
    match prepared {
        Some(key) => Ok(Box::new(Prepared { algorithm: *algorithm, key })),
        None => (aws_lc::DEFAULT_PROVIDER.verifier_factory)(algorithm, key),
    }
}

/// The parsed form of `key` for `algorithm`, parsed now if it was not before.
fn parsed(algorithm: Algorithm, parameters: &'static RsaParameters, key: &DecodingKey) -> Option<Arc<ParsedPublicKey>> {
    let bytes = match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => [&[0u8][..], der].concat(),
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            // The modulus's length first, so no two (n, e) pairs give the same bytes.
            [&[1u8][..], &(n.len() as u64).to_be_bytes(), n, e].concat()
        }
    };
    let id = (algorithm, bytes);
    if let Some(parsed) = PARSED.read().unwrap_or_else(PoisonError::into_inner).get(&id) {
        return Some(parsed.clone());
    }
    let parsed = Arc::new(match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => ParsedPublicKey::new(parameters, der).ok()?,
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            RsaPublicKeyComponents { n, e }.to_parsed_public_key(parameters).ok()?
        }
    });
    let mut kept = PARSED.write().unwrap_or_else(PoisonError::into_inner);
    if kept.len() >= KEPT {
        kept.clear();
    }
    kept.insert(id, parsed.clone());
    Some(parsed)
}

/// An RSA verifier over a parsed key.
struct Prepared {
    algorithm: Algorithm,
    key: Arc<ParsedPublicKey>,
}

impl jsonwebtoken::signature::Verifier<Vec<u8>> for Prepared {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), jsonwebtoken::signature::Error> {
        self.key.verify_sig(message, signature).map_err(jsonwebtoken::signature::Error::from_source)
    }
}

impl JwtVerifier for Prepared {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    const RSA_A: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-a.pem");
    const RSA_A_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-a.pub.pem");
    const RSA_B: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-b.pem");
    const EC: &[u8] = include_bytes!("../../tests/fixtures/keys/ec-p256.pub.pem");
    /// A 1024-bit key (below what RS256 verification accepts) and a token it signed (openssl).
    const WEAK_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC+6n0C0zLH6qa29JU6jdRW2ADw
to74+EK4kJixSGxD8pi7RKsapid7JwZe78h8Wkfr43Qf9IAVsL6vo/dHaoIYQ4Zn
FjYrHkHWZkzkhkzEzOKA8oS32m3TE0MVXI0vI54sXBui633mzuOgU4hy2dOjZLcg
bDFiIWcL/cuWhjQ0NQIDAQAB
-----END PUBLIC KEY-----";
    const WEAK_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ3ZWFrIn0.X75GTLHC7r6h8YauXSAAhBfuxD2_lEUS2260aPT6JyQbFQ2c-tC7pi_sq8NoBb9bgx99A62RkyDZBySBhX8FpsTRg85CqX9lSwDWdHQZcYWz1McOQKpQgYSPRXCTN9cR77HE7S5rFyDxO5nPrwtJ2B9aX9to5IxcHLR-Bd2rw0A";

    /// A token's signing input and its signature, as the verifier gets them.
    fn parts(token: &str) -> (Vec<u8>, Vec<u8>) {
        let (message, signature) = token.rsplit_once('.').unwrap();
        (message.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(signature).unwrap())
    }

    fn signed(algorithm: Algorithm, private_pem: &[u8]) -> String {
        let key = EncodingKey::from_rsa_pem(private_pem).unwrap();
        jsonwebtoken::encode(&Header::new(algorithm), &serde_json::json!({"sub": "alice"}), &key).unwrap()
    }

    /// rsa-a's public key both ways jsonwebtoken holds one: from PEM (DER) and from a JWK (n, e).
    fn rsa_a_keys(algorithm: Algorithm) -> [DecodingKey; 2] {
        let jwk = Jwk::from_encoding_key(&EncodingKey::from_rsa_pem(RSA_A).unwrap(), algorithm).unwrap();
        [DecodingKey::from_rsa_pem(RSA_A_PUBLIC).unwrap(), DecodingKey::from_jwk(&jwk).unwrap()]
    }

    fn verifies(algorithm: Algorithm, key: &DecodingKey, message: &[u8], signature: &[u8]) -> bool {
        verifier(&algorithm, key).is_ok_and(|v| v.verify(message, &signature.to_vec()).is_ok())
    }

    #[test]
    fn each_rsa_algorithm_verifies_with_a_parsed_key_of_either_form_and_keeps_it() {
        for algorithm in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS512] {
            let (message, signature) = parts(&signed(algorithm, RSA_A));
            for key in rsa_a_keys(algorithm) {
                assert!(verifies(algorithm, &key, &message, &signature), "{algorithm:?}");
                assert!(verifies(algorithm, &key, &message, &signature), "{algorithm:?}, parsed before");
                assert_eq!(verifier(&algorithm, &key).unwrap().algorithm(), algorithm);
            }
        }
        assert!(!PARSED.read().unwrap().is_empty());
    }

    #[test]
    fn what_jsonwebtoken_refuses_a_parsed_key_refuses() {
        let (message, signature) = parts(&signed(Algorithm::RS256, RSA_A));
        for key in rsa_a_keys(Algorithm::RS256) {
            let default = |algorithm: Algorithm, message: &[u8], signature: &[u8]| {
                (aws_lc::DEFAULT_PROVIDER.verifier_factory)(&algorithm, &key)
                    .is_ok_and(|v| v.verify(message, &signature.to_vec()).is_ok())
            };
            let mut tampered_message = message.clone();
            tampered_message[40] ^= 1;
            let mut tampered_signature = signature.clone();
            tampered_signature[100] ^= 1;
            let (other_message, other_signature) = parts(&signed(Algorithm::RS256, RSA_B));
            let (pss_message, pss_signature) = parts(&signed(Algorithm::PS256, RSA_A));
            for (case, algorithm, message, signature) in [
                ("a changed payload", Algorithm::RS256, &tampered_message, &signature),
                ("a changed signature", Algorithm::RS256, &message, &tampered_signature),
                ("another key's signature", Algorithm::RS256, &other_message, &other_signature),
                ("a PSS signature checked as PKCS#1", Algorithm::RS256, &pss_message, &pss_signature),
                ("a PKCS#1 signature checked as PSS", Algorithm::PS256, &message, &signature),
                ("a SHA-256 signature checked as SHA-512", Algorithm::RS512, &message, &signature),
            ] {
                assert!(!verifies(algorithm, &key, message, signature), "{case}");
                assert!(!default(algorithm, message, signature), "{case} (jsonwebtoken's own)");
            }
        }
    }

    #[test]
    fn a_key_under_2048_bits_is_refused_as_jsonwebtoken_refuses_it() {
        let key = DecodingKey::from_rsa_pem(WEAK_PUBLIC.as_bytes()).unwrap();
        let (message, signature) = parts(WEAK_TOKEN);
        let DecodingKeyKind::SecretOrDer(der) = key.kind() else { unreachable!() };
        let legacy = lc::UnparsedPublicKey::new(&lc::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, der);
        assert!(legacy.verify(&message, &signature).is_ok(), "the signature itself is good");
        assert!(!verifies(Algorithm::RS256, &key, &message, &signature));
        let default = (aws_lc::DEFAULT_PROVIDER.verifier_factory)(&Algorithm::RS256, &key).unwrap();
        assert!(default.verify(&message, &signature).is_err());
    }

    #[test]
    fn other_families_and_algorithms_are_jsonwebtokens_own() {
        let ec = DecodingKey::from_ec_pem(EC).unwrap();
        assert!(verifier(&Algorithm::RS256, &ec).is_err(), "an EC key for an RSA algorithm");
        let secret = DecodingKey::from_secret(b"a shared secret, not an RSA key");
        assert!(verifier(&Algorithm::RS256, &secret).is_err(), "a secret for an RSA algorithm");
        let rsa = DecodingKey::from_rsa_pem(RSA_A_PUBLIC).unwrap();
        assert!(verifier(&Algorithm::HS256, &rsa).is_err(), "an RSA key as an HMAC secret");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "alice"}),
            &EncodingKey::from_secret(b"a shared secret, not an RSA key"),
        )
        .unwrap();
        let (message, signature) = parts(&token);
        assert!(verifies(Algorithm::HS256, &secret, &message, &signature), "HMAC is unchanged");
    }
}
