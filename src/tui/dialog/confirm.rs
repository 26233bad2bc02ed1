//! The one confirm dialog of every destructive action (and of unlocking write mode):
//! requests are checked against read-only here, the dialog names what it acts on, starts
//! on Cancel and, for bulk or production, asks for the count or the key name (the rule of
//! `action::confirm`, which the CLI follows too); once the typed text matches, focus moves
//! to Confirm. Actions on keys ask a reason, suggested by the finding the operator came
//! from; it goes into the journal. Only the confirmed action makes an effect.

use crate::action::confirm::{must_type, reason_from, MustType};
use crate::action::KeyOp;
use crate::model::KeyStatus;
use crate::store::KeyRow;
use crate::tui::action::{Action, Effect, View};
use crate::tui::dialog::secret::SecretDialog;
use crate::tui::state::State;
use crate::tui::strings as s;
use crate::tui::view::{ago, block, centered, clean, stamp, trunc};
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

/// What a confirm dialog confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmKind {
    /// An operation on keys at their provider.
    KeyOp(KeyOp),
    /// Rotating one key, with the old key's grace period in seconds (0: none).
    Rotate { grace_secs: u64 },
    /// A guided rotation of one key (`super::guided`): starting it, or, given its
    /// workflow, revoking the old key now that it is quiet.
    RotateGuided { workflow: Option<i64> },
    /// Unlocking write mode.
    Write,
}

/// The default grace period of a rotation from the workstation: 24 hours.
pub const DEFAULT_ROTATE_GRACE_SECS: u64 = 24 * 3600;

/// The grace periods ↑/↓ step through in the rotate confirm dialog (0: the old key is
/// revoked as soon as the new one is verified).
pub const ROTATE_GRACE_STEPS: [u64; 8] = [
    0,
    3600,
    4 * 3600,
    12 * 3600,
    24 * 3600,
    48 * 3600,
    72 * 3600,
    168 * 3600,
];

/// The one confirm dialog of every destructive action.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub kind: ConfirmKind,
    /// The keys it acts on.
    pub keys: Vec<KeyRow>,
    /// Text the operator must type before Confirm is enabled (a key name or a count).
    pub expected: Option<String>,
    /// Whether `expected` is the count of keys (else a key name).
    pub expected_is_count: bool,
    pub typed: String,
    /// Focus on Confirm (it starts on Cancel).
    pub on_confirm: bool,
    /// Why, for the journal (actions on keys; suggested by a finding, editable).
    pub reason: String,
    /// Focus on the reason field (typing edits the reason).
    pub on_reason: bool,
    /// What the dialog explains above the keys (a guided rotation's instructions).
    pub detail: Option<String>,
}

impl Confirm {
    /// A dialog for `kind` on `keys`, on Cancel, asking what [`must_type`] says.
    pub(crate) fn new(kind: ConfirmKind, keys: Vec<KeyRow>, reason: String) -> Confirm {
        let must = must_type(keys.iter().map(|k| &k.key));
        Confirm {
            kind,
            expected: must.as_ref().map(MustType::text),
            expected_is_count: matches!(must, Some(MustType::Count(_))),
            keys,
            typed: String::new(),
            on_confirm: false,
            reason,
            on_reason: false,
            detail: None,
        }
    }

    /// True when Confirm may be pressed.
    pub fn armed(&self) -> bool {
        self.expected
            .as_ref()
            .is_none_or(|e| self.typed.trim() == e)
    }

    /// Whether the dialog asks a reason (every action on keys).
    pub fn asks_reason(&self) -> bool {
        !matches!(self.kind, ConfirmKind::Write)
    }
}

