//! Private files and directories: everything keyaudit creates is 0600 (files) or 0700
//! (directories), and files that matter are replaced atomically.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Creates `dir` and its missing parents with mode 0700 (existing ones are left alone).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Creates `path` if missing with mode 0600, and tightens an existing file to 0600.
///
/// An existing file is not opened: a cache may be open in this process already, and
/// closing any descriptor of a file drops every POSIX lock the process holds on it
/// (see [`read_head`]). A file it creates stays open for the life of the process.
pub fn touch_private_file(path: &Path) -> io::Result<()> {
    if path.exists() {
        return restrict_file(path);
    }
    let mut o = OpenOptions::new();
    // Readable too: `read_head` reads through the held descriptor.
    o.create(true).read(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    hold(o.open(path)?);
    restrict_file(path)
}

/// Descriptors of cache files this process opened itself, kept open until it exits.
static HELD: std::sync::Mutex<Vec<fs::File>> = std::sync::Mutex::new(Vec::new());

fn hold(f: fs::File) {
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(f);
}

/// Reads the first bytes of `path` into `buf` (fewer at the end of the file); returns
/// how many. The descriptor is never closed: SQLite's locks are POSIX advisory locks,
/// which the kernel drops, for the whole process, when any descriptor of the file is
/// closed. A reader of a cache whose lock vanished that way lets another process take
/// the file, checkpoint and remove the write-ahead log under it ("file is not a
/// database"). One descriptor per file (by device and inode) is kept.
pub fn read_head(path: &Path, buf: &mut [u8]) -> io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let meta = fs::metadata(path)?;
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        let found = held.iter().position(|f| {
            f.metadata()
                .is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
        });
        let i = match found {
            Some(i) => i,
            None => {
                held.push(fs::File::open(path)?);
                held.len() - 1
            }
        };
        let f = &held[i];
        let mut n = 0;
        while n < buf.len() {
            match f.read_at(&mut buf[n..], n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
    #[cfg(not(unix))]
    {
        use std::io::Read;
        let mut f = fs::File::open(path)?;
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// Sets mode 0600 on an existing file (no-op where it does not exist).
pub fn restrict_file(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if path.exists() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Opens a new private file for writing; refuses to replace an existing one unless
/// `overwrite`.
pub fn create_private_file(path: &Path, overwrite: bool) -> io::Result<fs::File> {
    let mut o = OpenOptions::new();
    o.write(true);
    if overwrite {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path)?;
    restrict_file(path)?;
    Ok(f)
}

/// What an atomic write does when its target already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace it: readers see the old content or the new, never a mix.
    Replace,
    /// Leave it alone and fail with [`io::ErrorKind::AlreadyExists`] (no window for a
    /// race: the move itself refuses).
    Refuse,
}

/// Writes `path` atomically: `write` fills a private (0600) temporary file with an
/// unpredictable name in `path`'s directory, which is then synced and moved to `path`.
/// A crash or an error (of the file or of `write`) leaves the old file and no temporary
/// one.
///
/// `write` gets the file itself, unbuffered, so that secret bytes leave no copy in a
/// buffer; callers that write many small pieces wrap it in their own `BufWriter`. The
/// outer error is the file's; the inner result is `write`'s, and when it is an error
/// nothing is moved.
pub fn write_atomic_with<T, E>(
    path: &Path,
    existing: Existing,
    write: impl FnOnce(&mut dyn Write) -> Result<T, E>,
) -> io::Result<Result<T, E>> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    // tempfile creates it 0600; this also holds under an unusual umask.
    restrict_file(tmp.path())?;
    let value = match write(tmp.as_file_mut()) {
        Ok(v) => v,
        // Dropping `tmp` removes the temporary file.
        Err(e) => return Ok(Err(e)),
    };
    tmp.as_file().sync_all()?;
    match existing {
        Existing::Replace => tmp.persist(path),
        Existing::Refuse => tmp.persist_noclobber(path),
    }
    .map_err(|e| e.error)?;
    Ok(Ok(value))
}

/// Writes `bytes` to `path` atomically, replacing an existing file
/// ([`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, Existing::Replace, |f| f.write_all(bytes))?
}

/// Writes `bytes` to a new file `path` atomically; fails with
/// [`io::ErrorKind::AlreadyExists`] and leaves an existing file alone
/// ([`write_atomic_with`]).
pub fn write_new_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, Existing::Refuse, |f| f.write_all(bytes))?
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_is_private_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn atomic_new_file_refuses_to_replace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new.txt");
        write_new_atomic(&p, b"one").unwrap();
        let err = write_new_atomic(&p, b"two").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        write_atomic(&p, b"old").unwrap();
        let r = write_atomic_with(&p, Existing::Replace, |f| {
            f.write_all(b"half")?;
            Err::<(), io::Error>(io::Error::other("stopped"))
        })
        .unwrap();
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn create_private_file_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.txt");
        create_private_file(&p, false).unwrap();
        let err = create_private_file(&p, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }
}
