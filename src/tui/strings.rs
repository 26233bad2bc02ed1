//! Every sentence the workstation shows, in one place.

/// Name of the application in the header.
pub const APP: &str = "keyaudit";
/// Badge of a session on the embedded demo.
pub const BADGE_DEMO: &str = " DEMO ";
/// Badge of a read-only session.
pub const BADGE_RO: &str = " RO ";
/// Badge of a session able to act.
pub const BADGE_RW: &str = " RW ";
/// Badge while updates are frozen.
pub const BADGE_FROZEN: &str = " FROZEN ";

/// Shown when no key is cached yet.
pub const NO_KEYS: &str = "No keys in the cache yet. Syncing… (or run `keyaudit sync`)";
/// Shown when the filter hides every key.
pub const NO_MATCH: &str = "No key matches the filter. esc clears it.";
/// Shown while something loads (the keys, the detail of a key).
pub const LOADING: &str = "Loading…";
/// Keys table title while only its first keys are loaded.
pub const LOADING_REST: &str = "loading the rest…";
/// Events view without events.
pub const NO_EVENTS: &str = "No events.";
/// Events view when the filter keeps no event.
pub const NO_EVENT_MATCH: &str = "No event matches the filter. esc clears it.";
/// The events view's scope when it is not one key.
pub const ALL_KEYS: &str = "all keys";
/// How many events the events view shows: `shown` rows, matched by a filter or not; how
/// far back the walk has searched (`None`: every event); whether a read is running.
pub fn events_count(shown: usize, filtered: bool, reached: Option<&str>, reading: bool) -> String {
    let n = super::view::thousands(shown);
    let mut out = match (filtered, reached) {
        (false, _) => format!("{n} events"),
        (true, Some(t)) => format!("{n} matched back to {t}"),
        (true, None) => format!("{n} matched in all events"),
    };
    if reading {
        out.push_str(" · searching…");
    } else if reached.is_some() {
        out.push_str(" · more…");
    }
    out
}
/// Axis labels of the activity and histogram charts.
pub const AXIS_30_DAYS_AGO: &str = "30 days ago";
pub const AXIS_TODAY: &str = "today";
pub const AXIS_24_HOURS_AGO: &str = "24 hours ago";
pub const AXIS_NOW: &str = "now";

/// The baseline line of the key detail: whether detection has learned the key's normal
/// use, and the rhythm it learned. `wide` adds the second condition of learning, or the
/// days learned and the learned rate.
pub fn baseline(b: &crate::detect::BaselineStatus, wide: bool) -> String {
    use crate::detect::BaselineStatus as B;
    let days = |d: f64| {
        let d = d.max(0.0).floor() as u64;
        if d == 1 {
            "1 day".to_string()
        } else {
            format!("{d} days")
        }
    };
    match b {
        B::NoHistory if wide => "no history: detection has not analysed its events yet".into(),
        B::NoHistory => "no history yet".into(),
        B::Learning {
            days: d,
            events,
            need_days,
            need_events,
        } => {
            let have_days = d.max(0.0).floor() as u64;
            let day_part = format!("{have_days} of {need_days} days");
            let event_part = format!("{events} of {need_events} events");
            if wide {
                format!("learning ({day_part}, {event_part})")
            } else if have_days < *need_days as u64 {
                format!("learning ({day_part})")
            } else {
                format!("learning ({event_part})")
            }
        }
        B::Ready {
            days: d,
            per_hour_median,
            per_hour_sigma,
            rhythm,
            ..
        } => {
            // The rhythm first: it is what an analyst reads an off-hours finding against.
            if wide {
                format!(
                    "ready, {}, {rhythm}, {per_hour_median:.0}±{per_hour_sigma:.0}/hour",
                    days(*d)
                )
            } else {
                format!("ready, {rhythm}")
            }
        }
    }
}
/// The baseline line when it could not be read.
pub fn baseline_unknown(why: &str) -> String {
    format!("unknown ({why})")
}
/// The heading of the detail's events when the key was opened from an exposure finding.
pub fn events_since_exposure(since: &str, shown: usize, newest: bool) -> String {
    match shown {
        0 => format!("events since the exposure on {since}: none"),
        n if newest => format!("events since the exposure on {since} (the newest {n})"),
        n => format!("events since the exposure on {since} ({n})"),
    }
}
/// Findings view without findings.
pub const NO_FINDINGS: &str = "No findings. Run `keyaudit detect` to evaluate the rules.";
/// Journal view without entries.
pub const NO_JOURNAL: &str = "The journal is empty: no operator action yet.";
/// The rotations overlay while it reads them.
pub const ROTATIONS_READING: &str = "Reading the rotations in progress…";
/// The rotations overlay without rotations.
pub const NO_ROTATIONS: &str = "No rotation in progress.";
/// The rotations overlay's last line.
pub const ROTATIONS_FOOTER: &str = "j/k select · enter the key's detail · esc close";

