//! The one way Cairn replaces a small state file (topic registry, log start offsets, ACLs,
//! credentials, dynamic configs, client quotas): write a temporary file beside it, fsync it,
//! rename it over the old one, fsync the directory. A crash leaves the old content or the new,
//! never a mix; a temporary file left by a crash is never read and the next write reuses it.
//!
//! Knows nothing of what the files hold.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Durably replaces `dir/name` with `bytes`. The temporary file is `dir/name.tmp`.
pub fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Makes a directory's entries (a rename, a new or removed file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_reuses_a_leftover_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("state.json.tmp"),
            b"half-written garbage from a crash",
        )
        .unwrap();
        replace(dir.path(), "state.json", b"one").unwrap();
        replace(dir.path(), "state.json", b"two").unwrap();
        assert_eq!(fs::read(dir.path().join("state.json")).unwrap(), b"two");
        assert!(!dir.path().join("state.json.tmp").exists());
    }
}
