//! A deterministic workstation for tests, snapshots and benchmarks: fixed clock, fixed
//! keys. Background effects that matter to what is shown run inline: the keys filter, and
//! the events walk, served by the runner's own read over an in-memory cache that holds
//! the fixture's events. Shared by the TUI tests and `benches/tui.rs`.

#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use keyaudit::detect::BaselineStatus;
use keyaudit::model::{
    Category, Event, Finding, FindingStatus, JournalEntry, Key, KeySource, KeyStatus, Outcome,
    ProviderInfo, Severity,
};
use keyaudit::provider::Capabilities;
use keyaudit::store::{EventRow, KeyActivity, KeyRow, Store};
use keyaudit::tui::action::{Action, Detail, Effect};
use keyaudit::tui::keymap::Keymap;
use keyaudit::tui::state::{Setup, State};
use keyaudit::tui::theme::Theme;
use std::sync::Arc;

/// The fixed clock of the fixture: 2026-11-29T00:00:00Z.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap()
}

/// Capabilities of a provider that can do everything the TUI offers.
pub fn full_caps() -> Capabilities {
    Capabilities {
        list_events: true,
        disable: true,
        revoke: true,
        create: true,
        rotate_overlap: true,
        rotate_atomic: false,
        verify_secret: true,
        retry_changes: true,
        rotate_in_place: false,
        rotate_guided: false,
    }
}

#[allow(clippy::too_many_arguments)]
fn key(
    key_ref: i64,
    provider: &str,
    name: &str,
    owner: &str,
    env: &str,
    status: KeyStatus,
    age_days: i64,
    unused_days: Option<i64>,
    scopes: &[&str],
    findings: (i64, Option<Severity>),
) -> KeyRow {
    let n = now();
    KeyRow {
        key_ref,
        key: Key {
            provider: provider.into(),
            id: format!("key_{key_ref:04}{}", &name[..3.min(name.len())]),
            name: name.into(),
            owner: owner.into(),
            environment: Some(env.into()),
            purpose: None,
            prefix: "tg_live_Ab".into(),
            fingerprint: format!("sha256:{key_ref:032x}"),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            status,
            created: Some(n - Duration::days(age_days)),
            expires: (key_ref == 3).then(|| n + Duration::days(12)),
            last_used: unused_days.map(|d| n - Duration::days(d) - Duration::minutes(7)),
            rotated_to: None,
            source: KeySource::Provider,
        },
        open_findings: findings.0,
        worst_severity: findings.1,
    }
}

/// Twelve keys of two providers and four partners.
pub fn keys() -> Vec<KeyRow> {
    use KeyStatus::*;
    vec![
        key(
            1,
            "talentgrid",
            "acme-payroll-sync",
            "Acme Payroll",
            "prod",
            Active,
            400,
            Some(0),
            &["employees:read", "ssn:read", "payroll:write"],
            (2, Some(Severity::High)),
        ),
        key(
            2,
            "talentgrid",
            "acme-payroll-sandbox",
            "Acme Payroll",
            "sandbox",
            Active,
            30,
            Some(2),
            &["employees:read"],
            (0, None),
        ),
        key(
            3,
            "talentgrid",
            "greenhouse-candidate-sync",
            "Greenhouse ATS",
            "prod",
            Active,
            200,
            Some(1),
            &["candidates:read", "jobs:read"],
            (1, Some(Severity::Medium)),
        ),
        key(
            4,
            "talentgrid",
            "greenhouse-legacy",
            "Greenhouse ATS",
            "prod",
            Active,
            900,
            Some(200),
            &["candidates:read", "candidates:write", "ssn:read"],
            (1, Some(Severity::Critical)),
        ),
        key(
            5,
            "talentgrid",
            "brightpath-checks",
            "Brightpath Checks",
            "prod",
            Inactive,
            120,
            Some(45),
            &["ssn:read", "background:write"],
            (0, None),
        ),
        key(
            6,
            "talentgrid",
            "onboardly-docs",
            "Onboardly",
            "sandbox",
            Active,
            10,
            None,
            &["documents:write"],
            (0, None),
        ),
        key(
            7,
            "talentgrid",
            "acme-old-export",
            "Acme Payroll",
            "prod",
            Revoked,
            700,
            Some(300),
            &["payroll:read"],
            (0, None),
        ),
        key(
            8,
            "payroll-hub",
            "hub-acme-ledger",
            "Acme Payroll",
            "prod",
            Active,
            95,
            Some(0),
            &["ledger:read", "ledger:write"],
            (1, Some(Severity::Low)),
        ),
        key(
            9,
            "payroll-hub",
            "hub-brightpath",
            "Brightpath Checks",
            "staging",
            Active,
            60,
            Some(3),
            &["ledger:read"],
            (0, None),
        ),
        key(
            10,
            "payroll-hub",
            "hub-onboardly",
            "Onboardly",
            "prod",
            Expired,
            500,
            Some(100),
            &["ledger:read"],
            (0, None),
        ),
        key(
            11,
            "talentgrid",
            "greenhouse-webhooks",
            "Greenhouse ATS",
            "sandbox",
            Active,
            15,
            Some(0),
            &["webhooks:write"],
            (0, None),
        ),
        key(
            12,
            "talentgrid",
            "acme-benefits",
            "Acme Payroll",
            "prod",
            Active,
            150,
            Some(5),
            &["benefits:read"],
            (0, None),
        ),
    ]
}