/// A rotation's key that the cache does not hold (yet).
pub fn rotation_key_not_cached(key: &str) -> String {
    format!("{key} is not in this cache yet; sync (R) to read it")
}
/// Providers view without providers.
pub const NO_PROVIDERS: &str = "No provider in the cache yet.";
/// Badge of a session on a case (`keyaudit open`).
pub fn badge_case(name: &str) -> String {
    format!(" CASE {} ", crate::output::sanitize(name))
}
/// Title of the providers view's table of imported files.
pub const IMPORTED_FILES: &str = "imported files";

/// Refusal of an action in read-only mode.
pub fn refused_read_only(what: &str) -> String {
    format!("Refused: read-only session; {what} needs write mode (:write). Nothing was changed.")
}
/// Refusal of `:write` when the session was started with `--read-only`.
pub const LOCKED_READ_ONLY: &str =
    "Refused: this session was started read-only (--read-only or mode = \"read-only\").";
/// Refusal of an operation the provider does not support.
pub fn unsupported(provider: &str, op: &str) -> String {
    format!("{provider} cannot {op} keys; the action is not offered.")
}
/// Nothing is selected.
pub const NOTHING_SELECTED: &str = "No key selected.";
/// Rotation takes one key.
pub const ROTATE_ONE_AT_A_TIME: &str =
    "Rotate one key at a time: unmark the keys (u) and select the one to rotate.";
/// A rotation is already running.
pub const ROTATE_RUNNING: &str = "A rotation is running; wait for its secret dialog.";
/// A rotation was sent to the provider.
pub fn rotating(target: &str) -> String {
    format!("rotate {target}: rotating…")
}
/// A rotation failed or was rolled back.
pub fn rotate_failed(target: &str, why: &str) -> String {
    format!("rotate {target} failed: {why}")
}
/// The secret dialog is open after a rotation.
pub fn rotated(target: &str, new_id: &str) -> String {
    format!("rotate {target}: new key {new_id}; secret shown once")
}
/// The grace period line of the rotate confirm dialog.
pub fn rotate_grace(hours: u64, until: &str) -> String {
    format!("Grace {hours}h: the old key works until {until}, then it is revoked.")
}
/// The rotate confirm dialog with no grace period on a provider with overlap.
pub const ROTATE_NO_GRACE: &str =
    "No grace period: the old key is revoked as soon as the new one is verified.";
/// How to change the grace period.
pub const ROTATE_GRACE_KEYS: &str = "↑/↓ change the grace period";
/// The confirm dialog of a guided rotation that starts.
pub const GUIDED_START: &str =
    "Guided rotation: this provider cannot create keys through its API. \
Create the new key as below; each sync then watches for it to appear and for this key to go \
unused for 24 hours, and `r` here offers this key's revoke.";
/// The confirm dialog of a guided rotation whose old key is quiet.
pub const GUIDED_REVOKE: &str = "The new key is in place and this key has gone quiet: \
confirming revokes this key, permanently.";
/// While the runner looks up a key's guided rotation.
pub fn guided_checking(target: &str) -> String {
    format!("rotate {target}: a guided rotation; looking up where it stands…")
}
/// The rotate confirm dialog for a provider that rotates atomically.
pub const ROTATE_ATOMIC: &str =
    "No overlap: this provider rotates atomically, the old key stops working at once.";
