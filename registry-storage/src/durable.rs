//! Making changes to a local filesystem durable: what survives a power cut, not only a crash of
//! the process.
//!
//! POSIX makes a file's data durable with `fsync` of the file, and a *name* (a create, a rename,
//! an unlink, a new directory) durable only with `fsync` of the directory that holds it. A
//! process killed with `SIGKILL` loses neither (the kernel still holds both); a machine that loses
//! power loses whatever was not synced. These helpers are the embedded default's three ways of
//! making a name durable; `testkit::powercut` is the filesystem the power-cut loop checks them on.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

/// Serializes directory creation, so that a directory another thread has just created is never
/// used before its name is durable (see [`create_dirs`]).
static CREATING: Mutex<()> = Mutex::new(());

/// `fsync` of a directory: the names in it (creates, renames, unlinks) become durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing parents, each made durable before this returns: a new
/// directory's name lives in its parent, so the parent is synced after each creation. Without
/// that, a power cut can drop a whole new directory, and every blob already published into it
/// with only the directory itself synced. Creation is serialized (under a lock, checked again
/// inside it), so that no thread finds a directory another one created and has not made durable
/// yet; a directory that was there when the process started is durable already (what a restart
/// after a cut finds is what the disk kept).
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() && !creating() {
        return Ok(());
    }
    let _guard = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    create_dirs_locked(dir)
}

/// Whether a creation is under way (then an existing directory may not be durable yet).
fn creating() -> bool {
    CREATING.try_lock().is_err()
}

fn create_dirs_locked(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dirs_locked(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(e),
    }
    sync_dir(parent.unwrap_or(Path::new(".")))
}

/// Replaces `path` with `bytes` atomically and durably: written to a temporary name beside it,
/// synced, renamed over it, and the directory synced. A cut at any instant leaves the old file or
/// the new one, never a truncated one (a key file cut in half would stop the server starting).
/// `mode` sets the new file's permission bits (Unix).
pub fn write_file(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io::Error::other("a file path without a name"))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), uuid::Uuid::new_v4()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if let Some(mode) = mode {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let written = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_nested_directories_and_replaces_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let deep = root.path().join("a/b/c");
        create_dirs(&deep).expect("create");
        create_dirs(&deep).expect("again");
        assert!(deep.is_dir());
        let file = deep.join("key.pem");
        write_file(&file, b"one", Some(0o600)).expect("write");
        write_file(&file, b"two", Some(0o600)).expect("replace");
        assert_eq!(std::fs::read(&file).expect("read"), b"two");
        assert_eq!(std::fs::read_dir(&deep).expect("list").count(), 1, "no temporary file left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777, 0o600);
        }
    }
}
