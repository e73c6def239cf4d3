//! The one way Cairn replaces a small state file (topic registry, log start offsets, ACLs,
//! credentials, dynamic configs, client quotas): write a temporary file beside it, fsync it,
//! rename it over the old one, fsync the directory. A crash leaves the old content or the new,
//! never a mix; a temporary file left by a crash is never read and the next write reuses it.
//!
//! Knows nothing of what the files hold.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A state file that could not be read, written or trusted, named by its path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {reason}", file.display())]
    Damaged { file: PathBuf, reason: String },
}

impl FileError {
    /// For `map_err`: an I/O error on `file`.
    pub fn io(file: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
        move |source| FileError::Io {
            file: file.to_owned(),
            source,
        }
    }

    pub fn damaged(file: &Path, reason: impl Into<String>) -> FileError {
        FileError::Damaged {
            file: file.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A state file's bytes, `None` if it does not exist. Larger than `max` is refused before
/// anything is parsed: a damaged or hostile file must not make the broker allocate without bound.
pub fn read_bounded(file: &Path, max: u64) -> Result<Option<Vec<u8>>, FileError> {
    let f = match File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::io(file)(e)),
    };
    let mut bytes = Vec::new();
    // One byte past the cap tells a too-large file from one exactly at it.
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(FileError::io(file))?;
    if bytes.len() as u64 > max {
        return Err(FileError::damaged(file, format!("larger than {max} bytes")));
    }
    Ok(Some(bytes))
}

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
    fn reads_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        assert!(read_bounded(&f, 4).unwrap().is_none());
        fs::write(&f, b"1234").unwrap();
        assert_eq!(read_bounded(&f, 4).unwrap().unwrap(), b"1234");
        fs::write(&f, b"12345").unwrap();
        assert!(matches!(
            read_bounded(&f, 4),
            Err(FileError::Damaged { .. })
        ));
    }

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