/// Title of the secret dialog.
pub const SECRET_TITLE: &str = " New secret: shown once ";
/// What the operator must do with the secret.
pub const SECRET_WARNING: &str =
    "Store it now: it is not kept anywhere. Closing this dialog forgets it.";
/// The masked secret.
pub fn secret_masked(prefix: &str) -> String {
    format!("{prefix}••••••••")
}
/// How to reveal, copy and close.
pub const SECRET_KEYS: &str = "v reveal/hide · c copy (OSC 52 clipboard) · esc/enter close";
/// The secret was sent to the clipboard.
pub const SECRET_COPIED: &str =
    "Secret sent to the clipboard by OSC 52 (if the terminal allows it).";
/// The secret dialog was closed.
pub const SECRET_CLOSED: &str = "Secret dialog closed; the secret is forgotten.";
/// A dialog was cancelled.
pub const CANCELLED: &str = "Cancelled; nothing was changed.";
/// Write mode was unlocked.
pub const NOW_WRITE: &str = "Write mode: actions are enabled. :ro returns to read-only.";
/// Read-only again.
pub const NOW_READ_ONLY: &str = "Read-only: actions are disabled.";
/// The typed confirmation does not match.
pub fn confirmation_mismatch(expected: &str, count: bool) -> String {
    format!(
        "{} first; Esc cancels.",
        must_type(expected, count).prompt(|e| format!("`{e}`"))
    )
}
/// An unknown palette command.
pub fn unknown_command(cmd: &str) -> String {
    format!("Unknown command `{cmd}`; `:help` lists the commands.")
}
/// Updates are frozen.
pub const FROZEN: &str = "Updates frozen: new data is held until you press f again.";
/// Updates resumed.
pub const UNFROZEN: &str = "Updates resumed.";
/// A sync is already running.
pub const SYNC_RUNNING: &str = "A sync is already running.";

/// Title of the confirm dialog.
pub fn confirm_title(verb: &str, n: usize) -> String {
    if n == 1 {
        format!(" {verb} 1 key? ")
    } else {
        format!(" {verb} {n} keys? ")
    }
}
/// What each operation does, for the confirm dialog.
pub fn op_effect(op: &str) -> &'static str {
    match op {
        "revoke" => "Revoking is permanent: the key stops working and cannot be enabled again.",
        "disable" => "Disabling is reversible: the key stops working until enabled again.",
        "enable" => "Enabling lets the key work again.",
        "rotate" => "Rotating issues a new key whose secret is shown once, in a dialog here.",
        _ => "",
    }
}
/// Prompt to type the confirmation.
pub fn confirm_prompt(expected: &str, count: bool) -> String {
    format!("{}: ", must_type(expected, count).prompt(str::to_string))
}
fn must_type(expected: &str, count: bool) -> crate::action::confirm::MustType {
    use crate::action::confirm::MustType;
    match expected.parse() {
        Ok(n) if count => MustType::Count(n),
        _ => MustType::KeyName(expected.to_string()),
    }
}
/// Prompt of the reason of an action (it goes into the journal).
pub const REASON_PROMPT: &str = "Reason (journaled): ";
/// Confirm was pressed with no reason.
pub const REASON_NEEDED: &str = "Type a reason: it goes into the journal. Enter moves to Confirm.";
/// The `:write` dialog.
pub const WRITE_TITLE: &str = " Enable write mode? ";
/// The `:write` dialog's explanation.
pub const WRITE_BODY: &str = "Write mode lets this session disable, revoke and rotate keys at the providers. Every action still asks for confirmation and is journaled.";
/// Label of the cancel button.
pub const CANCEL: &str = "Cancel";
/// Label of the confirm button.
pub const CONFIRM: &str = "Confirm";
/// Prompt of the note of an acknowledge/suppress.
pub fn note_prompt(verb: &str) -> String {
    format!("{verb} note: ")
}
/// Title of the events filter terms in the help overlay.
pub const EVENTS_FILTER_TITLE: &str = "Events filter (/ in the events view)";
/// Footer of the help overlay.
pub const HELP_FOOTER: &str = "Keys are rebindable in [tui.keys] of the config (docs/keys.md).";

