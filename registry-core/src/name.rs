//! Repository names, tags and references, per the distribution spec.
//!
//! A [`RepositoryName`] follows
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*` and is at most
//! [`RepositoryName::MAX_LEN`] bytes. By construction it has no empty component, no `.` or `..`
//! component, no leading or trailing `/`, and only `[a-z0-9._/-]`: it can be used as a relative
//! path that never leaves the directory it is joined to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Digest;
use crate::error::{Error, quote};

/// A validated repository name, e.g. `library/alpine`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// The longest name accepted, in bytes (as distribution's reference package).
    pub const MAX_LEN: usize = 255;

    /// Parses and validates a name.
    pub fn parse(input: &str) -> Result<RepositoryName, Error> {
        let invalid = |reason| Error::InvalidName { input: quote(input), reason };
        if input.is_empty() {
            return Err(invalid("empty name"));
        }
        if input.len() > Self::MAX_LEN {
            return Err(invalid("longer than 255 characters"));
        }
        for component in input.split('/') {
            check_component(component).map_err(invalid)?;
        }
        Ok(RepositoryName(input.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path components, e.g. `["library", "alpine"]`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The first component: the project in Harbor's model (`library` for `library/alpine`).
    pub fn first_component(&self) -> &str {
        project_of(&self.0)
    }
}

/// The project of a repository named `repository`: its first path component (Harbor's model;
/// `library` for `library/alpine`, the whole name for one of a single component). Every layer
/// (quotas, listings, events, policies) finds a repository's project with this.
pub fn project_of(repository: &str) -> &str {
    repository.split('/').next().unwrap_or(repository)
}

/// Checks one path component against `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_component(component: &str) -> Result<(), &'static str> {
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return Err("empty path component");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) {
        return Err("each component must start with [a-z0-9]");
    }
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-+", then a [a-z0-9] must follow.
        let start = i;
        match b {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            b'A'..=b'Z' => return Err("uppercase letters are not allowed"),
            _ => return Err("only [a-z0-9] and the separators '.', '_', '__', '-' are allowed"),
        }
        if i >= bytes.len() {
            return Err("a component cannot end with a separator");
        }
        if !alnum(bytes[i]) {
            return Err(if i - start >= 1 && matches!(bytes[i], b'.' | b'_' | b'-') {
                "separators cannot be combined"
            } else {
                "only [a-z0-9] and the separators '.', '_', '__', '-' are allowed"
            });
        }
    }
    Ok(())
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepositoryName({})", self.0)
    }
}

impl FromStr for RepositoryName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        RepositoryName::parse(s)
    }
}

impl AsRef<str> for RepositoryName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A validated tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// The longest tag accepted, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Parses and validates a tag.
    pub fn parse(input: &str) -> Result<Tag, Error> {
        let bytes = input.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
            && bytes[1..].iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok { Ok(Tag(input.to_owned())) } else { Err(Error::InvalidTag { input: quote(input) }) }
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.0)
    }
}

impl FromStr for Tag {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Tag::parse(s)
    }
}

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A tag, e.g. `latest`.
    Tag(Tag),
    /// A digest, e.g. `sha256:…`.
    Digest(Digest),
}

impl Reference {
    /// Parses a reference: a digest if it contains `:`, a tag otherwise.
    pub fn parse(input: &str) -> Result<Reference, Error> {
        if input.contains(':') {
            Digest::parse(input).map(Reference::Digest)
        } else {
            Tag::parse(input).map(Reference::Tag)
        }
    }

    /// The digest, if this is one.
    pub fn as_digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }

    /// The tag, if this is one.
    pub fn as_tag(&self) -> Option<&Tag> {
        match self {
            Reference::Tag(t) => Some(t),
            Reference::Digest(_) => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Reference::parse(s)
    }
}

macro_rules! serde_via_str {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                <$ty>::from_str(&s).map_err(serde::de::Error::custom)
            }
        }
    )*};
}
serde_via_str!(RepositoryName, Tag, Reference);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for name in [
            "a",
            "library/alpine",
            "a/b/c/d/e",
            "my-app",
            "my--app",
            "my.app",
            "my_app",
            "my__app",
            "a0.b1_c2__d3-e4---f5",
            "0",
            "harbor.example/project/app",
        ] {
            let n = RepositoryName::parse(name).expect(name);
            assert_eq!(n.as_str(), name);
        }
        assert_eq!(RepositoryName::parse("library/app").expect("valid").first_component(), "library");
        RepositoryName::parse(&"a".repeat(255)).expect("255 is the limit");
    }

    #[test]
    fn invalid_names() {
        for name in [
            "",
            "/",
            "a/",
            "/a",
            "a//b",
            "..",
            ".",
            "a/../b",
            "a/./b",
            "../a",
            "Library/alpine",
            "library/Alpine",
            "a___b",
            "a_-b",
            "a.-b",
            "a..b",
            "-a",
            "a-",
            "a.",
            "_a",
            "a b",
            "a%2fb",
            "a\\b",
            "a:b",
            "a@b",
            "é",
            "a\0b",
        ] {
            assert!(matches!(RepositoryName::parse(name), Err(Error::InvalidName { .. })), "{name:?}");
        }
        assert!(RepositoryName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags() {
        for tag in ["latest", "v1.0.0", "_x", "A-b_c.d", "0"] {
            assert_eq!(Tag::parse(tag).expect(tag).as_str(), tag);
        }
        Tag::parse(&"a".repeat(128)).expect("128 is the limit");
        for tag in ["", ".a", "-a", "a/b", "a:b", "a b", "é", &"a".repeat(129)] {
            assert!(Tag::parse(tag).is_err(), "{tag:?}");
        }
    }

    #[test]
    fn references() {
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(Reference::parse(d), Ok(Reference::Digest(_))));
        assert!(matches!(Reference::parse("sha256:abc"), Err(Error::InvalidDigest { .. })));
        assert!(matches!(Reference::parse("../x"), Err(Error::InvalidTag { .. })));
        assert_eq!(Reference::parse(d).expect("valid").to_string(), d);
    }

    #[test]
    fn serde_round_trips() {
        let n = RepositoryName::parse("library/app").expect("valid");
        let json = serde_json::to_string(&n).expect("ser");
        assert_eq!(serde_json::from_str::<RepositoryName>(&json).expect("de"), n);
        assert!(serde_json::from_str::<RepositoryName>("\"A\"").is_err());
    }
}
