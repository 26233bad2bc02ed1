//! The keys filter, run off the UI thread: parse, select, rank, sort. A run narrows the
//! previous result when the query only grew, and gives up as soon as a newer query
//! supersedes it.

use super::action::{Column, FilterJob, Sort};
use crate::filter::Filter;
use crate::store::KeyRow;
use fuzzy_matcher::skim::SkimMatcherV2;
use std::cmp::Ordering;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// True when every key that `new` selects is also selected by `old`, so a run of `new`
/// may start from `old`'s result: the fuzzy text only grew at its end (a subsequence
/// match of the longer text implies one of its prefix) and no field term was dropped.
pub fn narrows(old: &str, new: &str) -> bool {
    let (Ok(o), Ok(n)) = (Filter::parse(old), Filter::parse(new)) else {
        return false;
    };
    n.text.starts_with(&o.text) && o.terms.iter().all(|t| n.terms.contains(t))
}

/// Runs a filter job. Returns `None` when a newer generation was requested meanwhile
/// (`latest` holds the newest generation) or the query does not parse.
pub fn run(job: &FilterJob, latest: &AtomicU64) -> Option<Vec<usize>> {
    let filter = Filter::parse(&job.query).ok()?;
    let keys = &job.keys;
    let all;
    let candidates: &[usize] = match &job.base {
        Some(b) => b,
        None => {
            all = (0..keys.len()).collect::<Vec<_>>();
            &all
        }
    };
    // Score on every core: each thread takes one contiguous part of the candidates, so
    // the merged result keeps the input order before sorting.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let part = candidates.len().div_ceil(threads).max(1);
    let score_part = |chunk: &[usize]| -> Option<Vec<(i64, usize)>> {
        let matcher = SkimMatcherV2::default();
        let mut scored = Vec::with_capacity(chunk.len().min(4096));
        for (n, &i) in chunk.iter().enumerate() {
            if n % 4096 == 0 && latest.load(AtomicOrdering::Relaxed) != job.generation {
                return None;
            }
            let Some(r) = keys.get(i) else { continue };
            if !filter.matches_terms(r, job.now, None) {
                continue;
            }
            if let Some(s) = filter.score(&matcher, r) {
                scored.push((s, i));
            }
        }
        Some(scored)
    };
    let parts: Vec<Option<Vec<(i64, usize)>>> = if candidates.len() < 8192 || threads == 1 {
        vec![score_part(candidates)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = candidates
                .chunks(part)
                .map(|chunk| s.spawn(move || score_part(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(None))
                .collect()
        })
    };
    let mut scored: Vec<(i64, usize)> = Vec::new();
    for p in parts {
        scored.extend(p?);
    }
    if latest.load(AtomicOrdering::Relaxed) != job.generation {
        return None;
    }
    match job.sort.column {
        None => scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1))),
        Some(col) => scored.sort_by(|a, b| {
            let o = compare(col, &keys[a.1], &keys[b.1]).then(a.1.cmp(&b.1));
            if job.sort.reverse {
                o.reverse()
            } else {
                o
            }
        }),
    }
    if job.sort.column.is_none() && job.sort.reverse {
        scored.reverse();
    }
    Some(scored.into_iter().map(|(_, i)| i).collect())
}

fn compare(col: Column, a: &KeyRow, b: &KeyRow) -> Ordering {
    let (x, y) = (&a.key, &b.key);
    match col {
        Column::Provider => x.provider.cmp(&y.provider),
        Column::Name => x.name.to_lowercase().cmp(&y.name.to_lowercase()),
        Column::Owner => x.owner.to_lowercase().cmp(&y.owner.to_lowercase()),
        Column::Env => x.environment.cmp(&y.environment),
        Column::Status => x.status.cmp(&y.status),
        // Oldest first.
        Column::Age => x.created.cmp(&y.created),
        // Longest unused first.
        Column::LastUsed => x.last_used.cmp(&y.last_used),
        Column::Scopes => y.scopes.len().cmp(&x.scopes.len()),
        Column::Findings => {
            (b.worst_severity, b.open_findings).cmp(&(a.worst_severity, a.open_findings))
        }
    }
}

/// Runs a job on the calling thread with no competition (tests, benchmarks).
pub fn run_now(job: &FilterJob) -> Vec<usize> {
    let latest = AtomicU64::new(job.generation);
    run(job, &latest).unwrap_or_default()
}

/// A `Sort` that cycles to the next column.
pub fn next_sort(s: Sort) -> Sort {
    let column = match s.column {
        None => Some(Column::ALL[0]),
        Some(c) => {
            let i = Column::ALL.iter().position(|x| *x == c).unwrap_or(0);
            Column::ALL.get(i + 1).copied()
        }
    };
    Sort {
        column,
        reverse: s.reverse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_text_narrows_and_dropping_a_term_does_not() {
        assert!(narrows("ac", "acme"));
        assert!(narrows("acme", "acme env:prod"));
        assert!(!narrows("acme env:prod", "acme"));
        assert!(!narrows("acme", "acm"));
        assert!(!narrows("acme st", "acme status:active"));
        assert!(narrows("", "x"));
    }
}
