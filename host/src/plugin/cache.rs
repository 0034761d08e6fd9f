//! Compiled plugins cached on disk, keyed by the plugin's content hash and the engine's
//! compatibility hash, so restarts and swaps back to a known plugin skip compilation.
//!
//! Loading a cached artifact runs its machine code, so the cache must not be a way in: the
//! folder must belong to vane's user and be writable by no one else, every entry carries a
//! SHA-256 of itself that is checked before use, and an entry that fails the check, or that
//! wasmtime finds was made by another engine version or configuration, is removed and rebuilt
//! from the `.wasm`.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// What every entry starts with: the format, then the SHA-256 of the rest.
const MAGIC: &[u8] = b"vane-compiled-plugin-v1\n";

/// A folder of compiled plugins that only vane's user can write.
#[derive(Debug, Clone)]
pub struct PluginCache {
    folder: PathBuf,
}

/// Why a cache folder cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use {} as the plugin cache: {reason}", folder.display())]
pub struct CacheError {
    folder: PathBuf,
    reason: String,
}

impl PluginCache {
    /// Opens (creating it with mode 0700 if missing) the cache folder `folder`, refusing one
    /// that is a symlink, belongs to another user, or that others may write.
    pub fn open(folder: &Path) -> Result<Self, CacheError> {
        let refuse = |reason: String| CacheError {
            folder: folder.to_owned(),
            reason,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)
            .map_err(|err| refuse(format!("cannot create it: {err}")))?;
        let meta = fs::symlink_metadata(folder).map_err(|err| refuse(err.to_string()))?;
        if !meta.is_dir() {
            return Err(refuse(
                "it is not a folder (a symlink is not accepted)".into(),
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "others may write to it (mode {:o}); run `chmod go-w {}`",
                meta.mode() & 0o777,
                folder.display()
            )));
        }
        let own = fs::metadata("/proc/self").map(|me| me.uid()).ok();
        if own.is_some_and(|uid| uid != meta.uid()) {
            return Err(refuse(format!(
                "it belongs to user {}, not to vane's",
                meta.uid()
            )));
        }
        Ok(PluginCache {
            folder: folder.to_owned(),
        })
    }

    /// The component for `wasm` (whose SHA-256 in hex is `sha256`): from the cache if a sound
    /// entry is there, else compiled and stored. Cache trouble is logged and never fatal.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<Component> {
        let entry = self.entry(engine, sha256);
        if let Some(component) = self.load(engine, &entry) {
            return Ok(component);
        }
        let compiled = engine.precompile_component(wasm)?;
        if let Err(err) = store(&entry, &compiled) {
            tracing::warn!(entry = %entry.display(), error = %err, "cannot write to the plugin cache");
        }
        deserialize(engine, &compiled)
    }

    /// The entry's path: the plugin's hash and the engine's compatibility hash.
    fn entry(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.folder
            .join(format!("{sha256}-{:016x}.cwasm", hasher.finish()))
    }

    /// A sound entry's component; an unsound one is removed.
    fn load(&self, engine: &Engine, entry: &Path) -> Option<Component> {
        let bytes = fs::read(entry).ok()?;
        let verdict = match checked(&bytes) {
            Some(compiled) => deserialize(engine, compiled).map_err(|err| format!("{err:#}")),
            None => Err("its checksum does not match its content".to_owned()),
        };
        match verdict {
            Ok(component) => Some(component),
            Err(reason) => {
                tracing::warn!(entry = %entry.display(), %reason, "discarding a plugin cache entry; recompiling");
                let _ = fs::remove_file(entry);
                None
            }
        }
    }
}

/// The compiled bytes of an entry, if its magic and checksum are right.
fn checked(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(MAGIC)?;
    let (digest, compiled) = rest.split_at_checked(32)?;
    (Sha256::digest(compiled).as_slice() == digest).then_some(compiled)
}

/// An entry's bytes: the magic line, the SHA-256 of the compiled code, the code.
fn encoded(compiled: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(MAGIC.len() + 32 + compiled.len());
    entry.extend_from_slice(MAGIC);
    entry.extend_from_slice(&Sha256::digest(compiled));
    entry.extend_from_slice(compiled);
    entry
}

