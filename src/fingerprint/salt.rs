//! The per-project salt that turns secrets into keyed hashes.
//!
//! A fingerprint must change when a secret changes, yet must not let anyone who sees it
//! (in state, cache metadata, CI logs) test guesses of the value offline. So a secret enters
//! a key only as sha256(salt ‖ value), where the salt is 32 random bytes created once per
//! project at `<state dir>/salt` and never leaves the machine.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// File name of the salt under the state directory.
pub const FILE_NAME: &str = "salt";

/// Why the salt could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum SaltError {
    #[error("cannot read the secret salt {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "the secret salt {path} is malformed (expected 64 hex digits); delete it to make a new one"
    )]
    Malformed { path: PathBuf },
    #[error("cannot create the secret salt {path}")]
    Create { path: PathBuf, source: io::Error },
}

/// A loaded project salt.
#[derive(Clone, PartialEq, Eq)]
pub struct Salt([u8; 32]);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(..)")
    }
}

impl Salt {
    /// Reads `<state_dir>/salt`, creating it with fresh random bytes on first use. Two
    /// processes racing to create it agree on whichever landed first.
    pub fn load_or_create(state_dir: &Path) -> Result<Salt, SaltError> {
        let path = state_dir.join(FILE_NAME);
        match Salt::read(&path)? {
            Some(salt) => Ok(salt),
            None => {
                let created = Salt(random_bytes().map_err(|source| SaltError::Create {
                    path: path.clone(),
                    source,
                })?);
                let create = |source| SaltError::Create {
                    path: path.clone(),
                    source,
                };
                let mut tmp = crate::fsutil::temp_beside(&path).map_err(create)?;
                tmp.write_all(hex::encode(created.0).as_bytes())
                    .map_err(create)?;
                tmp.as_file().sync_all().map_err(create)?;
                match tmp.persist_noclobber(&path) {
                    Ok(_) => Ok(created),
                    Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                        Salt::read(&path)?.ok_or(SaltError::Malformed { path })
                    }
                    Err(e) => Err(create(e.error)),
                }
            }
        }
    }

    /// A salt from fixed bytes, for tests and for callers that keep it elsewhere.
    pub fn from_bytes(bytes: [u8; 32]) -> Salt {
        Salt(bytes)
    }

    /// The keyed hash standing in for a secret value: sha256(salt ‖ value), hex.
    pub fn keyed_hash(&self, value: &[u8]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.0);
        hasher.update(value);
        hex::encode(hasher.finalize())
    }

    fn read(path: &Path) -> Result<Option<Salt>, SaltError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SaltError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| SaltError::Malformed {
            path: path.to_path_buf(),
        })?;
        Ok(Some(Salt(bytes)))
    }
}

fn random_bytes() -> io::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_is_created_once_and_reused() {
        let state = tempfile::tempdir().unwrap();
        let a = Salt::load_or_create(state.path()).unwrap();
        let b = Salt::load_or_create(state.path()).unwrap();
        assert_eq!(a, b);
        let other = tempfile::tempdir().unwrap();
        let c = Salt::load_or_create(other.path()).unwrap();
        assert_ne!(a, c, "each project has its own salt");
        assert_ne!(a.keyed_hash(b"pw"), c.keyed_hash(b"pw"));
    }

    #[test]
    fn keyed_hash_depends_on_value_and_hides_it() {
        let salt = Salt::from_bytes([1; 32]);
        assert_ne!(salt.keyed_hash(b"one"), salt.keyed_hash(b"two"));
        assert_eq!(salt.keyed_hash(b"one"), salt.keyed_hash(b"one"));
        assert!(!salt.keyed_hash(b"hunter2").contains("hunter2"));
        assert_eq!(format!("{salt:?}"), "Salt(..)");
    }

    #[test]
    fn malformed_salt_is_reported() {
        let state = tempfile::tempdir().unwrap();
        fs::write(state.path().join(FILE_NAME), "zz").unwrap();
        let err = Salt::load_or_create(state.path()).unwrap_err();
        assert!(matches!(err, SaltError::Malformed { .. }));
    }
}
