//! Scratch files for one test: a fresh folder of its own under the system's temporary folder,
//! named after the test and this process, so parallel tests and runs never share one.

use std::path::{Path, PathBuf};

/// A fresh, empty folder for the test named `test`.
pub fn scratch_folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vane-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch folder");
    dir
}

/// Writes `bytes` to the file `name` in `folder`, answering its path.
pub fn write_file(folder: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = folder.join(name);
    std::fs::write(&path, bytes).expect("write a scratch file");
    path
}