/// Acknowledge or suppress asked on a group's line.
pub const FINDING_GROUP_SELECTED: &str =
    "A group of findings is selected: press Enter to expand it, then select one finding.";

/// The key column of a group's line.
pub const FINDING_GROUP_KEY: &str = "(several keys)";

/// The panel under a selected group of findings.
pub fn finding_group_help(rule: &str, keys: usize) -> String {
    format!("{rule} on {keys} keys. Enter expands the group to act on one finding.")
}

/// Keys view while an import runs and nothing is committed yet.
pub const NO_KEYS_IMPORTING: &str =
    "No keys yet: importing… keys and events appear as the import commits them.";
/// Status after `stop-import`, until the import has committed what it read.
pub const IMPORT_STOPPING: &str = "Stopping the import: committing what was read…";
/// `stop-import` with no import running.
pub const NO_IMPORT: &str = "No import is running.";

fn megabytes(bytes: u64) -> String {
    let mb = bytes as f64 / 1e6;
    if mb >= 100.0 {
        format!("{mb:.0}")
    } else {
        format!("{mb:.1}")
    }
}

fn seconds(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The gauge's label while an import reads: files, records, bytes, rate and ETA (the
/// file's name too when `wide`).
pub fn gauge_importing(
    p: &super::import::ImportProgress,
    ratio: f64,
    wide: bool,
    stopping: bool,
) -> String {
    let th = |n: u64| super::view::thousands(n as usize);
    let secs = p.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        p.records as f64 / secs
    } else {
        0.0
    };
    let eta = if stopping {
        "stopping".to_string()
    } else if ratio > 0.0 && secs > 0.5 {
        format!("ETA {}", seconds(secs * (1.0 - ratio) / ratio))
    } else {
        "ETA …".to_string()
    };
    let file = if wide && !p.file.is_empty() {
        format!(" {}", p.file)
    } else {
        String::new()
    };
    format!(
        "import {}/{} files{file} · {} records · {}/{} MB · {}/s · {eta} ",
        (p.files_done + 1).min(p.files_total.max(1)),
        p.files_total,
        th(p.records),
        megabytes(p.bytes),
        megabytes(p.bytes_total),
        th(rate as u64),
    )
}

/// The gauge's label while detection runs after an import.
pub fn gauge_detecting(p: &super::import::ImportProgress) -> String {
    format!(
        "import done ({} new events); detecting… ",
        super::view::thousands(p.imported as usize)
    )
}

/// Status when an import ended (detection follows).
pub fn import_done(r: &super::import::ImportReport) -> String {
    let th = |n: u64| super::view::thousands(n as usize);
    let mut out = format!(
        "Imported {} file{}: {} records, {} new events, {} duplicates, {} skipped in {}",
        r.files,
        if r.files == 1 { "" } else { "s" },
        th(r.records),
        th(r.imported),
        th(r.duplicates),
        th(r.skipped),
        seconds(r.elapsed.as_secs_f64()),
    );
    if let Some(first) = r.failed.first() {
        out.push_str(&format!("; {} failed: {first}", r.failed.len()));
    }
    out.push_str("; detecting…");
    out
}

/// Status when the operator stopped an import.
pub fn import_stopped(r: &super::import::ImportReport, case: Option<&str>) -> String {
    let again = match case {
        Some(c) => format!("`keyaudit open … --case {}`", crate::output::sanitize(c)),
        None => "importing the files again".to_string(),
    };
    format!(
        "Import stopped: {} new events committed and kept; {again} resumes it.",
        super::view::thousands(r.imported as usize)
    )
}

/// Status when the cache failed during an import.
pub fn import_failed(e: &str) -> String {
    format!("Import failed: {e}. What was committed before stays; open the case again to resume.")
}

/// Status when detection after an import ended.
pub fn detection_done(opened: usize, resolved: usize, open: usize, events: u64) -> String {
    format!(
        "Detection over {} events: {opened} new findings, {resolved} resolved; {open} open (4: findings)",
        super::view::thousands(events as usize)
    )
}

/// Status when detection after an import failed.
pub fn detection_failed(e: &str) -> String {
    format!("Detection failed: {e}; run `keyaudit detect` on the case.")
}
