//! What detection reads of the team's copy of a source, for the member that syncs it
//! while keeping its events in the team store (`events = "team"`): the source's events
//! past a row of the copy in the compact form the rules take, one key's history, each
//! key's published detection state, and the event ids its findings cite. With them that
//! member's detection goes on from the states the source's last publisher left
//! (`detect::team`) instead of needing every event in its own cache.

use super::TeamStore;
use crate::store::detect_state::EventFacts;
use crate::store::shared::SharedError;
use std::collections::HashMap;

/// Rows fetched from the portal at a time.
const FETCH: i32 = 8192;

/// The columns [`facts`] reads, in its order.
const FACT_COLUMNS: &str =
    "id, key_id, time, source_ip, user_agent, scope, outcome, status_code, records, action";

/// Which events of a source a detection read asks for.
#[derive(Debug, Clone, Copy)]
pub enum FactsOf<'a> {
    /// Every event past this row of the copy, in row order.
    After(i64),
    /// Every event of the key with this provider id, in time order.
    Key(&'a str),
}

impl TeamStore {
    /// Hands `visit` the events of `provider` that `which` names, each with its key's id
    /// at the provider (the facts' `key_ref` is 0: the caller knows its handles). Read
    /// through a portal in one read-only transaction, a chunk at a time.
    pub async fn detect_facts(
        &self,
        provider: &str,
        which: FactsOf<'_>,
        visit: &mut dyn FnMut(&str, EventFacts<'_>),
    ) -> Result<(), SharedError> {
        let fail = |e: &tokio_postgres::Error| self.db_fail("reading the team's events", e);
        let mut c = self.conn().await?;
        let tx = c
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(|e| fail(&e))?;
        let (sql, after, key) = match which {
            FactsOf::After(after) => (
                format!(
                    "SELECT {FACT_COLUMNS} FROM events WHERE provider = $1 AND id > $2 \
                     AND $3::text IS NULL ORDER BY id"
                ),
                after,
                None,
            ),
            FactsOf::Key(key) => (
                format!(
                    "SELECT {FACT_COLUMNS} FROM events WHERE provider = $1 AND id > $2 \
                     AND key_id = $3 ORDER BY time, id"
                ),
                0,
                Some(key),
            ),
        };
        let stmt = tx.prepare(&sql).await.map_err(|e| fail(&e))?;
        let portal = tx
            .bind(&stmt, &[&provider, &after, &key])
            .await
            .map_err(|e| fail(&e))?;
        loop {
            let rows = tx
                .query_portal(&portal, FETCH)
                .await
                .map_err(|e| fail(&e))?;
            for r in &rows {
                visit(r.get(1), facts(r));
            }
            if rows.len() < FETCH as usize {
                return Ok(());
            }
        }
    }

    /// Every detection state the team holds of `provider`'s keys, by key id.
    pub async fn detect_states_of(
        &self,
        provider: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, SharedError> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT key_id, state FROM detect_states WHERE provider = $1",
                &[&provider],
            )
            .await
            .map_err(|e| self.db_fail("reading the team's detection states", &e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The provider ids of the team's events with row ids `ids`.
    pub async fn event_ext_ids(&self, ids: &[i64]) -> Result<HashMap<i64, String>, SharedError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self
            .conn()
            .await?
            .query("SELECT id, ext_id FROM events WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(|e| self.db_fail("reading the evidence's event ids", &e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// An event's facts from a row of [`FACT_COLUMNS`].
fn facts(r: &tokio_postgres::Row) -> EventFacts<'_> {
    EventFacts {
        row: r.get(0),
        key_ref: 0,
        time: r.get(2),
        source_ip: r.get(3),
        user_agent: r.get(4),
        scope: r.get(5),
        outcome: r.get::<_, i16>(6) as u8,
        status_code: r.get(7),
        records: r.get(8),
        action: r.get(9),
    }
}
