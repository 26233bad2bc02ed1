//! The key detail view: one key's activity, networks, agents, scopes, events, findings,
//! journal and baseline; and the read that gathers them (run by the runner).

use super::{ago, block, clean, is_expiring, is_stale, severity_style, stamp, stretch, thousands};
use crate::detect::BaselineStatus;
use crate::store::{
    ActivityRequest, EventQuery, EventRow, FindingQuery, KeyActivity, Store, StoreError,
};
use crate::tui::action::{Action, Detail, Effect};
use crate::tui::state::State;
use crate::tui::strings as s;
use crate::when::short_age;
use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};
use ratatui::Frame;

/// The newest events of the key the detail view reads.
pub const DETAIL_EVENTS: usize = 50;

/// The key detail view: which key, what was read about it, how far it is scrolled.
#[derive(Debug, Default)]
pub struct DetailView {
    /// The key shown.
    pub key_ref: Option<i64>,
    /// What was read about it (`None` while loading).
    pub data: Option<Box<Detail>>,
    pub scroll: u16,
    /// The finding the operator opened the key from (its id): it suggests the reason of
    /// an action taken here.
    pub from_finding: Option<String>,
    /// The exposure time of the exposure finding the key was opened from: the events
    /// shown are those since then.
    pub since: Option<DateTime<Utc>>,
}

/// Applies the actions of the detail view: the detail arrived.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::DetailLoaded(d) => {
            if Some(d.key.key_ref) == st.detail.key_ref && d.since == st.detail.since {
                st.detail.data = Some(d);
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn kv<'a>(state: &State, k: &'a str, v: String) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{k:<12}"), state.theme.dim),
        Span::raw(v),
    ])
}

