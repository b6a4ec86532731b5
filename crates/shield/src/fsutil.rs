//! Atomic file replacement: a unique temp file in the same directory, fsync, rename.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Replace `path` with `contents` atomically; readers see the old or the new file, never a
/// part. `mode` sets the permission bits of the new file.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let io = |e| Error::io(path, e);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(contents).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Create `dir` (and its parents) and force it to mode 0700, whatever the umask.
pub fn mkdir_700(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(dir, e))
}

/// Open (creating, mode 0600, never truncating) a lock file; the caller takes the lock.
pub fn open_lock_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Open `path` for appending (created with mode 0600, never through a symlink): the logs a
/// bundle keeps (`audit.jsonl`, `hook-error.log`, `reader.log`, …).
pub fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
}

/// Open the log `path` for appending like [`open_append`], first moving it to `<path>.1`
/// (replacing the older generation) when it holds more than `max` bytes: a log is at most
/// about twice `max` on disk. Concurrent writers rotate once: the one holding the old
/// file's lock renames it only while the path still names that file; a writer that opened
/// the old file before the rename appends its line there, so no line is lost.
pub fn open_append_rotating(path: &Path, max: u64) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::MetadataExt;
    let file = open_append(path)?;
    let meta = file.metadata()?;
    if meta.len() <= max {
        return Ok(file);
    }
    let locked =
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))?;
    let same = std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == meta.ino() && m.dev() == meta.dev());
    if same {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(path, old)?;
    }
    drop(locked);
    open_append(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_rotate_once_past_their_limit() -> Result<()> {
        use std::io::Write as _;
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let p = dir.path().join("log");
        let io = |e| Error::io("log", e);
        for _ in 0..10 {
            open_append_rotating(&p, 25).and_then(|mut f| f.write_all(b"0123456789\n")).map_err(io)?;
        }
        let current = std::fs::read(&p).map_err(io)?.len();
        let old = std::fs::read(dir.path().join("log.1")).map_err(io)?.len();
        // 11-byte lines, rotated once the file is past 25 bytes (at 33): 10 lines leave one
        // in the log and three in the older generation.
        assert_eq!((current, old), (11, 33));
        Ok(())
    }

    #[test]
    fn replaces_atomically_with_mode() -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let p = dir.path().join("f");
        write_atomic(&p, b"one", 0o600)?;
        write_atomic(&p, b"two", 0o600)?;
        assert_eq!(std::fs::read(&p).map_err(|e| Error::io(&p, e))?, b"two");
        let mode = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0), 1, "no temp file left");
        Ok(())
    }
}
