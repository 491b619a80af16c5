//! Secrets kept at rest that must be recoverable (a webhook's `Authorization` header and signing
//! secret; later, remote registries' credentials): sealed with AES-256-GCM under a key kept apart
//! from the database (a file of the server's, or one the embedder supplies), so a copy of the
//! database alone does not reveal them.
//!
//! A sealed value is `v1.` and the base64url of a random 96-bit nonce followed by the ciphertext
//! and its tag.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file could not be read or made.
    #[error("secret key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key is not 32 bytes.
    #[error("a secret key is 32 bytes (64 hex digits), this one is {0} bytes")]
    KeyLength(usize),
    /// The value was sealed under another key, or altered.
    #[error("a sealed secret does not open with this server's key (sealed under another key, or altered)")]
    Open,
    /// No randomness.
    #[error("the system's random source failed")]
    Random,
}

/// The key secrets are sealed with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SecretKey {
    key: [u8; 32],
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Result<SecretKey, SealError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| SealError::Random)?;
        Ok(SecretKey { key })
    }

    /// The key of 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, SealError> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::KeyLength(bytes.len()))?;
        Ok(SecretKey { key })
    }

    /// The key's bytes (to store it where replicas share it).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key
    }

    /// The key in `path` (64 hex digits), made (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, SealError> {
        let file_err = |source| SealError::KeyFile { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex_decode(text.trim()).ok_or(SealError::KeyLength(text.trim().len() / 2))?;
                SecretKey::from_bytes(&bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SecretKey::generate()?;
                let hex: String = key.key.iter().map(|b| format!("{b:02x}")).collect();
                write_private(path, &hex).map_err(file_err)?;
                Ok(key)
            }
            Err(e) => Err(file_err(e)),
        }
    }

    fn cipher(&self) -> LessSafeKey {
        // A 32-byte key always makes an AES-256 key.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.key).unwrap_or_else(|_| unreachable!("32-byte key")))
    }

    /// `plaintext` sealed.
    pub fn seal(&self, plaintext: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut data = plaintext.as_bytes().to_vec();
        self.cipher()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .map_err(|_| SealError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("v1.{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// The plaintext of a sealed value.
    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let bytes = sealed.strip_prefix("v1.").and_then(|b| URL_SAFE_NO_PAD.decode(b).ok()).ok_or(SealError::Open)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut data = data.to_vec();
        let plain = self.cipher().open_in_place(nonce, Aad::empty(), &mut data).map_err(|_| SealError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Open)
    }
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_only() {
        let key = SecretKey::generate().expect("key");
        let sealed = key.seal("Bearer s3cret").expect("seal");
        assert!(!sealed.contains("s3cret"));
        assert_ne!(sealed, key.seal("Bearer s3cret").expect("seal"), "a fresh nonce each time");
        assert_eq!(key.open(&sealed).expect("open"), "Bearer s3cret");
        let other = SecretKey::generate().expect("key");
        assert!(matches!(other.open(&sealed), Err(SealError::Open)));
        let mut altered = sealed.clone();
        altered.pop();
        assert!(key.open(&altered).is_err());
        assert_eq!(format!("{key:?}"), "SecretKey(…)");
    }

    #[test]
    fn the_key_file_is_made_once_and_read_after() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("secret.key");
        let made = SecretKey::load_or_create(&path).expect("make");
        let read = SecretKey::load_or_create(&path).expect("read");
        assert_eq!(made.to_bytes(), read.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "abcd").expect("write");
        assert!(matches!(SecretKey::load_or_create(&path), Err(SealError::KeyLength(2))));
    }
}
