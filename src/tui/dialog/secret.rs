//! The dialog that shows the new secret of a rotation once (masked until `v`, `c` copies
//! it through OSC 52); and the rotation that delivers it there (run by the runner).

use crate::action::rotate::{rotate, RotateRequest};
use crate::action::sink::{ScreenSlot, Sink};
use crate::model::Key;
use crate::provider::Provider;
use crate::secret::Secret;
use crate::tui::action::{Action, Effect, Rotated};
use crate::tui::state::State;
use crate::tui::strings as s;
use crate::tui::view::{block, centered, clean, stamp};
use crate::when::short_age;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;
use std::sync::Arc;

/// The dialog that shows a new secret once. Dropping it zeroizes the secret.
#[derive(Debug)]
pub struct SecretDialog {
    pub rotated: Rotated,
    /// The secret is shown in clear (`v`); masked otherwise.
    pub revealed: bool,
}

/// Applies an action while the secret dialog is open; `None` passes it on.
pub(crate) fn update(st: &mut State, action: &Action) -> Option<Vec<Effect>> {
    let d = st.secret.as_mut()?;
    match action {
        Action::RevealSecret => {
            d.revealed = !d.revealed;
            Some(Vec::new())
        }
        Action::CopySecret => {
            let secret = d.rotated.secret.clone();
            st.say(s::SECRET_COPIED);
            Some(vec![Effect::CopyToClipboard(secret)])
        }
        Action::CloseSecret | Action::InputCancel | Action::InputSubmit => {
            // Dropping the dialog zeroizes the secret.
            st.secret = None;
            st.say(s::SECRET_CLOSED);
            Some(Vec::new())
        }
        _ => None,
    }
}

pub(crate) fn render(state: &State, d: &SecretDialog, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let r = &d.rotated;
    let row = |label: &str, value: String| {
        Line::from(vec![
            Span::styled(format!("{label:<10}"), t.header),
            Span::raw(value),
        ])
    };
    let grace = match r.grace_until {
        Some(g) => format!("old key works until {} ({})", stamp(g), {
            let left = g - state.now;
            if left > chrono::Duration::zero() {
                format!("in {}", short_age(left))
            } else {
                "over".to_string()
            }
        }),
        None => "none: the old key stopped working".to_string(),
    };
    let secret = if d.revealed {
        Span::styled(r.secret.expose(), t.bad.add_modifier(Modifier::BOLD))
    } else {
        Span::styled(
            s::secret_masked(&clean(&r.secret.display_prefix())),
            t.key_hint,
        )
    };
    let mut lines = vec![
        row("provider", clean(&r.key.provider)),
        row(
            "old key",
            format!("{} ({})", clean(&r.key.name), clean(&r.key.id)),
        ),
        row("new key", clean(&r.new_key_id)),
        row("grace", grace),
        row("workflow", format!("#{}", r.workflow)),
        Line::raw(""),
        Line::from(vec![
            Span::styled(format!("{:<10}", "secret"), t.header),
            secret,
        ]),
        Line::raw(""),
        Line::styled(s::SECRET_WARNING, t.bad),
        Line::styled(s::SECRET_KEYS, t.dim),
    ];
    if let Some(n) = &r.note {
        lines.push(Line::styled(clean(n), t.bad));
    }
    let width = area.width.saturating_sub(4).min(80);
    let height = (lines.len() as u16 + 2).min(area.height);
    let popup = centered(area, width, height);
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(state, s::SECRET_TITLE).border_style(t.bad)),
        popup,
    );
}

/// Rotates `key` through the rotation workflow ([`crate::action::rotate::rotate`]) with
/// its new secret delivered to a screen slot, and answers with the action that opens the
/// secret dialog (or reports the failure). The secret never leaves memory.
pub async fn rotate_to_screen(
    db: &crate::store::Cache,
    provider: Arc<dyn Provider>,
    key: Key,
    grace: std::time::Duration,
    reason: String,
) -> Action {
    use crate::action::workflow::State as Wf;
    let target = crate::action::target(&key);
    let slot = ScreenSlot::new();
    let req = RotateRequest {
        provider,
        key: key.clone(),
        sink: Sink::Screen(slot.clone()),
        grace,
        force: false,
        reason: Some(reason),
    };
    let wf = match rotate(db, req).await {
        Ok(wf) => wf,
        Err(e) => return Action::RotateFailed(target, e.to_string()),
    };
    let secret = slot.take();
    match (secret, wf.state, wf.new_key_id.clone()) {
        (Some(secret), Wf::Grace | Wf::Done | Wf::Running, Some(new_key_id)) => {
            Action::RotateFinished(Box::new(Rotated {
                key,
                new_key_id,
                grace_until: wf.grace_until,
                workflow: wf.id,
                note: wf.error.clone(),
                secret,
            }))
        }
        // Rolled back or failed: a secret that reached the slot belongs to a revoked key
        // and is dropped (zeroized) here.
        _ => Action::RotateFailed(
            target,
            wf.error
                .unwrap_or_else(|| format!("the rotation ended {}", wf.state)),
        ),
    }
}

/// The OSC 52 sequence that puts `secret` on the terminal's clipboard.
pub fn osc52(secret: &Secret) -> zeroize::Zeroizing<String> {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = secret.expose().as_bytes();
    let mut out = zeroize::Zeroizing::new(String::with_capacity(bytes.len() * 4 / 3 + 12));
    out.push_str("\x1b]52;c;");
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push('\x07');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_is_base64_between_the_markers() {
        let seq = osc52(&Secret::new("tg_live_x".into()));
        assert_eq!(seq.as_str(), "\x1b]52;c;dGdfbGl2ZV94\x07");
        assert_eq!(
            osc52(&Secret::new("ab".into())).as_str(),
            "\x1b]52;c;YWI=\x07"
        );
        assert_eq!(
            osc52(&Secret::new("a".into())).as_str(),
            "\x1b]52;c;YQ==\x07"
        );
    }
}