fn event(i: i64, key: &KeyRow, mins_ago: i64, outcome: Outcome, ua: &str) -> EventRow {
    EventRow {
        row_id: i,
        key_ref: key.key_ref,
        event: Event {
            provider: key.key.provider.clone(),
            id: format!("evt_{i:06}"),
            time: now() - Duration::minutes(mins_ago),
            key_id: key.key.id.clone(),
            principal: Some(key.key.owner.clone()),
            action: if i % 3 == 0 {
                "GET /v1/employees/ssn".into()
            } else {
                "GET /v1/employees".into()
            },
            scope: Some(
                if i % 3 == 0 {
                    "ssn:read"
                } else {
                    "employees:read"
                }
                .into(),
            ),
            source_ip: Some(
                if i % 4 == 0 {
                    "203.0.113.77"
                } else {
                    "198.51.100.7"
                }
                .into(),
            ),
            user_agent: Some(ua.into()),
            outcome,
            status_code: Some(200),
            request_id: None,
            records: Some(3),
            raw: None,
        },
    }
}

/// Events of the first key, newest first; one user agent carries escape sequences.
pub fn events() -> Vec<EventRow> {
    let k = &keys()[0];
    (0..30)
        .map(|i| {
            let outcome = if i % 7 == 3 {
                Outcome::Denied
            } else {
                Outcome::Success
            };
            let ua = if i == 2 {
                "evil\x1b]52;c;c2VjcmV0\x07\x1b[2Jagent"
            } else {
                "acme-sync/2.4 (+https://acme.example)"
            };
            event(100 - i, k, i * 37 + 3, outcome, ua)
        })
        .collect()
}

/// Three findings.
pub fn findings() -> Vec<Finding> {
    let f = |id: &str, rule: &str, sev: Severity, key: &KeyRow, title: &str, expl: &str, status| {
        Finding {
            id: id.into(),
            rule: rule.into(),
            category: Category::Anomaly,
            severity: sev,
            provider: key.key.provider.clone(),
            key_id: key.key.id.clone(),
            title: title.into(),
            explanation: expl.into(),
            evidence: vec!["evt_000098".into(), "evt_000097".into()],
            first_seen: now() - Duration::days(2),
            last_seen: now() - Duration::hours(5),
            status,
            note: None,
            suppressed_until: None,
        }
    };
    let k = keys();
    vec![
        f(
            "f1",
            "new_network",
            Severity::Critical,
            &k[3],
            "Used from a new network",
            "greenhouse-legacy was used from 203.0.113.0/24, never seen in its 30-day baseline.",
            FindingStatus::Open,
        ),
        f(
            "f2",
            "ssn_bulk_read",
            Severity::High,
            &k[0],
            "Bulk SSN reads",
            "acme-payroll-sync read 4,210 SSN records in one hour, 12x its baseline.",
            FindingStatus::Open,
        ),
        f(
            "f3",
            "stale_key",
            Severity::Medium,
            &k[2],
            "Key expires soon",
            "greenhouse-candidate-sync expires in 12 days and has no replacement.",
            FindingStatus::Acknowledged,
        ),
    ]
}

/// Two journal entries, newest first.
pub fn journal() -> Vec<JournalEntry> {
    let e = |seq: i64, action: &str, target: &str, result: &str| JournalEntry {
        seq,
        time: now() - Duration::hours(10 - seq),
        os_user: "analyst".into(),
        host: "ws-1".into(),
        action: action.into(),
        target: target.into(),
        reason: Some("keyaudit tui".into()),
        params: serde_json::json!({}),
        result: result.into(),
        prev_hash: String::new(),
        hash: String::new(),
    };
    vec![
        e(2, "revoke", "talentgrid/key_0007acm", "ok: status revoked"),
        e(1, "revoke", "talentgrid/key_0007acm", "started"),
    ]
}

