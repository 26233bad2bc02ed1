//! The keys filter, run off the UI thread: parse, select, rank, sort.
//!
//! A [`Searcher`] lives as long as the workstation. It keeps the fuzzy text of the current
//! key list (prepared once per list, see [`KeyTexts`]) and the outcome of its last run:
//! when the query only grew, a run scores just the keys the last one selected, and reuses
//! the scores of the words that did not change. A run gives up as soon as a newer query
//! supersedes it.

use super::action::{Column, FilterJob, Sort};
use crate::filter::{Filter, KeyTexts, Scratch, Term, Word};
use crate::store::KeyRow;
use chrono::{DateTime, Utc};
use std::cmp::Ordering;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// True when every key that `new` selects is also selected by `old`, so a run of `new`
/// may start from `old`'s result: the fuzzy text only grew at its end (a subsequence
/// match of the longer text implies one of its prefix) and no field term was dropped.
pub fn narrows(old: &str, new: &str) -> bool {
    let (Ok(o), Ok(n)) = (Filter::parse(old), Filter::parse(new)) else {
        return false;
    };
    narrows_parsed(&o, &n)
}

fn narrows_parsed(o: &Filter, n: &Filter) -> bool {
    n.text.starts_with(&o.text) && o.terms.iter().all(|t| n.terms.contains(t))
}

/// Keys checked between two looks at the newest generation.
const CHECK_EVERY: usize = 4096;
/// Below this many candidates a run stays on one thread.
const PARALLEL_FROM: usize = 8192;

/// A key a run selected, with its word scores.
#[derive(Debug, Clone, Copy)]
struct Hit {
    index: u32,
    /// The scores of every word but the last, added up.
    head: i64,
    /// The score of the last word.
    tail: i32,
}

impl Hit {
    fn score(&self) -> i64 {
        self.head + i64::from(self.tail)
    }
}

/// The outcome of a finished run.
struct LastRun {
    generation: u64,
    keys: Weak<Vec<KeyRow>>,
    filter: Filter,
    words: Vec<Word>,
    now: DateTime<Utc>,
    hits: Vec<Hit>,
}

/// The fuzzy text of a key list, prepared once (a second caller waits for the first).
struct Prepared {
    keys: Weak<Vec<KeyRow>>,
    texts: Arc<OnceLock<KeyTexts>>,
}

#[derive(Default)]
struct Cache {
    /// The newest key list's.
    prepared: Option<Prepared>,
    last: Option<Arc<LastRun>>,
}

/// Runs filter jobs; one per workstation, shared by the runner's tasks.
#[derive(Default)]
pub struct Searcher {
    /// The newest generation asked for; older runs give up.
    latest: AtomicU64,
    cache: Mutex<Cache>,
}

/// How much of a previous run's scores a run takes over.
#[derive(Clone, Copy, PartialEq)]
enum Carry {
    /// Nothing: every word is scored.
    Nothing,
    /// The scores of every word but the last (the last word grew).
    Head,
    /// Every score (words were only added, or none changed).
    All,
}

impl Searcher {
    /// Marks `generation` as the newest; runs of older ones give up.
    pub fn request(&self, generation: u64) {
        self.latest.store(generation, AtomicOrdering::SeqCst);
    }