impl State {
    pub(crate) fn request_op(&mut self, op: KeyOp) -> Vec<Effect> {
        if !self.write {
            self.fail(s::refused_read_only(op.as_str()));
            return Vec::new();
        }
        let keys = self.targets();
        if keys.is_empty() {
            self.fail(s::NOTHING_SELECTED);
            return Vec::new();
        }
        if let Some(k) = keys.iter().find(|k| {
            !self
                .capabilities
                .get(&k.key.provider)
                .is_some_and(|c| op.supported_by(c))
        }) {
            self.fail(s::unsupported(&k.key.provider, op.as_str()));
            return Vec::new();
        }
        let reason = self.suggested_reason(&keys);
        self.confirm = Some(Confirm::new(ConfirmKind::KeyOp(op), keys, reason));
        Vec::new()
    }

    /// The reason a dialog on `keys` starts with: for one key, the finding the operator
    /// came to it from, else its most severe open finding; else nothing.
    pub(crate) fn suggested_reason(&self, keys: &[KeyRow]) -> String {
        let [k] = keys else {
            return String::new();
        };
        let of_key =
            |f: &&crate::model::Finding| f.provider == k.key.provider && f.key_id == k.key.id;
        let came_from = (self.view == View::Detail)
            .then_some(self.detail.from_finding.as_deref())
            .flatten()
            .and_then(|id| {
                self.findings
                    .rows
                    .iter()
                    .filter(of_key)
                    .find(|f| f.id == id)
            });
        came_from
            .or_else(|| {
                self.findings
                    .rows
                    .iter()
                    .filter(of_key)
                    .filter(|f| f.status == crate::model::FindingStatus::Open)
                    .max_by_key(|f| f.severity)
            })
            .map(reason_from)
            .unwrap_or_default()
    }

    pub(crate) fn request_rotate(&mut self) -> Vec<Effect> {
        if !self.write {
            self.fail(s::refused_read_only("rotate"));
            return Vec::new();
        }
        if !self.keys.marked.is_empty() && self.view == View::Keys {
            self.fail(s::ROTATE_ONE_AT_A_TIME);
            return Vec::new();
        }
        if self.rotating {
            self.fail(s::ROTATE_RUNNING);
            return Vec::new();
        }
        let keys = self.targets();
        let Some(k) = keys.first() else {
            self.fail(s::NOTHING_SELECTED);
            return Vec::new();
        };
        let caps = self.capabilities.get(&k.key.provider);
        if caps.is_some_and(|c| c.rotate_guided && !(c.rotate_overlap || c.rotate_atomic))
            && !matches!(k.key.status, KeyStatus::Revoked | KeyStatus::Expired)
        {
            let k = k.clone();
            return self.request_guided(k);
        }
        if !caps.is_some_and(|c| c.rotate_overlap || c.rotate_atomic) {
            self.fail(s::unsupported(&k.key.provider, "rotate"));
            return Vec::new();
        }
        if matches!(k.key.status, KeyStatus::Revoked | KeyStatus::Expired) {
            self.fail(format!(
                "{} is {}; only an active or disabled key can be rotated.",
                k.key.name, k.key.status
            ));
            return Vec::new();
        }
        let grace_secs = if caps.is_some_and(|c| c.rotate_overlap) {
            DEFAULT_ROTATE_GRACE_SECS
        } else {
            0
        };
        let reason = self.suggested_reason(&keys[..1]);
        self.confirm = Some(Confirm::new(
            ConfirmKind::Rotate { grace_secs },
            keys.into_iter().take(1).collect(),
            reason,
        ));
        Vec::new()
    }

