//! Private files and directories: everything keyaudit creates is 0600 (files) or 0700
//! (directories), and files that matter are replaced atomically.
//!
//! Files are never opened through a symbolic link: a file keyaudit creates or appends to
//! is opened with `O_NOFOLLOW` (or created with `O_EXCL`, which does not follow one
//! either), its mode is set on the open descriptor (`fchmod`), and an atomic write moves
//! a temporary file it created itself over the target (the move replaces a link, never
//! writes through it). keyaudit's own directories are checked at start ([`secure_dir`]):
//! tightened to 0700 when they are the user's, refused when another account owns them.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Creates `dir` and its missing parents with mode 0700 (existing ones are left alone:
/// a directory the user named, such as the one of `--db`, is theirs to set).
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

/// Why one of keyaudit's own directories cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Another account owns it: it could read or replace what keyaudit keeps there.
    #[error(
        "{} belongs to {owner} (uid {owner_uid}), not to you ({me}, uid {me_uid}); keyaudit \
         keeps caches, logs and keys there and does not use a directory another account \
         controls. Fix: have {owner} (or root) move it away, e.g. `mv {} {}.old`, and \
         keyaudit creates its own (0700); or point XDG_DATA_HOME / XDG_STATE_HOME / \
         XDG_CONFIG_HOME (and --db) at directories of yours",
        path.display(),
        path.display(),
        path.display()
    )]
    Foreign {
        path: PathBuf,
        owner: String,
        owner_uid: u32,
        me: String,
        me_uid: u32,
    },
    /// Something that is not a directory is in the way.
    #[error("{} is not a directory; keyaudit keeps its files there. Fix: move it away", path.display())]
    NotDir { path: PathBuf },
    /// It could not be inspected or tightened.
    #[error("cannot secure {}: {source}. Fix: chmod 700 {}", path.display(), path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Checks one of keyaudit's own directories (data, cases, demo sessions, log, config)
/// when it exists: one the user owns with a mode wider than 0700 is tightened to 0700
/// (returns the old mode); one another account owns is refused. A missing directory is
/// left for the code that creates it (0700).
pub fn secure_dir(dir: &Path) -> Result<Option<u32>, DirError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = match fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(DirError::Io {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        };
        if !meta.is_dir() {
            return Err(DirError::NotDir {
                path: dir.to_path_buf(),
            });
        }
        let me = nix::unistd::getuid().as_raw();
        if meta.uid() != me {
            return Err(DirError::Foreign {
                path: dir.to_path_buf(),
                owner: user_name(meta.uid()),
                owner_uid: meta.uid(),
                me: user_name(me),
                me_uid: me,
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 == 0 {
            return Ok(None);
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            DirError::Io {
                path: dir.to_path_buf(),
                source,
            }
        })?;
        Ok(Some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(None)
    }
}

#[cfg(unix)]
fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Opens `path` with `o`, never through a symbolic link (`O_NOFOLLOW`); a link is
/// refused with an error that says so.
/// `nonblock`: also `O_NONBLOCK` (a FIFO put in the file's place does not block).
fn open_no_follow(o: &mut OpenOptions, path: &Path, nonblock: bool) -> io::Result<fs::File> {
    #[cfg(unix)]
    {
        use nix::fcntl::OFlag;
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = OFlag::O_NOFOLLOW;
        if nonblock {
            flags |= OFlag::O_NONBLOCK;
        }
        o.custom_flags(flags.bits());
    }
    #[cfg(not(unix))]
    let _ = nonblock;
    o.open(path).map_err(|e| {
        if !is_link_refusal(&e) {
            return e;
        }
        link_refusal(path)
    })
}

/// The error for a symbolic link where keyaudit writes a file of its own.
fn link_refusal(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a symbolic link; keyaudit does not write through links (one in a \
             shared directory could send its writes to another file). Name the real \
             file instead",
            path.display()
        ),
    )
}

/// True for the error `O_NOFOLLOW` gives on a symbolic link (`ELOOP`).
fn is_link_refusal(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Sets mode 0600 on an open file (`fchmod`: no path, so no link to follow).
fn restrict_open(f: &fs::File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = f;
    Ok(())
}

/// Opens `path` for appending, creating it 0600 if missing and tightening an existing
/// file to 0600; never through a symbolic link.
pub fn open_private_append(path: &Path) -> io::Result<fs::File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = open_no_follow(&mut o, path, false)?;
    restrict_open(&f)?;
    Ok(f)
}

/// Creates `path` if missing with mode 0600, and tightens an existing file to 0600;
/// never through a symbolic link.
///
/// An existing file is not opened: a cache may be open in this process already, and
/// closing any descriptor of a file drops every POSIX lock the process holds on it
/// (see [`read_head`]). A file it creates stays open for the life of the process.
pub fn touch_private_file(path: &Path) -> io::Result<()> {
    if path.symlink_metadata().is_ok() {
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
    let f = open_no_follow(&mut o, path, false)?;
    restrict_open(&f)?;
    hold(f);
    Ok(())
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

/// Sets mode 0600 on an existing regular file (no-op where it does not exist); a
/// symbolic link is not followed (an error), and its target is left alone.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    // Not opened (see `touch_private_file`: closing a descriptor of a cache would drop
    // this process's SQLite locks on it); the link check and the chmod are by path.
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        return Err(link_refusal(path));
    }
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o7777 != 0o600 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Opens a new private file for writing; refuses to replace an existing one unless
/// `overwrite`. Never through a symbolic link.
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
    let f = open_no_follow(&mut o, path, false)?;
    restrict_open(&f)?;
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
    write_atomic_mode(path, existing, 0o600, write)
}

/// Writes `bytes` to `path` atomically with mode 0644: for output meant to be read by
/// others (man pages), never for anything keyaudit keeps.
pub fn write_public_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, Existing::Replace, 0o644, |f| f.write_all(bytes))?
}

fn write_atomic_mode<T, E>(
    path: &Path,
    existing: Existing,
    mode: u32,
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
    // tempfile creates it 0600 (O_EXCL, so never through a link); this also holds under
    // an unusual umask.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
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
    fn no_private_file_is_written_through_a_symbolic_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        fs::write(&victim, b"precious").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for (what, r) in [
            ("touch", touch_private_file(&link)),
            ("append", open_private_append(&link).map(drop)),
            ("overwrite", create_private_file(&link, true).map(drop)),
            ("restrict", restrict_file(&link)),
        ] {
            let e = r.expect_err(what);
            assert!(e.to_string().contains("is a symbolic link"), "{what}: {e}");
        }
        let e = create_private_file(&link, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        // An atomic write replaces the link itself.
        write_atomic(&link, b"new").unwrap();
        assert!(!fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(
            fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o644,
            "the link's target is untouched"
        );
    }

    #[test]
    fn own_directories_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        assert_eq!(secure_dir(&d).unwrap(), None, "missing: left alone");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(secure_dir(&d).unwrap(), Some(0o755));
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(secure_dir(&d).unwrap(), None, "already private");
        let f = dir.path().join("file");
        fs::write(&f, b"").unwrap();
        assert!(matches!(secure_dir(&f), Err(DirError::NotDir { .. })));
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