pub(super) fn render(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let Some(d) = &state.detail.data else {
        f.render_widget(
            Paragraph::new(s::LOADING)
                .style(t.dim)
                .block(block(state, " detail ")),
            area,
        );
        return;
    };
    let k = &d.key.key;
    let now = state.now;
    // The prefix line only where there is height to spare.
    let meta_height = if area.height >= 30 { 10 } else { 9 };
    let [top, spark, rest] = Layout::vertical([
        Constraint::Length(meta_height),
        Constraint::Length(4),
        Constraint::Fill(1),
    ])
    .areas(area);
    let [meta, scopes] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);

    let env = clean(k.environment.as_deref().unwrap_or("-"));
    let mut env_line = kv(state, "environment", env);
    if k.is_production() {
        env_line = env_line.style(t.production);
    }
    let mut status = k.status.as_str().to_string();
    if is_expiring(k, now) {
        status.push_str(" (expiring)");
    }
    if is_stale(k, now) {
        status.push_str(" (stale)");
    }
    let created = k
        .created
        .map(|c| format!("{} ago", short_age(now - c)))
        .unwrap_or("-".into());
    let expires = k
        .expires
        .map(|e| {
            if e > now {
                format!("in {}", short_age(e - now))
            } else {
                format!("{} ago", short_age(now - e))
            }
        })
        .unwrap_or("never".into());
    // Label column 12, borders 2.
    let value_width = meta.width.saturating_sub(14) as usize;
    let (baseline, baseline_style) = match &d.baseline {
        Ok(b) => (
            s::baseline(b, value_width >= 50),
            match b {
                BaselineStatus::Ready { .. } => t.good,
                BaselineStatus::Learning { .. } => t.stale,
                BaselineStatus::NoHistory => t.dim,
            },
        ),
        Err(e) => (s::baseline_unknown(&clean(e)), t.bad),
    };
    let lines = vec![
        kv(
            state,
            "id",
            format!("{} / {}", clean(&k.provider), clean(&k.id)),
        ),
        kv(state, "owner", clean(&k.owner)),
        env_line,
        kv(state, "status", status),
        Line::from(vec![
            Span::styled(format!("{:<12}", "baseline"), t.dim),
            Span::styled(baseline, baseline_style),
        ]),
        kv(state, "created", format!("{created} · expires {expires}")),
        kv(state, "last used", ago(now, k.last_used)),
        kv(
            state,
            "prefix",
            format!("{} {}", clean(&k.prefix), clean(&k.fingerprint)),
        ),
    ];
    f.render_widget(
        Paragraph::new(lines).block(block(state, format!(" {} ", clean(&k.name)))),
        meta,
    );

    // Least privilege at a glance: every granted scope with its use in the window.
    let mut scope_lines = Vec::new();
    for g in &k.scopes {
        let used = d
            .activity
            .scopes_used
            .iter()
            .find(|(u, _)| u == g)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        if used > 0 {
            scope_lines.push(Line::from(vec![
                Span::styled("✓ ", t.good),
                Span::raw(format!("{} ", clean(g))),
                Span::styled(format!("{used}"), t.dim),
            ]));
        } else {
            scope_lines.push(Line::from(vec![
                Span::styled("✗ ", t.stale),
                Span::styled(format!("{} unused", clean(g)), t.stale),
            ]));
        }
    }
    for (u, n) in &d.activity.scopes_used {
        if !k.scopes.contains(u) {
            scope_lines.push(Line::from(vec![
                Span::styled("! ", t.bad),
                Span::styled(format!("{} not granted {n}", clean(u)), t.bad),
            ]));
        }
    }
    let used_count = k
        .scopes
        .iter()
        .filter(|g| d.activity.scopes_used.iter().any(|(u, _)| u == *g))
        .count();
    f.render_widget(
        Paragraph::new(scope_lines).block(block(
            state,
            format!(" scopes: {used_count}/{} used in 30d ", k.scopes.len()),
        )),
        scopes,
    );

    let per_day = &d.activity.per_day;
    let data = stretch(per_day, spark.width.saturating_sub(2) as usize);
    f.render_widget(
        Sparkline::default().data(&data).style(t.header).block(
            block(
                state,
                format!(
                    " activity 30d: {} events, {} denied, peak {}/day ",
                    thousands(d.activity.total as usize),
                    thousands(d.activity.denied as usize),
                    per_day.iter().max().copied().unwrap_or(0)
                ),
            )
            .title_bottom(Line::styled(s::AXIS_30_DAYS_AGO, t.dim).left_aligned())
            .title_bottom(Line::styled(s::AXIS_TODAY, t.dim).right_aligned()),
        ),
        spark,
    );

    let [left, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(rest);
    let mut src = vec![Line::styled("networks", t.header)];
    src.extend(
        d.activity
            .networks
            .iter()
            .map(|(ip, n)| Line::raw(format!("{n:>6} {}", clean(ip)))),
    );
    src.push(Line::styled("user agents", t.header));
    src.extend(
        d.activity
            .agents
            .iter()
            .map(|(ua, n)| Line::raw(format!("{n:>6} {}", clean(ua)))),
    );
    f.render_widget(
        Paragraph::new(src).block(block(state, " sources 30d ")),
        left,
    );

    let mut lines = Vec::new();
    if !d.rotations.is_empty() {
        lines.push(Line::styled("rotation in progress", t.header));
        lines.extend(d.rotations.iter().map(|r| Line::raw(clean(r))));
    }
    lines.push(Line::styled(
        format!("findings ({})", d.findings.len()),
        t.header,
    ));
    for fi in &d.findings {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<8} ", fi.severity.as_str()),
                severity_style(state, fi.severity),
            ),
            Span::raw(format!("{} [{}]", clean(&fi.title), fi.status)),
        ]));
    }
    lines.push(Line::styled(
        format!("journal ({})", d.journal.len()),
        t.header,
    ));
    for j in &d.journal {
        // Who: a team's journal has entries from several machines.
        lines.push(Line::raw(format!(
            "{} {} {}@{} {}",
            stamp(j.time),
            clean(&j.action),
            clean(&j.os_user),
            clean(&j.host),
            clean(&j.result),
        )));
    }
    lines.push(match d.since {
        Some(since) => Line::styled(
            s::events_since_exposure(
                &since.format("%Y-%m-%d %H:%M UTC").to_string(),
                d.events.len(),
                d.events.len() >= DETAIL_EVENTS,
            ),
            t.bad,
        ),
        None => Line::styled("recent events", t.header),
    });
    for e in &d.events {
        let ev = &e.event;
        lines.push(Line::from(vec![
            Span::raw(format!("{} ", stamp(ev.time))),
            Span::styled(
                format!("{:<7} ", ev.outcome.as_str()),
                if ev.outcome == crate::model::Outcome::Success {
                    t.good
                } else {
                    t.bad
                },
            ),
            Span::raw(format!(
                "{} {}",
                clean(&ev.action),
                clean(ev.source_ip.as_deref().unwrap_or("-"))
            )),
        ]));
    }
    f.render_widget(
        Paragraph::new(lines)
            .scroll((state.detail.scroll, 0))
            .block(block(state, " findings · journal · events ")),
        right,
    );
}

