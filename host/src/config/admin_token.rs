//! The admin API's bearer token, read from the file `admin_token_file` names (never from the
//! config text, which is often kept in a repository). Only the token's SHA-256 digest is kept.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The shortest token accepted: shorter ones can be guessed.
pub const MIN_TOKEN_LENGTH: usize = 16;

/// The admin API's bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// The file it was read from.
    pub path: PathBuf,
    /// Whether users other than the file's owner may read it (worth a warning).
    pub readable_by_others: bool,
    digest: [u8; 32],
}

impl AdminToken {
    /// Reads the token from `path`: the file's text without surrounding whitespace (so the
    /// newline `echo` writes does not count), at least [`MIN_TOKEN_LENGTH`] visible ASCII
    /// characters, as an `Authorization: Bearer` header carries them.
    pub fn read(path: &Path) -> Result<AdminToken, String> {
        let bytes =
            std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let token = bytes.trim_ascii();
        if token.len() < MIN_TOKEN_LENGTH {
            return Err(format!(
                "{} holds a token of {} characters; use at least {MIN_TOKEN_LENGTH} (for \
                 example: openssl rand -hex 32 > {})",
                path.display(),
                token.len(),
                path.display()
            ));
        }
        if !token.iter().all(u8::is_ascii_graphic) {
            return Err(format!(
                "{} holds a token with spaces or bytes that are not visible ASCII",
                path.display()
            ));
        }
        Ok(AdminToken {
            path: path.to_owned(),
            readable_by_others: readable_by_others(path),
            digest: Sha256::digest(token).into(),
        })
    }

    /// The SHA-256 digest of the token.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o044 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> bool {
    false
}