    fn superseded(&self, generation: u64) -> bool {
        self.latest.load(AtomicOrdering::Relaxed) != generation
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fuzzy text of `keys`, prepared on first use (a concurrent caller waits for it).
    fn texts(&self, keys: &Arc<Vec<KeyRow>>) -> Arc<OnceLock<KeyTexts>> {
        let cell = {
            let mut cache = self.cache();
            match &cache.prepared {
                Some(p) if std::ptr::eq(p.keys.as_ptr(), Arc::as_ptr(keys)) => p.texts.clone(),
                _ => {
                    let texts = Arc::new(OnceLock::new());
                    cache.prepared = Some(Prepared {
                        keys: Arc::downgrade(keys),
                        texts: texts.clone(),
                    });
                    texts
                }
            }
        };
        cell.get_or_init(|| KeyTexts::new(keys));
        cell
    }

    /// Prepares the fuzzy text of a freshly loaded key list, so the first keystroke does
    /// not pay for it.
    pub fn prepare(&self, keys: &Arc<Vec<KeyRow>>) {
        self.texts(keys);
    }

    /// The last run, when this one may start from it: same key list, and its query
    /// narrows to this one (with time terms, only at the same clock).
    fn last_for(&self, job: &FilterJob, filter: &Filter) -> Option<Arc<LastRun>> {
        let last = self.cache().last.clone()?;
        let timed = last
            .filter
            .terms
            .iter()
            .any(|(_, t)| matches!(t, Term::Age(..) | Term::Unused(..) | Term::Expires(..)));
        (std::ptr::eq(last.keys.as_ptr(), Arc::as_ptr(&job.keys))
            && narrows_parsed(&last.filter, filter)
            && (!timed || last.now == job.now))
            .then_some(last)
    }

    /// Runs a filter job. Returns the indices of the shown keys in display order, or
    /// `None` when a newer generation was requested meanwhile or the query does not parse.
    pub fn run(&self, job: &FilterJob) -> Option<Vec<usize>> {
        let filter = Filter::parse(&job.query).ok()?;
        let words = filter.words();
        let keys = &job.keys;
        let texts_cell = (!words.is_empty()).then(|| self.texts(keys));
        let texts = texts_cell.as_ref().and_then(|c| c.get());
        let last = self.last_for(job, &filter);
        // Which scores carry over: the words both queries share at their start.
        let (carry, known) = match &last {
            Some(l) => {
                let same = l
                    .words
                    .iter()
                    .zip(&words)
                    .take_while(|(a, b)| a == b)
                    .count();
                if same == l.words.len() {
                    (Carry::All, same)
                } else if same + 1 == l.words.len() {
                    (Carry::Head, same)
                } else {
                    (Carry::Nothing, 0)
                }
            }
            None => (Carry::Nothing, 0),
        };
        let all;
        let candidates: Candidates = match (&last, &job.base) {
            (Some(l), _) => Candidates::Hits(&l.hits),
            (None, Some(b)) => Candidates::Indices(b),
            (None, None) => {
                all = (0..keys.len()).collect::<Vec<_>>();
                Candidates::Indices(&all)
            }
        };
        let score_part = |part: Candidates| -> Option<Vec<Hit>> {
            let (mut scratch, mut chars) = (Scratch::default(), Vec::new());
            let mut hits = Vec::with_capacity(part.len().min(CHECK_EVERY));
            for n in 0..part.len() {
                if n % CHECK_EVERY == 0 && self.superseded(job.generation) {
                    return None;
                }
                let (i, carried) = part.get(n, carry);
                let Some(r) = keys.get(i) else { continue };
                if !filter.matches_terms(r, job.now, None) {
                    continue;
                }
                let hit = if known == words.len() && carry == Carry::All {
                    // No word changed.
                    let Candidates::Hits(h) = part else {
                        unreachable!("carrying needs a previous run")
                    };
                    Hit {
                        index: i as u32,
                        ..h[n]
                    }
                } else if words.is_empty() {
                    Hit {
                        index: i as u32,
                        head: 0,
                        tail: 0,
                    }
                } else {
                    let Some(texts) = texts else { continue };
                    let mut head = carried;
                    let mut tail = 0;
                    let mut matched = true;
                    for (w, word) in words.iter().enumerate().skip(known) {
                        let Some(s) = texts.score(i, word, &mut chars, &mut scratch) else {
                            matched = false;
                            break;
                        };
                        if w + 1 == words.len() {
                            tail = s;
                        } else {
                            head += i64::from(s);
                        }
                    }
                    if !matched {
                        continue;
                    }
                    Hit {
                        index: i as u32,
                        head,
                        tail,
                    }
                };
                hits.push(hit);
            }
            Some(hits)
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        let hits: Vec<Hit> = if candidates.len() < PARALLEL_FROM || threads == 1 {
            score_part(candidates)?
        } else {
            // One contiguous part per thread, so the merged hits keep the candidates' order.
            let size = candidates.len().div_ceil(threads);
            let parts: Vec<Option<Vec<Hit>>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| candidates.slice(t * size, ((t + 1) * size).min(candidates.len())))
                    .map(|part| s.spawn(move || score_part(part)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(None))
                    .collect()
            });
            let mut hits = Vec::with_capacity(parts.iter().flatten().map(Vec::len).sum());
            for p in parts {
                hits.extend(p?);
            }
            hits
        };
        if self.superseded(job.generation) {
            return None;
        }
        let order = order(&hits, keys, job.sort, !words.is_empty());
        {
            let mut cache = self.cache();
            if cache
                .last
                .as_ref()
                .is_none_or(|l| l.generation <= job.generation)
            {
                cache.last = Some(Arc::new(LastRun {
                    generation: job.generation,
                    keys: Arc::downgrade(keys),
                    filter,
                    words,
                    now: job.now,
                    hits,
                }));
            }
        }
        Some(order)
    }
}

