//! Operators' decisions on findings, shared: a decision is a row appended to `decisions`
//! together with its journal entry, in one transaction; every member's cache applies the
//! rows past the last one it read (`Store::apply_decisions`). Also who else is connected
//! (`pg_stat_activity`, whose application names every member may read) and what they
//! hold.

use super::{journal, TeamStore};
use crate::model::{from_millis, to_millis, FindingStatus};
use crate::store::journal::NewEntry;
use crate::store::shared::{Decision, Member, SharedError};

/// The application name a workstation's listening connection carries, before
/// `user@host`: how members see each other.
pub(crate) const PRESENCE: &str = "keyaudit tui ";

/// Records `d` and its journal entry, both or neither.
pub(super) async fn decide(
    store: &TeamStore,
    d: &Decision,
    entry: &NewEntry<'_>,
) -> Result<(), SharedError> {
    let mut c = store.conn().await?;
    let tx = c
        .transaction()
        .await
        .map_err(|e| store.db_fail("starting a decision", &e))?;
    // The journal's lock first: decisions are numbered while it is held, so their
    // numbers grow in commit order and a member reading past the last one it read
    // misses none.
    journal::append_in(store, &tx, entry).await?;
    tx.execute(
        "INSERT INTO decisions (finding, target, status, note, until_ms, os_user, host)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &d.finding,
            &d.target,
            &d.status.as_str(),
            &d.note,
            &d.until.map(to_millis),
            &d.user,
            &d.host,
        ],
    )
    .await
    .map_err(|e| store.db_fail("recording the decision", &e))?;
    tx.commit()
        .await
        .map_err(|e| store.db_fail("committing the decision", &e))
}

/// The decisions past row `after`, oldest first.
pub(super) async fn since(store: &TeamStore, after: i64) -> Result<Vec<Decision>, SharedError> {
    let c = store.conn().await?;
    let rows = c
        .query(
            "SELECT id, finding, target, status, note, until_ms, os_user, host
             FROM decisions WHERE id > $1 ORDER BY id",
            &[&after],
        )
        .await
        .map_err(|e| store.db_fail("reading the team's decisions", &e))?;
    rows.iter()
        .map(|r| {
            let status: String = r.get(3);
            Ok(Decision {
                id: r.get(0),
                finding: r.get(1),
                target: r.get(2),
                status: status
                    .parse::<FindingStatus>()
                    .map_err(|e| store.fail(format!("decision {}: {e}", r.get::<_, i64>(0))))?,
                note: r.get(4),
                until: r.get::<_, Option<i64>>(5).map(from_millis),
                user: r.get(6),
                host: r.get(7),
            })
        })
        .collect()
}

/// `user@host` of this process, as the team sees it.
pub(crate) fn me() -> String {
    format!(
        "{}@{}",
        crate::store::journal::os_user(),
        crate::store::journal::host_name()
    )
}

/// This process's presence name: `keyaudit tui user@host #pid`.
pub(crate) fn presence_name() -> String {
    format!(
        "{PRESENCE}{}@{} #{}",
        crate::store::journal::os_user(),
        crate::store::journal::host_name(),
        std::process::id()
    )
}

/// The other processes working on the team store now: the workstations connected (their
/// listening connections' application names) and any process holding a live claim (a
/// CLI `rotate`) or syncing a source for the team, each with the keys it holds and the
/// sources it syncs. This process is left out.
pub(super) async fn members(store: &TeamStore) -> Result<Vec<Member>, SharedError> {
    let c = store.conn().await?;
    let present = c
        .query(
            "SELECT DISTINCT substr(application_name, $1) FROM pg_stat_activity
             WHERE datname = current_database() AND starts_with(application_name, $2)
               AND application_name <> $3",
            &[&(PRESENCE.len() as i32 + 1), &PRESENCE, &presence_name()],
        )
        .await
        .map_err(|e| store.db_fail("reading who is connected", &e))?;
    let held = c
        .query(
            "SELECT holder_user, holder_host, holder_pid, provider || '/' || key_id, operation
             FROM claims
             WHERE released_at IS NULL AND lease_until > clock_timestamp() ORDER BY since",
            &[],
        )
        .await
        .map_err(|e| store.db_fail("reading the claims", &e))?;
    // (user, host, pid) → keys held.
    type Process = (String, String, i32);
    let mut out: Vec<(Process, Vec<(String, String)>)> = Vec::new();
    for r in &present {
        let name: String = r.get(0);
        let Some((who, pid)) = name.rsplit_once(" #") else {
            continue;
        };
        let (user, host) = who.split_once('@').unwrap_or((who, ""));
        let id = (user.to_string(), host.to_string(), pid.parse().unwrap_or(0));
        out.push((id, Vec::new()));
    }
    // Sources being synced, as held by their member (`sync`).
    let syncing = c
        .query(
            "SELECT syncing_by, coalesce(syncing_pid, 0),
                    provider || coalesce(': ' || syncing_progress, ''), 'sync'
             FROM sources WHERE syncing_by IS NOT NULL ORDER BY syncing_since",
            &[],
        )
        .await
        .map_err(|e| store.db_fail("reading who syncs", &e))?;
    let me = (
        crate::store::journal::os_user(),
        crate::store::journal::host_name(),
        std::process::id() as i32,
    );
    let syncing = syncing.iter().map(|r| {
        let who: String = r.get(0);
        let (user, host) = who.split_once('@').unwrap_or((&who, ""));
        (
            (user.to_string(), host.to_string(), r.get::<_, i32>(1)),
            (r.get::<_, String>(2), r.get::<_, String>(3)),
        )
    });
    let claimed = held.iter().map(|r| {
        (
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, i32>(2),
            ),
            (r.get::<_, String>(3), r.get::<_, String>(4)),
        )
    });
    for (id, hold) in claimed.chain(syncing) {
        if id == me {
            continue;
        }
        match out.iter_mut().find(|(who, _)| *who == id) {
            Some((_, holds)) => holds.push(hold),
            None => out.push((id, vec![hold])),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out
        .into_iter()
        .map(|((user, host, _), holds)| Member { user, host, holds })
        .collect())
}
