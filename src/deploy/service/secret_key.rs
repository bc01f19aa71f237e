//! The key that encrypts deploy secrets at rest (FTP passwords, provider tokens, webhook
//! secrets), and the sealing itself: XChaCha20-Poly1305 with a random 192-bit nonce per value,
//! so the database alone reveals none of them.
//!
//! The key comes from `FERRY_SECRET_KEY` (base64 of 32 bytes) or from a key file holding the
//! same, created with mode 0600 on first use. Losing the key loses the secrets (they must be
//! entered again), never the rest of the database.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
/// A sealed value starts with this version byte, so the format can change later.
const FORMAT_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    #[error("cannot read the secret key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the secret key file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the secret key {origin} is not base64 of {KEY_BYTES} bytes; \
         generate one with: head -c 32 /dev/urandom | base64"
    )]
    Invalid { origin: String },
    #[error(
        "a stored secret cannot be decrypted: the secret key is not the one it was saved with \
         (set it again with `ferry deploy service edit`), or the database was altered"
    )]
    Decrypt,
}

/// The 256-bit key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// A key from its base64 text (`FERRY_SECRET_KEY`, or a key file's content).
    pub fn from_base64(text: &str, origin: &str) -> Result<Self, SecretKeyError> {
        let invalid = || SecretKeyError::Invalid {
            origin: origin.to_owned(),
        };
        let bytes = BASE64.decode(text.trim()).map_err(|_| invalid())?;
        let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| invalid())?;
        Ok(Self::from_bytes(&bytes))
    }

    pub fn from_bytes(bytes: &[u8; KEY_BYTES]) -> Self {
        SecretKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }

    /// A fresh random key.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        (Self::from_bytes(&bytes), BASE64.encode(bytes))
    }

    /// The key in `path`, or a new one written there (mode 0600, never overwriting a file that
    /// appeared meanwhile).
    pub fn load_or_create(path: &Path) -> Result<Self, SecretKeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text, &format!("in {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, text) = Self::generate();
                let create = |source| SecretKeyError::Create {
                    path: path.to_owned(),
                    source,
                };
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(path) {
                    Ok(mut file) => {
                        file.write_all(format!("{text}\n").as_bytes())
                            .and_then(|()| file.sync_all())
                            .map_err(create)?;
                        tracing::info!(path = %path.display(), "created the deploy secret key");
                        Ok(key)
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(create(e)),
                }
            }
            Err(source) => Err(SecretKeyError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The default key file for a database: beside it, named after it.
    pub fn default_path(db: &Path) -> PathBuf {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".secret-key");
        db.with_file_name(name)
    }

    /// Encrypts `plaintext`; `context` (such as the column it goes to) must be given again to
    /// open it, so a sealed value cannot be moved to another place and still decrypt.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message that fits in memory");
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, SecretKeyError> {
        let [FORMAT_V1, rest @ ..] = sealed else {
            return Err(SecretKeyError::Decrypt);
        };
        if rest.len() < NONCE_BYTES {
            return Err(SecretKeyError::Decrypt);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretKeyError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let (key, _) = SecretKey::generate();
        let sealed = key.seal(b"hunter2", "ftp_password");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(key.open(&sealed, "ftp_password").unwrap(), b"hunter2");
        assert!(key.open(&sealed, "webhook_secret").is_err());
        let (other, _) = SecretKey::generate();
        assert!(other.open(&sealed, "ftp_password").is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open(&tampered, "ftp_password").is_err());
        assert!(key.open(&sealed[..10], "ftp_password").is_err());
        assert!(key.open(&[], "ftp_password").is_err());
        // Two seals of one value differ (random nonces).
        assert_ne!(key.seal(b"hunter2", "ftp_password"), sealed);
    }

    #[test]
    fn key_file_is_created_private_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = SecretKey::default_path(&dir.path().join("ferry.db"));
        assert_eq!(path, dir.path().join("ferry.db.secret-key"));
        let first = SecretKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = SecretKey::load_or_create(&path).unwrap();
        let sealed = first.seal(b"x", "c");
        assert_eq!(second.open(&sealed, "c").unwrap(), b"x");
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(SecretKey::from_base64("not base64!", "in FERRY_SECRET_KEY").is_err());
        assert!(SecretKey::from_base64(&BASE64.encode([0u8; 16]), "x").is_err());
        assert!(SecretKey::from_base64(&BASE64.encode([7u8; 32]), "x").is_ok());
    }
}
