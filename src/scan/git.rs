//! Git history and the staging area, read with `gix` (no `git` binary).
//!
//! History: commits are visited oldest first; each commit's tree is walked, but a tree
//! or blob already seen in an earlier commit is skipped, so every version of every file
//! is read once, in the commit that introduced it. A secret is reported once, at its
//! first introduction (commit, author, time, path), even when a later commit removed it.
//!
//! Staged: the blobs in the index that `HEAD`'s tree does not hold (what a commit would
//! add), for a pre-commit hook.

use super::source::{scan_reader, skip_by_name, Report};
use super::{Introduced, Scanner};
use gix::ObjectId;
use std::collections::HashSet;
use std::path::Path;

/// A repository or revision that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{repo}: {message}")]
pub struct GitError {
    pub repo: String,
    pub message: String,
}

fn gerr(repo: &Path, message: impl std::fmt::Display) -> GitError {
    GitError {
        repo: repo.display().to_string(),
        message: message.to_string(),
    }
}

/// Scans every commit reachable from `HEAD` (or only those not reachable from
/// `since`, a revision such as a commit id or tag).
pub fn scan_history(
    scanner: &Scanner,
    repo_path: &Path,
    since: Option<&str>,
) -> Result<Report, GitError> {
    let repo =
        gix::open(repo_path).map_err(|e| gerr(repo_path, format!("not a git repository: {e}")))?;
    let head = repo
        .head_id()
        .map_err(|e| gerr(repo_path, format!("HEAD does not name a commit: {e}")))?;
    let mut walk =
        repo.rev_walk([head.detach()])
            .sorting(gix::revision::walk::Sorting::ByCommitTime(
                Default::default(),
            ));
    if let Some(rev) = since {
        let id = repo
            .rev_parse_single(rev)
            .map_err(|e| gerr(repo_path, format!("--since-commit {rev:?}: {e}")))?;
        walk = walk.with_hidden([id.detach()]);
    }
    let mut commits = Vec::new();
    for info in walk.all().map_err(|e| gerr(repo_path, e))? {
        commits.push(info.map_err(|e| gerr(repo_path, e))?.id);
    }
    commits.reverse();

    let mut report = Report::default();
    let mut seen_trees: HashSet<ObjectId> = HashSet::new();
    let mut seen_blobs: HashSet<ObjectId> = HashSet::new();
    let mut reported: HashSet<String> = HashSet::new();
    for id in commits {
        let commit = repo.find_commit(id).map_err(|e| gerr(repo_path, e))?;
        let author = commit
            .author()
            .map(|a| format!("{} <{}>", a.name, a.email))
            .unwrap_or_default();
        let seconds = commit.time().map(|t| t.seconds).unwrap_or(0);
        let introduced = Introduced {
            commit: id.to_string(),
            author,
            time: chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default(),
        };
        let tree = commit.tree_id().map_err(|e| gerr(repo_path, e))?.detach();
        let mut stack = vec![(tree, String::new())];
        while let Some((tree_id, prefix)) = stack.pop() {
            if !seen_trees.insert(tree_id) {
                continue;
            }
            let tree = repo.find_tree(tree_id).map_err(|e| gerr(repo_path, e))?;
            for entry in tree.iter() {
                let entry = entry.map_err(|e| gerr(repo_path, e))?;
                let path = format!("{prefix}{}", entry.filename());
                let oid = entry.oid().to_owned();
                if entry.mode().is_tree() {
                    stack.push((oid, format!("{path}/")));
                } else if entry.mode().is_blob() && seen_blobs.insert(oid) {
                    let mut hits = Vec::new();
                    scan_blob(scanner, &repo, oid, &path, &mut hits, &mut report);
                    for mut h in hits {
                        if reported.insert(h.fingerprint.clone()) {
                            h.introduced = Some(introduced.clone());
                            report.hits.push(h);
                        }
                    }
                }
            }
        }
    }
    Ok(report)
}

fn scan_blob(
    scanner: &Scanner,
    repo: &gix::Repository,
    oid: ObjectId,
    path: &str,
    hits: &mut Vec<super::Hit>,
    report: &mut Report,
) {
    if let Some(why) = skip_by_name(path) {
        match why {
            "lock" => report.stats.skipped_lock += 1,
            _ => report.stats.skipped_binary += 1,
        }
        return;
    }
    let blob = match repo.find_object(oid) {
        Ok(b) => b,
        Err(e) => {
            report.errors.push(super::SourceError {
                file: path.to_string(),
                line: None,
                message: e.to_string(),
            });
            return;
        }
    };
    match scan_reader(scanner, path, &blob.data[..], hits) {
        Ok(Some(n)) => {
            report.stats.files += 1;
            report.stats.bytes += n;
        }
        Ok(None) => report.stats.skipped_binary += 1,
        Err(e) => report.errors.push(e),
    }
}

/// Scans what is staged: index entries whose blob `HEAD`'s tree does not hold.
pub fn scan_staged(scanner: &Scanner, repo_path: &Path) -> Result<Report, GitError> {
    let repo =
        gix::open(repo_path).map_err(|e| gerr(repo_path, format!("not a git repository: {e}")))?;
    let mut in_head: HashSet<ObjectId> = HashSet::new();
    if let Ok(id) = repo.head_id() {
        let commit = repo
            .find_commit(id.detach())
            .map_err(|e| gerr(repo_path, e))?;
        let mut stack = vec![commit.tree_id().map_err(|e| gerr(repo_path, e))?.detach()];
        while let Some(t) = stack.pop() {
            let tree = repo.find_tree(t).map_err(|e| gerr(repo_path, e))?;
            for entry in tree.iter() {
                let entry = entry.map_err(|e| gerr(repo_path, e))?;
                if entry.mode().is_tree() {
                    stack.push(entry.oid().to_owned());
                } else {
                    in_head.insert(entry.oid().to_owned());
                }
            }
        }
    }
    let index = repo
        .index_or_empty()
        .map_err(|e| gerr(repo_path, format!("the index cannot be read: {e}")))?;
    let mut report = Report::default();
    for entry in index.entries() {
        if in_head.contains(&entry.id) || entry.mode.is_submodule() {
            continue;
        }
        let path = entry.path(&index).to_string();
        let mut hits = Vec::new();
        scan_blob(scanner, &repo, entry.id, &path, &mut hits, &mut report);
        report.hits.extend(hits);
    }
    Ok(report)
}
