//! Content digests: `algorithm:encoded`, per the OCI image spec's descriptor grammar.
//!
//! ```text
//! digest                ::= algorithm ":" encoded
//! algorithm             ::= algorithm-component (algorithm-separator algorithm-component)*
//! algorithm-component   ::= [a-z0-9]+
//! algorithm-separator   ::= [+._-]
//! encoded               ::= [a-zA-Z0-9=_-]+
//! ```
//!
//! `sha256` (64 lowercase hex characters) and `sha512` (128) are registered and supported. Any other
//! well-formed algorithm is [`Error::UnsupportedAlgorithm`]; anything malformed is
//! [`Error::InvalidDigest`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

use crate::error::{Error, quote};

/// A supported digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the default for everything the registry computes.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name as written in a digest.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded hash.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Recognises a supported algorithm by name.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated digest of a supported algorithm. Its text form is canonical: parsing its
/// [`Display`](fmt::Display) gives it back.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    /// Lowercase hex of exactly `algorithm.hex_len()` characters.
    hex: String,
}

impl Digest {
    /// Parses and validates a digest.
    pub fn parse(input: &str) -> Result<Digest, Error> {
        let invalid = |reason| Error::InvalidDigest { input: quote(input), reason };
        let (algorithm, encoded) = input.split_once(':').ok_or_else(|| invalid("missing ':'"))?;
        if algorithm.is_empty() {
            return Err(invalid("empty algorithm"));
        }
        let mut component_len = 0usize;
        for b in algorithm.bytes() {
            match b {
                b'a'..=b'z' | b'0'..=b'9' => component_len += 1,
                b'+' | b'.' | b'_' | b'-' => {
                    if component_len == 0 {
                        return Err(invalid("empty algorithm component"));
                    }
                    component_len = 0;
                }
                _ => return Err(invalid("algorithm must be [a-z0-9] components joined by [+._-]")),
            }
        }
        if component_len == 0 {
            return Err(invalid("empty algorithm component"));
        }
        if encoded.is_empty() {
            return Err(invalid("empty encoded part"));
        }
        if !encoded.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-')) {
            return Err(invalid("encoded part must be [a-zA-Z0-9=_-]"));
        }
        let algorithm = Algorithm::from_name(algorithm)
            .ok_or_else(|| Error::UnsupportedAlgorithm { algorithm: quote(algorithm) })?;
        if encoded.len() != algorithm.hex_len() {
            return Err(invalid(match algorithm {
                Algorithm::Sha256 => "sha256 needs 64 hex characters",
                Algorithm::Sha512 => "sha512 needs 128 hex characters",
            }));
        }
        if !encoded.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("hash must be lowercase hex"));
        }
        Ok(Digest { algorithm, hex: encoded.to_owned() })
    }

    /// Builds a digest from a finished hash.
    pub fn from_hash(algorithm: Algorithm, hash: &[u8]) -> Result<Digest, Error> {
        let hex = hex::encode(hash);
        if hex.len() != algorithm.hex_len() {
            return Err(Error::InvalidDigest { input: quote(&hex), reason: "hash has the wrong length" });
        }
        Ok(Digest { algorithm, hex })
    }

    /// From the output of a finished hasher of `algorithm`, whose length is right by construction.
    pub(crate) fn from_finished(algorithm: Algorithm, hash: &[u8]) -> Digest {
        Digest { algorithm, hex: hex::encode(hash) }
    }

    /// The SHA-256 digest of `bytes` (one-shot).
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::compute(Algorithm::Sha256, bytes)
    }

    /// The digest of `bytes` with `algorithm` (one-shot).
    pub fn compute(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        match algorithm {
            Algorithm::Sha256 => Digest::from_finished(algorithm, &sha2::Sha256::digest(bytes)),
            Algorithm::Sha512 => Digest::from_finished(algorithm, &sha2::Sha512::digest(bytes)),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex hash. Safe as a path component: only `[0-9a-f]`.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_the_image_spec_examples() {
        let d = Digest::parse(EMPTY_SHA256).expect("valid");
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        let sha512 = format!("sha512:{}", "a".repeat(128));
        assert_eq!(Digest::parse(&sha512).expect("valid").algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn one_shot_hash_of_empty_input() {
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY_SHA256);
        assert_eq!(Digest::compute(Algorithm::Sha256, b"").to_string(), EMPTY_SHA256);
    }

    #[test]
    fn well_formed_unknown_algorithms_are_unsupported() {
        // Examples of valid digests from the image spec that use unregistered algorithms.
        for input in [
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
            "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
        ] {
            assert!(matches!(Digest::parse(input), Err(Error::UnsupportedAlgorithm { .. })), "{input}");
        }
    }

    #[test]
    fn malformed_digests_are_invalid() {
        for input in [
            "",
            ":",
            "sha256",
            "sha256:",
            ":abc",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
            "sha+:abc",
            "+sha:abc",
            "sha..256:abc",
            "sha256:abc/def",
            "sha256:../../etc",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855:x",
        ] {
            assert!(matches!(Digest::parse(input), Err(Error::InvalidDigest { .. })), "{input:?}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let d = Digest::parse(EMPTY_SHA256).expect("valid");
        let json = serde_json::to_string(&d).expect("ser");
        assert_eq!(json, format!("\"{EMPTY_SHA256}\""));
        let back: Digest = serde_json::from_str(&json).expect("de");
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest>("\"sha256:xyz\"").is_err());
    }
}