/// Reads everything the detail view shows about one key from the cache. The baseline
/// status is judged with the detection settings `detect`.
pub fn load_detail(
    s: &Store,
    key_ref: i64,
    now: DateTime<Utc>,
    since: Option<DateTime<Utc>>,
    detect: &crate::detect::DetectConfig,
) -> Result<Option<Detail>, StoreError> {
    let r = detail_activity(key_ref, now);
    let activity = s.key_activity(r.key_ref, r.until, r.days, r.top)?;
    let events = s
        .event_page(&detail_events(key_ref, since), usize::MAX, &|| true)?
        .unwrap_or_default()
        .rows;
    let state = s.detect_state(key_ref)?;
    let parts = DetailParts {
        activity,
        events,
        state,
        journal: None,
        rotations: None,
    };
    detail_with(s, key_ref, since, detect, parts)
}

/// The journal entries the detail lists, newest first.
pub const DETAIL_JOURNAL: usize = 50;

/// What the detail shows that is read wherever it is kept: the key's activity, events
/// and detection state (where the events are), and its journal (the team's, when read).
pub struct DetailParts {
    pub activity: KeyActivity,
    pub events: Vec<EventRow>,
    pub state: Option<Vec<u8>>,
    /// Newest first; `None`: the cache's.
    pub journal: Option<Vec<crate::model::JournalEntry>>,
    /// The team's open rotations of the key, described; `None`: the cache's.
    pub rotations: Option<Vec<String>>,
}

/// One open rotation, as the detail lists it, what matters first (a narrow screen cuts
/// the end): `grace until 12-07 05:22 UTC · alice@ws-12 team #7 · new key key_91ab`.
/// `whose` names the workflow (`workflow #3`, `alice@ws-12 team #7`).
pub fn describe_rotation(w: &crate::action::workflow::Workflow, whose: &str) -> String {
    use crate::action::workflow::State;
    let new = w
        .new_key_id
        .as_deref()
        .map(|n| format!(" · new key {}", clean(n)))
        .unwrap_or_default();
    let at = match (w.state, w.grace_until) {
        // UTC: when the old key stops working is read across time zones.
        (State::Grace, Some(g)) => format!("grace until {}", g.format("%m-%d %H:%M UTC")),
        _ => format!("{} at step {}", w.state, w.step),
    };
    format!("{at} · {whose}{new}")
}

/// The activity the detail view shows: 30 days, the 8 most frequent networks and agents.
pub fn detail_activity(key_ref: i64, now: DateTime<Utc>) -> ActivityRequest {
    ActivityRequest {
        key_ref,
        until: now,
        days: 30,
        top: 8,
    }
}

/// The key's newest events the detail view lists.
pub fn detail_events(key_ref: i64, since: Option<DateTime<Utc>>) -> EventQuery {
    EventQuery {
        key_ref: Some(key_ref),
        since,
        newest_first: true,
        limit: Some(DETAIL_EVENTS),
        ..Default::default()
    }
}

/// The detail of one key from the cache, with its activity, events and detection state
/// read wherever the events are kept.
pub fn detail_with(
    s: &Store,
    key_ref: i64,
    since: Option<DateTime<Utc>>,
    detect: &crate::detect::DetectConfig,
    parts: DetailParts,
) -> Result<Option<Detail>, StoreError> {
    let DetailParts {
        activity,
        events,
        state,
        journal,
        rotations,
    } = parts;
    let Some(key) = s.key_by_ref(key_ref)? else {
        return Ok(None);
    };
    let findings = s.findings(&FindingQuery {
        key_ref: Some(key_ref),
        ..Default::default()
    })?;
    let rotations = match rotations {
        Some(r) => r,
        None => crate::action::workflow::list(s, false)?
            .iter()
            .filter(|w| w.provider == key.key.provider && w.key_id == key.key.id)
            .map(|w| describe_rotation(w, &format!("workflow #{}", w.id)))
            .collect(),
    };
    let journal = match journal {
        Some(j) => j,
        None => {
            let mut j = s.journal(Some(&crate::action::target(&key.key)), Some(DETAIL_JOURNAL))?;
            j.reverse();
            j
        }
    };
    let baseline = Ok(crate::detect::baseline_of(state.as_deref(), detect));
    Ok(Some(Detail {
        key,
        activity,
        events,
        findings,
        journal,
        rotations,
        baseline,
        since,
    }))
}