/// Writes an entry beside its final name and renames it into place, so a reader never sees
/// half an entry; only vane's user may read or write it.
fn store(entry: &Path, compiled: &[u8]) -> std::io::Result<()> {
    let partial = entry.with_extension(format!("partial-{}", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(&encoded(compiled))?;
    file.sync_all()?;
    fs::rename(&partial, entry)
}

/// Loads compiled code made by `precompile_component`.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, compiled: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `compiled` is what this engine's `precompile_component` produced, either just
    // now or read back from a folder only vane's user can write, and its SHA-256 has been
    // checked; wasmtime itself refuses code made by another version or configuration.
    unsafe { Component::deserialize(engine, compiled) }
}

/// Feeds `Hash` into SHA-256, so the engine's compatibility hash names the same file in every
/// run (std's hasher makes no such promise).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("a digest has 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    fn folder(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vane-cache-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn an_entry_is_stored_then_reused_and_a_corrupt_one_is_rebuilt() {
        let engine = engine();
        let cache = PluginCache::open(&folder("reuse")).unwrap();
        let wasm = wat_component();
        cache.load_or_compile(&engine, &wasm, "abc").unwrap();
        let entry = cache.entry(&engine, "abc");
        let stored = fs::read(&entry).unwrap();
        assert!(checked(&stored).is_some());
        assert!(
            cache.load(&engine, &entry).is_some(),
            "a sound entry is used"
        );

        let mut corrupt = stored.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        fs::write(&entry, &corrupt).unwrap();
        assert!(
            cache.load(&engine, &entry).is_none(),
            "a corrupt entry is refused"
        );
        assert!(!entry.exists(), "and removed");
        cache.load_or_compile(&engine, &wasm, "abc").unwrap();
        assert_eq!(fs::read(&entry).unwrap(), stored, "and rebuilt");
    }

    #[test]
    fn an_entry_with_a_good_checksum_but_foreign_code_is_discarded() {
        let engine = engine();
        let cache = PluginCache::open(&folder("foreign")).unwrap();
        let entry = cache.entry(&engine, "def");
        store(&entry, b"not code from this engine").unwrap();
        assert!(cache.load(&engine, &entry).is_none());
        assert!(!entry.exists());
    }

    #[test]
    fn a_folder_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = folder("open");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = PluginCache::open(&dir).unwrap_err().to_string();
        assert!(err.contains("others may write to it (mode 777)"), "{err}");
    }

    /// The smallest component: no imports, no exports.
    fn wat_component() -> Vec<u8> {
        // `(component)` in the binary format: magic, version 0x0d, layer 1.
        b"\0asm\x0d\0\x01\0".to_vec()
    }
}

/// The fuzz target for the entry check, which decides whether machine code read from disk is
/// run: whatever the bytes, only an entry exactly as vane writes it gives code back.
#[cfg(fuzzing)]
pub(crate) fn fuzz(data: &[u8]) {
    for entry in [data.to_vec(), [MAGIC, data].concat()] {
        if let Some(compiled) = checked(&entry) {
            assert_eq!(encoded(compiled), entry);
        }
    }
}

/// Properties of the entry check, which decides whether machine code read from disk is run:
/// a whole entry gives back exactly its code, and an entry with any byte changed, any byte
/// missing or anything added is refused.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn only_an_entry_exactly_as_written_is_run(
            compiled in proptest::collection::vec(any::<u8>(), 0..2048),
            at in any::<prop::sample::Index>(),
            flip in 1..=255u8,
            cut in any::<prop::sample::Index>(),
            extra in proptest::collection::vec(any::<u8>(), 1..16),
        ) {
            let entry = encoded(&compiled);
            prop_assert_eq!(checked(&entry), Some(&compiled[..]));

            let mut changed = entry.clone();
            changed[at.index(entry.len())] ^= flip;
            prop_assert_eq!(checked(&changed), None);

            let shorter = &entry[..cut.index(entry.len())];
            prop_assert_eq!(checked(shorter), None);

            let mut longer = entry.clone();
            longer.extend_from_slice(&extra);
            prop_assert_eq!(checked(&longer), None);
        }

        #[test]
        fn no_bytes_make_the_check_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut entry = MAGIC.to_vec();
            entry.extend_from_slice(&bytes);
            let _ = checked(&entry);
            let _ = checked(&bytes);
        }
    }
}