    pub(crate) fn submit_confirm(&mut self) -> Vec<Effect> {
        let Some(mut c) = self.confirm.take() else {
            return Vec::new();
        };
        // Before the typed text matches, Enter only says what to type: it never presses
        // a focused Cancel, nor leaves the dialog.
        if !c.armed() {
            self.fail(s::confirmation_mismatch(
                &clean(c.expected.as_deref().unwrap_or("")),
                c.expected_is_count,
            ));
            self.confirm = Some(c);
            return Vec::new();
        }
        if c.on_reason {
            c.on_reason = false;
            c.on_confirm = true;
            self.confirm = Some(c);
            return Vec::new();
        }
        if !c.on_confirm {
            self.say(s::CANCELLED);
            return Vec::new();
        }
        if c.asks_reason() && c.reason.trim().is_empty() {
            self.fail(s::REASON_NEEDED);
            c.on_confirm = false;
            c.on_reason = true;
            self.confirm = Some(c);
            return Vec::new();
        }
        let reason = c.reason.trim().to_string();
        match c.kind {
            ConfirmKind::Write => {
                self.write = true;
                self.say(s::NOW_WRITE);
                Vec::new()
            }
            ConfirmKind::Rotate { grace_secs } => match self.start_rotation(c.keys) {
                Some(key) => vec![Effect::Rotate {
                    key,
                    grace: std::time::Duration::from_secs(grace_secs),
                    reason,
                }],
                None => Vec::new(),
            },
            ConfirmKind::RotateGuided { workflow } => match self.start_rotation(c.keys) {
                Some(key) => vec![Effect::RotateGuided {
                    key,
                    reason,
                    workflow,
                }],
                None => Vec::new(),
            },
            ConfirmKind::KeyOp(op) => {
                // The choke point: nothing reaches a provider without write mode.
                if !self.write {
                    self.fail(s::refused_read_only(op.as_str()));
                    return Vec::new();
                }
                self.pending_ops += c.keys.len();
                self.keys.marked.clear();
                self.say(format!("{}: {} key(s)…", op.as_str(), c.keys.len()));
                vec![Effect::ApplyKeyOp(
                    op,
                    c.keys.into_iter().map(|k| k.key).collect(),
                    reason,
                )]
            }
        }
    }
}

impl State {
    /// The key a confirmed rotation acts on (the dialog's one key), once the same choke
    /// point as every key operation (write mode) lets it through; marks a rotation as
    /// running.
    fn start_rotation(&mut self, keys: Vec<KeyRow>) -> Option<Box<crate::model::Key>> {
        if !self.write {
            self.fail(s::refused_read_only("rotate"));
            return None;
        }
        let k = keys.into_iter().next()?;
        self.rotating = true;
        self.say(s::rotating(&crate::action::target(&k.key)));
        Some(Box::new(k.key))
    }
}

/// Applies an action while the confirm dialog is open; `None` passes it on.
pub(crate) fn update_open(st: &mut State, action: &Action) -> Option<Vec<Effect>> {
    st.confirm.as_ref()?;
    match action {
        Action::InputCancel => {
            st.confirm = None;
            st.say(s::CANCELLED);
            Some(Vec::new())
        }
        Action::ToggleFocus => {
            // Cancel -> Confirm -> the reason (when asked) -> Cancel.
            if let Some(c) = &mut st.confirm {
                (c.on_confirm, c.on_reason) = match (c.on_confirm, c.on_reason) {
                    (false, false) => (true, false),
                    (true, _) if c.asks_reason() => (false, true),
                    _ => (false, false),
                };
            }
            Some(Vec::new())
        }
        Action::InputSubmit => Some(st.submit_confirm()),
        Action::AdjustGrace(longer) => {
            let longer = *longer;
            let overlap = st.confirm.as_ref().and_then(|c| {
                c.keys
                    .first()
                    .and_then(|k| st.capabilities.get(&k.key.provider))
                    .map(|caps| caps.rotate_overlap)
            });
            if let Some(c) = &mut st.confirm {
                if let (ConfirmKind::Rotate { grace_secs }, Some(true)) = (&mut c.kind, overlap) {
                    let steps = ROTATE_GRACE_STEPS;
                    *grace_secs = if longer {
                        steps.iter().copied().find(|s| *s > *grace_secs)
                    } else {
                        steps.iter().rev().copied().find(|s| *s < *grace_secs)
                    }
                    .unwrap_or(*grace_secs);
                }
            }
            Some(Vec::new())
        }
        Action::Input(ch) => {
            if let Some(c) = &mut st.confirm {
                if c.on_reason {
                    c.reason.push(*ch);
                } else if c.expected.is_some() {
                    c.typed.push(*ch);
                    // Typing was the deliberate act: Enter now confirms.
                    if c.armed() {
                        c.on_confirm = true;
                    }
                }
            }
            Some(Vec::new())
        }
        Action::InputBackspace => {
            if let Some(c) = &mut st.confirm {
                if c.on_reason {
                    c.reason.pop();
                } else {
                    c.typed.pop();
                }
            }
            Some(Vec::new())
        }
        _ => None,
    }
}