/// The two providers.
pub fn providers() -> Vec<ProviderInfo> {
    vec![
        ProviderInfo {
            name: "payroll-hub".into(),
            kind: "http".into(),
            url: Some("http://127.0.0.1:8081".into()),
            last_sync: Some(now() - Duration::hours(3)),
            last_error: Some("HTTP 503 after 4 attempts".into()),
            keys: 3,
            events: 120_000,
        },
        ProviderInfo {
            name: "talentgrid".into(),
            kind: "http".into(),
            url: Some("http://127.0.0.1:8080".into()),
            last_sync: Some(now() - Duration::minutes(2)),
            last_error: None,
            keys: 9,
            events: 1_250_000,
        },
    ]
}

/// The detail of the first key.
pub fn detail() -> Detail {
    let k = keys().remove(0);
    let mut per_day = vec![0u64; 30];
    for (i, d) in per_day.iter_mut().enumerate() {
        *d = ((i * 37) % 11 + 3) as u64 * 10;
    }
    Detail {
        key: k,
        activity: KeyActivity {
            per_day,
            networks: vec![("198.51.100.7".into(), 1800), ("203.0.113.77".into(), 12)],
            agents: vec![
                ("acme-sync/2.4 (+https://acme.example)".into(), 1811),
                ("evil\x1b]52;c;c2VjcmV0\x07\x1b[2Jagent".into(), 1),
            ],
            scopes_used: vec![
                ("employees:read".into(), 1500),
                ("ssn:read".into(), 312),
                ("admin:write".into(), 2),
            ],
            total: 1812,
            denied: 14,
        },
        events: events().into_iter().take(12).collect(),
        findings: findings()
            .into_iter()
            .filter(|f| f.key_id == keys()[0].key.id)
            .collect(),
        journal: Vec::new(),
        rotations: Vec::new(),
        baseline: Ok(BaselineStatus::Ready {
            days: 30.4,
            events: 52_310,
            per_hour_median: 12.0,
            per_hour_sigma: 3.0,
            networks: 2,
            agents: 2,
            rhythm: "weekdays 08–18 UTC".into(),
        }),
        since: None,
    }
}

/// The detail of a key whose baseline is still learning.
pub fn detail_learning() -> Detail {
    let mut d = detail();
    d.baseline = Ok(BaselineStatus::Learning {
        days: 3.6,
        events: 41,
        need_days: 7,
        need_events: 50,
    });
    d
}

thread_local! {
    /// The cache the events walk reads: the fixture's events, nothing else.
    static EVENTS_CACHE: Store = {
        let mut store = Store::open_in_memory().expect("in-memory cache");
        store
            .ensure_provider("talentgrid", "http", None)
            .expect("provider");
        let mut evs: Vec<Event> = events().into_iter().map(|r| r.event).collect();
        evs.reverse();
        store
            .insert_events("talentgrid", &evs, None)
            .expect("fixture events");
        store
    };
}

/// Runs the filter and events effects inline (everything else is dropped) and feeds
/// their results.
pub fn settle(state: &mut State, effects: Vec<Effect>) {
    for e in effects {
        match e {
            Effect::Filter(job) => {
                let v = keyaudit::tui::search::run_now(&job);
                let more = state.update(Action::FilterApplied(job.generation, Arc::new(v)));
                settle(state, more);
            }
            Effect::LoadEvents(req) => {
                let page = EVENTS_CACHE.with(|store| {
                    keyaudit::tui::view::events::load_events_page(store, &req, &|| true)
                        .expect("fixture events read")
                        .expect("not superseded")
                });
                let more = state.update(Action::EventsLoaded(
                    req.generation,
                    req.walk,
                    Box::new(page),
                ));
                settle(state, more);
            }
            _ => {}
        }
    }
}

/// Applies an action and settles its filter effects; returns the effects.
pub fn apply(state: &mut State, action: Action) -> Vec<Effect> {
    let fx = state.update(action);
    settle(state, fx.clone());
    fx
}

/// A workstation with the fixture loaded, at a terminal size, read-only.
pub fn state(width: u16, height: u16) -> State {
    let mut s = State::new(setup(width, height));
    apply(&mut s, Action::KeysLoaded(Arc::new(keys())));
    s.update(Action::FindingsLoaded(findings()));
    s.update(Action::JournalLoaded(journal()));
    s.update(Action::ProvidersLoaded(providers()));
    s
}

/// The setup of [`state`]: the fixture's providers and their capabilities, nothing loaded.
pub fn setup(width: u16, height: u16) -> Setup {
    let mut caps = std::collections::HashMap::new();
    caps.insert("talentgrid".to_string(), full_caps());
    caps.insert(
        "payroll-hub".to_string(),
        Capabilities {
            disable: false,
            ..full_caps()
        },
    );
    Setup {
        now: now(),
        demo: false,
        write: false,
        read_only: false,
        keymap: Arc::new(Keymap::default()),
        theme: Theme::dark(),
        capabilities: caps,
        size: (width, height),
    }
}
