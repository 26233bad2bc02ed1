//! The one directory walker (on `walkdir`): the importer's directory arguments and the
//! leak scanner's paths are walked the same way.

use std::io;
use std::path::{Path, PathBuf};

/// How to walk a tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct Walk {
    /// Descend into the root when it is a symbolic link to a directory. Links below the
    /// root are never followed, nor listed.
    pub follow_root_link: bool,
    /// Leaves out the entries (and for a directory, everything under it) whose file
    /// name this is true for. The root itself is never left out.
    pub skip: Option<fn(&str) -> bool>,
}

/// A directory or entry that could not be read.
#[derive(Debug)]
pub struct WalkError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl Walk {
    /// The regular files at and under `root`, depth first, each directory's entries in
    /// file-name order (a subdirectory's files come before its next sibling). A root
    /// that is a file is the one file. Read errors come in place, and the walk goes on.
    pub fn files(self, root: &Path) -> impl Iterator<Item = Result<PathBuf, WalkError>> {
        let skip = self.skip;
        let fallback = root.to_path_buf();
        walkdir::WalkDir::new(root)
            .follow_links(false)
            .follow_root_links(self.follow_root_link)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(move |e| {
                e.depth() == 0 || !skip.is_some_and(|s| s(&e.file_name().to_string_lossy()))
            })
            .filter_map(move |r| match r {
                Ok(e) => e.file_type().is_file().then(|| Ok(e.into_path())),
                Err(e) => Some(Err(WalkError::new(e, &fallback))),
            })
    }
}

impl WalkError {
    fn new(e: walkdir::Error, root: &Path) -> WalkError {
        let path = e.path().unwrap_or(root).to_path_buf();
        let message = e.to_string();
        let source = e
            .into_io_error()
            .unwrap_or_else(|| io::Error::other(message));
        WalkError { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn files_come_depth_first_in_name_order_without_skipped_entries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "b/2.log",
            "b/1.log",
            "a.log",
            "c.log",
            ".hidden/x.log",
            "b/.y.log",
        ] {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "x").unwrap();
        }
        let walk = Walk {
            skip: Some(|name| name.starts_with('.')),
            ..Walk::default()
        };
        let found: Vec<String> = walk
            .files(root)
            .map(|r| {
                let p = r.unwrap();
                p.strip_prefix(root).unwrap().to_string_lossy().into_owned()
            })
            .collect();
        assert_eq!(found, ["a.log", "b/1.log", "b/2.log", "c.log"]);
        let all = Walk::default().files(root).count();
        assert_eq!(all, 6);
        let one = root.join("a.log");
        let single: Vec<PathBuf> = Walk::default().files(&one).map(Result::unwrap).collect();
        assert_eq!(single, [one]);
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let r: Vec<_> = Walk::default().files(&gone).collect();
        assert_eq!(r.len(), 1);
        let e = r.into_iter().next().unwrap().unwrap_err();
        assert_eq!(e.path, gone);
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
    }

    #[cfg(unix)]
    #[test]
    fn links_below_the_root_are_not_followed_the_root_link_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir_all(&real).unwrap();
        fs::write(real.join("f.log"), "x").unwrap();
        std::os::unix::fs::symlink(real.join("f.log"), real.join("link.log")).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(Walk::default().files(&real).count(), 1);
        assert_eq!(Walk::default().files(&link).count(), 0);
        let follow = Walk {
            follow_root_link: true,
            ..Walk::default()
        };
        assert_eq!(follow.files(&link).count(), 1);
    }
}