/// Applies the requests of destructive actions (and of write mode) and their results.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::RequestDisable => st.request_op(KeyOp::Disable),
        Action::RequestEnable => st.request_op(KeyOp::Enable),
        Action::RequestRevoke => st.request_op(KeyOp::Revoke),
        Action::RequestRotate => st.request_rotate(),
        Action::RequestWrite => {
            if st.locked_read_only {
                st.fail(s::LOCKED_READ_ONLY);
            } else if st.write {
                st.say(s::NOW_WRITE);
            } else {
                st.confirm = Some(Confirm::new(ConfirmKind::Write, Vec::new(), String::new()));
            }
            Vec::new()
        }
        Action::SetReadOnly => {
            st.write = false;
            st.say(s::NOW_READ_ONLY);
            Vec::new()
        }
        Action::KeyOpFinished(op, target, result) => {
            st.pending_ops = st.pending_ops.saturating_sub(1);
            match result {
                Ok(status) => st.say(format!("{} {target}: done, now {status}", op.as_str())),
                Err(e) => st.fail(format!("{} {target} failed: {e}", op.as_str())),
            }
            if st.pending_ops == 0 {
                let mut fx = vec![Effect::LoadKeys];
                fx.extend(st.view_reload());
                return fx;
            }
            Vec::new()
        }
        Action::RotateFinished(r) => {
            st.rotating = false;
            let target = crate::action::target(&r.key);
            match &r.note {
                Some(n) => st.fail(format!("{}; {n}", s::rotated(&target, &r.new_key_id))),
                None => st.say(s::rotated(&target, &r.new_key_id)),
            }
            st.secret = Some(SecretDialog {
                rotated: *r,
                revealed: false,
            });
            let mut fx = vec![Effect::LoadKeys];
            fx.extend(st.view_reload());
            fx
        }
        Action::RotateFailed(target, why) => {
            st.rotating = false;
            st.fail(s::rotate_failed(&target, &why));
            let mut fx = vec![Effect::LoadKeys];
            fx.extend(st.view_reload());
            fx
        }
        _ => Vec::new(),
    }
}

