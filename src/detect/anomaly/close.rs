//! Closing incidents: those that can no longer grow, their final wording, and what is
//! still open at the end of a run.

use super::*;

/// Moves incidents that can no longer grow at time `t` to `closed`.
pub(super) fn close_stale(st: &mut KeyState, t: Millis, cx: &Cx<'_>, closed: &mut Vec<Incident>) {
    let window = cx.cfg.novelty_window_hours as i64 * HOUR;
    let h = t.div_euclid(HOUR);
    let mut i = 0;
    while i < st.open.len() {
        let inc = &st.open[i];
        let done = match inc.rule.as_str() {
            "new_network" | "new_user_agent" | "dormant_wakeup" => t > inc.start + window,
            // Per response (last = its time) or per hour (last = the hour's start).
            "bulk_export" => t - inc.last > HOUR && inc.last < (h - 1) * HOUR,
            _ => inc.last < (h - 1) * HOUR,
        };
        if done {
            let inc = st.open.remove(i);
            if unconfirmed(&inc) {
                continue;
            }
            if inc.rule == "off_hours" {
                for (hod, n) in std::mem::take(&mut st.pending_hours) {
                    st.hours[hod as usize] += n as f32;
                }
            }
            closed.push(finish(inc, st, cx));
        } else {
            i += 1;
        }
    }
}

/// A new network on a key whose networks are not settled, with nothing unusual from it:
/// a network the key adopts (a person's second network), not a finding.
fn unconfirmed(inc: &Incident) -> bool {
    inc.rule == "new_network" && inc.peak == 0
}

/// Fills in the final wording of an incident.
pub(super) fn finish(mut inc: Incident, st: &KeyState, cx: &Cx<'_>) -> Incident {
    match inc.rule.as_str() {
        "new_network" if !inc.explanation.starts_with(|c: char| c.is_ascii_digit()) => {
            inc.explanation = format!(
                "{} from {}, {}. Confirm with {} that they moved, else rotate the key.",
                plural(inc.events, "request"),
                inc.subject,
                inc.explanation,
                owner_or(cx.key)
            );
        }
        "new_user_agent" if !inc.explanation.starts_with(|c: char| c.is_ascii_digit()) => {
            inc.explanation = format!(
                "{} with `{}`, {}. Confirm with {} that they changed clients.",
                plural(inc.events, "request"),
                inc.subject,
                inc.explanation,
                owner_or(cx.key)
            );
        }
        "bulk_export" if inc.title.is_empty() => {
            let usual = inc.explanation.clone();
            inc.title = format!("Bulk read of {} personal-data records", inc.sum);
            inc.explanation = format!(
                "{} returned {} records in {} minutes from {} (largest {}); this key's \
                 requests usually return at most {usual} records. Check what was exported \
                 with {} and rotate the key if it was not them.",
                plural(inc.events, "request"),
                inc.sum,
                ((inc.last - inc.start) / MINUTE).max(1),
                when(inc.start),
                inc.peak,
                owner_or(cx.key)
            );
        }
        "dormant_wakeup" => {
            inc.explanation = inc.explanation.replacen(
                "then used again from",
                &format!("then made {} from", plural(inc.events, "request")),
                1,
            );
        }
        _ => {}
    }
    let _ = st;
    inc
}

/// The incidents of a key at the end of a run: those still open (finished wording), the
/// hour still being counted (judged provisionally), and use after revocation or expiry.
pub(crate) fn pending(st: &KeyState, cx: &Cx<'_>, now: Millis) -> Vec<Incident> {
    let mut probe = st.clone();
    let mut out = Vec::new();
    if probe.bucket.hour >= 0 {
        close_bucket(&mut probe, cx, &mut out);
    }
    for inc in probe.open.drain(..) {
        if !unconfirmed(&inc) {
            out.push(finish(inc, st, cx));
        }
    }
    let k = cx.key;
    let stopped = match k.status {
        KeyStatus::Active => None,
        s => Some(s.as_str()),
    };
    if let Some(status) = stopped {
        if st.tail_count > 0 {
            out.push(Incident {
                rule: "revoked_use".into(),
                subject: String::new(),
                start: st.tail_first,
                last: st.tail_last,
                events: st.tail_count,
                rows: st.tail_rows.clone(),
                title: format!("Attempts to use the {status} key"),
                explanation: format!(
                    "{} with this key were refused after it stopped working (it is {status}), \
                     the first {} and the last {}; someone still holds it. Find the client \
                     behind {} and make sure the key is revoked, not only disabled.",
                    plural(st.tail_count, "request"),
                    when(st.tail_first),
                    when(st.tail_last),
                    owner_or(k)
                ),
                severity: 3,
                peak: 0,
                sum: 0,
            });
        }
    }
    if st.late_count > 0 && (k.expires.is_some_and(|x| x <= now) || k.replaced_at.is_some()) {
        let why = if k.replaced_at.is_some() {
            format!(
                "after it was rotated out (replaced by {})",
                k.rotated_to.as_deref().unwrap_or("a new key")
            )
        } else {
            format!(
                "after it expired on {}",
                when(k.expires.unwrap_or_default())
            )
        };
        out.push(Incident {
            rule: "revoked_use".into(),
            subject: "late".into(),
            start: st.late_first,
            last: st.late_last,
            events: st.late_count,
            rows: st.late_rows.clone(),
            title: "Key used after it should have stopped".into(),
            explanation: format!(
                "{} {why}, the first {} and the last {}. Move {} to the new key and revoke \
                 this one.",
                plural(st.late_count, "request"),
                when(st.late_first),
                when(st.late_last),
                owner_or(k)
            ),
            severity: 3,
            peak: 0,
            sum: 0,
        });
    }
    out
}