/// The keys a run looks at.
#[derive(Clone, Copy)]
enum Candidates<'a> {
    /// The keys a previous run selected, with their scores.
    Hits(&'a [Hit]),
    /// Indices into the key list.
    Indices(&'a [usize]),
}

impl<'a> Candidates<'a> {
    fn len(&self) -> usize {
        match self {
            Candidates::Hits(h) => h.len(),
            Candidates::Indices(i) => i.len(),
        }
    }

    fn slice(&self, from: usize, to: usize) -> Candidates<'a> {
        match self {
            Candidates::Hits(h) => Candidates::Hits(&h[from..to]),
            Candidates::Indices(i) => Candidates::Indices(&i[from..to]),
        }
    }

    /// The key index of candidate `n` and the score carried over for it.
    fn get(&self, n: usize, carry: Carry) -> (usize, i64) {
        match self {
            Candidates::Hits(h) => {
                let hit = h[n];
                let carried = match carry {
                    Carry::Nothing => 0,
                    Carry::Head => hit.head,
                    Carry::All => hit.score(),
                };
                (hit.index as usize, carried)
            }
            Candidates::Indices(i) => (i[n], 0),
        }
    }
}

/// The display order of the hits: by the sort column, else by score (best first) when
/// there is fuzzy text; ties keep the key list's order.
fn order(hits: &[Hit], keys: &[KeyRow], sort: Sort, ranked: bool) -> Vec<usize> {
    let mut order: Vec<usize> = match sort.column {
        Some(col) => {
            let mut v: Vec<usize> = hits.iter().map(|h| h.index as usize).collect();
            v.sort_by(|&a, &b| {
                let o = compare(col, &keys[a], &keys[b]).then(a.cmp(&b));
                if sort.reverse {
                    o.reverse()
                } else {
                    o
                }
            });
            return v;
        }
        None if ranked => by_score(hits),
        None => {
            let mut v: Vec<usize> = hits.iter().map(|h| h.index as usize).collect();
            if !v.is_sorted() {
                v.sort_unstable();
            }
            v
        }
    };
    if sort.reverse {
        order.reverse();
    }
    order
}