pub(crate) fn render(state: &State, c: &Confirm, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let mut lines = Vec::new();
    let title = match c.kind {
        ConfirmKind::Write => {
            lines.push(Line::raw(s::WRITE_BODY));
            s::WRITE_TITLE.to_string()
        }
        ConfirmKind::KeyOp(_) | ConfirmKind::Rotate { .. } | ConfirmKind::RotateGuided { .. } => {
            let verb = match c.kind {
                ConfirmKind::KeyOp(op) => op.as_str(),
                ConfirmKind::RotateGuided { workflow: Some(_) } => "revoke",
                _ => "rotate",
            };
            let mut v = verb.to_string();
            v[..1].make_ascii_uppercase();
            match c.kind {
                ConfirmKind::RotateGuided { workflow } => {
                    lines.push(Line::styled(
                        if workflow.is_some() {
                            s::GUIDED_REVOKE
                        } else {
                            s::GUIDED_START
                        },
                        t.bad,
                    ));
                    if let Some(d) = &c.detail {
                        lines.push(Line::raw(clean(d)));
                    }
                }
                _ => lines.push(Line::styled(s::op_effect(verb), t.bad)),
            }
            if let ConfirmKind::Rotate { grace_secs } = c.kind {
                let overlap = c
                    .keys
                    .first()
                    .and_then(|k| state.capabilities.get(&k.key.provider))
                    .is_some_and(|caps| caps.rotate_overlap);
                lines.push(Line::raw(if !overlap {
                    s::ROTATE_ATOMIC.to_string()
                } else if grace_secs > 0 {
                    let until = state.now + chrono::Duration::seconds(grace_secs as i64);
                    s::rotate_grace(grace_secs / 3600, &stamp(until))
                } else {
                    s::ROTATE_NO_GRACE.to_string()
                }));
                if overlap {
                    lines.push(Line::styled(s::ROTATE_GRACE_KEYS, t.dim));
                }
            }
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                format!(
                    "{:<12} {:<22} {:<16} {:<6} {}",
                    "PROVIDER", "KEY", "OWNER", "ENV", "LAST USED"
                ),
                t.header,
            ));
            const SHOWN: usize = 6;
            for r in c.keys.iter().take(SHOWN) {
                let k = &r.key;
                let line = Line::raw(format!(
                    "{:<12} {:<22} {:<16} {:<6} {}",
                    trunc(&clean(&k.provider), 12),
                    trunc(&clean(&k.name), 22),
                    trunc(&clean(&k.owner), 16),
                    trunc(&clean(k.environment.as_deref().unwrap_or("-")), 6),
                    ago(state.now, k.last_used)
                ));
                lines.push(if k.is_production() {
                    line.style(t.production)
                } else {
                    line
                });
                lines.push(Line::styled(format!("  id {}", clean(&k.id)), t.dim));
            }
            if c.keys.len() > SHOWN {
                lines.push(Line::raw(format!("… and {} more", c.keys.len() - SHOWN)));
            }
            s::confirm_title(&v, c.keys.len())
        }
    };
    lines.push(Line::raw(""));
    let typing = !c.on_reason && !c.armed();
    if let Some(e) = &c.expected {
        lines.push(Line::from(vec![
            Span::styled(
                s::confirm_prompt(&clean(e), c.expected_is_count),
                t.key_hint,
            ),
            Span::raw(clean(&c.typed)),
            Span::styled(if typing { "█" } else { "" }, t.dim),
        ]));
    }
    if c.asks_reason() {
        lines.push(Line::from(vec![
            Span::styled(s::REASON_PROMPT, t.key_hint),
            Span::raw(clean(&c.reason)),
            Span::styled(if c.on_reason { "█" } else { "" }, t.dim),
        ]));
    }
    if c.expected.is_some() || c.asks_reason() {
        lines.push(Line::raw(""));
    }
    let cancel = if c.on_confirm {
        t.dim
    } else {
        t.selected.add_modifier(Modifier::BOLD)
    };
    let confirm = if !c.armed() {
        t.dim.add_modifier(Modifier::CROSSED_OUT)
    } else if c.on_confirm {
        t.badge_rw
    } else {
        t.base
    };
    lines.push(Line::from(vec![
        Span::raw("      "),
        Span::styled(format!("[ {} ]", s::CANCEL), cancel),
        Span::raw("    "),
        Span::styled(format!("[ {} ]", s::CONFIRM), confirm),
    ]));
    let width = area.width.saturating_sub(4).min(80);
    // Rows once wrapped (a guide's long lines take several), with a row of slack for
    // each wrapped line, as words wrap before the edge.
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let rows: usize = lines
        .iter()
        .map(|l| match l.width() {
            w if w > inner => w.div_ceil(inner) + 1,
            _ => 1,
        })
        .sum();
    let height = (rows as u16 + 4).min(area.height);
    let popup = centered(area, width, height);
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(state, title).border_style(t.bad)),
        popup,
    );
}