fn compare(col: Column, a: &KeyRow, b: &KeyRow) -> Ordering {
    let (x, y) = (&a.key, &b.key);
    match col {
        Column::Provider => x.provider.cmp(&y.provider),
        Column::Name => cmp_lowercase(&x.name, &y.name),
        Column::Owner => cmp_lowercase(&x.owner, &y.owner),
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

/// Key indices by score, best first, then in list order.
fn by_score(hits: &[Hit]) -> Vec<usize> {
    let (lo, hi) = hits
        .iter()
        .map(Hit::score)
        .fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let span = hi.saturating_sub(lo).saturating_add(1);
    let in_order = hits.is_sorted_by_key(|h| h.index);
    if hits.is_empty() || !in_order || span > 4 * hits.len() as i64 + 1024 {
        // Best score first, then list order, as one integer each.
        let mut packed: Vec<u64> = hits
            .iter()
            .map(|h| {
                let rank = (i64::from(i32::MAX) - h.score()).clamp(0, i64::from(u32::MAX));
                (rank as u64) << 32 | u64::from(h.index)
            })
            .collect();
        packed.sort_unstable();
        return packed
            .into_iter()
            .map(|k| (k & 0xffff_ffff) as usize)
            .collect();
    }
    // Few distinct scores and the hits in list order: count them (a stable sort in two
    // passes).
    let slot = |h: &Hit| (hi - h.score()) as usize;
    let mut starts = vec![0usize; span as usize + 1];
    for h in hits {
        starts[slot(h) + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut out = vec![0usize; hits.len()];
    for h in hits {
        let at = &mut starts[slot(h)];
        out[*at] = h.index as usize;
        *at += 1;
    }
    out
}

/// Compares the lowercase forms of two texts (without building them when both are ASCII).
fn cmp_lowercase(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        a.to_lowercase().cmp(&b.to_lowercase())
    }
}

/// Runs a job at once with a searcher of its own (tests).
pub fn run_now(job: &FilterJob) -> Vec<usize> {
    let searcher = Searcher::default();
    searcher.request(job.generation);
    searcher.run(job).unwrap_or_default()
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
    fn ranking_is_by_score_then_list_order_either_way() {
        let hit = |index, head, tail| Hit { index, head, tail };
        // In list order with few scores (counted), and out of order (compared).
        let hits = [
            hit(0, 0, 5),
            hit(1, 3, 7),
            hit(2, 0, 10),
            hit(3, -2, 1),
            hit(4, 8, 2),
        ];
        assert_eq!(by_score(&hits), [1, 2, 4, 0, 3]);
        let mut shuffled = hits;
        shuffled.swap(0, 4);
        assert_eq!(by_score(&shuffled), [1, 2, 4, 0, 3]);
        let far = [hit(0, 0, 1), hit(1, 1 << 40, 0), hit(2, 0, 1)];
        assert_eq!(by_score(&far), [1, 0, 2]);
        assert!(by_score(&[]).is_empty());
    }

    /// Typing, deleting and sorting with one searcher (parts of earlier runs reused, scoring
    /// on several threads) shows what a fresh filter of the whole list shows.
    #[test]
    fn incremental_runs_show_what_a_full_filter_shows() {
        use crate::model::{from_millis, Key, KeyStatus};
        let now = from_millis(1_800_000_000_000);
        let owners = [
            "Acme Payroll",
            "Brightpath ATS",
            "Ledgerly",
            "Ünïcode Löhne",
        ];
        let keys: Vec<KeyRow> = (0..20_000usize)
            .map(|i| {
                let mut k = Key::seen_in_logs("talentgrid", &format!("key_{i:08x}"));
                let owner = owners[i % owners.len()];
                let env = ["prod", "sandbox"][i / 7 % 2];
                k.name = format!("{}-sync-{env}-{i}", owner.split(' ').next().unwrap());
                k.owner = owner.into();
                k.environment = Some(env.into());
                k.status = if i % 13 == 0 {
                    KeyStatus::Revoked
                } else {
                    KeyStatus::Active
                };
                KeyRow {
                    key_ref: i as i64,
                    key: k,
                    open_findings: 0,
                    worst_severity: None,
                }
            })
            .collect();
        let keys = Arc::new(keys);
        let searcher = Searcher::default();
        searcher.prepare(&keys);
        let by_name = next_sort(next_sort(Sort::default()));
        let typed = [
            "",
            "a",
            "ac",
            "acm",
            "acme",
            "acme ",
            "acme p",
            "acme pr",
            "acme pro",
            "acme pr",
            "acme prod",
            "acme prod status:active",
            "acme prod status:active 1",
            "A",
            "Ac",
            "Acme",
            "ü",
            "ün",
            "1",
            "12",
            "-status:revoked",
            "-status:revoked s",
            "x",
            "",
        ]
        .map(|q| (q, Sort::default()))
        .into_iter()
        .chain([
            ("acme", by_name),
            ("acme p", by_name),
            ("acme p", Sort::default()),
        ]);
        let mut base: Option<Arc<Vec<usize>>> = None;
        let mut previous = "";
        for (generation, (q, sort)) in typed.enumerate() {
            let job = FilterJob {
                generation: generation as u64 + 1,
                query: q.to_string(),
                sort,
                keys: keys.clone(),
                base: base.clone().filter(|_| narrows(previous, q)),
                now,
            };
            searcher.request(job.generation);
            let got = searcher.run(&job).expect("not superseded");
            let want = if sort == Sort::default() {
                let f = Filter::parse(q).unwrap();
                let ids: Vec<String> = f
                    .apply_keys(keys.to_vec(), now)
                    .into_iter()
                    .map(|r| r.key.id)
                    .collect();
                ids
            } else {
                run_now(&job)
                    .iter()
                    .map(|&i| keys[i].key.id.clone())
                    .collect()
            };
            let got_ids: Vec<String> = got.iter().map(|&i| keys[i].key.id.clone()).collect();
            assert_eq!(got_ids, want, "query {q:?}");
            base = Some(Arc::new(got));
            previous = q;
        }
    }

    #[test]
    fn a_superseded_run_gives_up() {
        use crate::model::{from_millis, Key};
        let keys = Arc::new(vec![KeyRow {
            key_ref: 1,
            key: Key::seen_in_logs("p", "k1"),
            open_findings: 0,
            worst_severity: None,
        }]);
        let searcher = Searcher::default();
        searcher.request(2);
        let job = FilterJob {
            generation: 1,
            query: "k".into(),
            sort: Sort::default(),
            keys,
            base: None,
            now: from_millis(0),
        };
        assert_eq!(searcher.run(&job), None);
    }

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
