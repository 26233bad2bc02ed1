//! The event routes: the audit log rendered to JSON on the fly, and the labels of the
//! injected anomalies.

use super::keys::{bad_request, parse_limit, time_str};
use super::{json_response, query_param, KeyTable, Shared};
use crate::demo::data::{self, mix, Dataset, Ev, ACTIONS, NO_RECORDS};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::fmt::Write as _;
use std::sync::Arc;

pub(super) async fn list_events(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let query = req.uri().query();
    let limit = match parse_limit(query, 1000, 10_000) {
        Ok(l) => l,
        Err(m) => return bad_request(&m),
    };
    let since = match query_param(query, "since").filter(|v| !v.is_empty()) {
        None => 0usize,
        Some(v) => match v.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return bad_request(&format!("cursor `{v}` is not one this server gave out")),
        },
    };
    let (page, total) = {
        let log = s.events.read().expect("event log lock");
        if since > log.len() {
            return bad_request(&format!("cursor `{since}` is past the end of the log"));
        }
        let end = (since + limit).min(log.len());
        (log[since..end].to_vec(), log.len())
    };
    let end = since + page.len();
    let mut out = String::with_capacity(64 + page.len() * 340);
    out.push_str("{\"events\":[");
    {
        let kt = s.keys.read().expect("key table lock");
        for (j, e) in page.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            render_event(&mut out, e, since + j, s.seed, &kt);
        }
    }
    let _ = write!(
        out,
        "],\"next_cursor\":\"{end}\",\"has_more\":{}}}",
        end < total
    );
    json_response(StatusCode::OK, out)
}

fn render_event(out: &mut String, e: &Ev, pos: usize, seed: u64, kt: &KeyTable) {
    let _ = write!(out, "{{\"id\":\"evt_{:012}\",\"time\":\"", pos + 1);
    push_time(out, e.t);
    out.push_str("\",\"key_id\":");
    match kt.json.get(e.key as usize) {
        Some((id, owner)) => {
            out.push_str(id);
            out.push_str(",\"principal\":");
            out.push_str(owner);
        }
        None => out.push_str("\"unknown\",\"principal\":null"),
    }
    let a = &ACTIONS[e.action as usize];
    out.push_str(",\"action\":\"");
    out.push_str(a.text);
    out.push_str("\",\"scope\":");
    match a.scope {
        Some(sc) => {
            out.push('"');
            out.push_str(sc);
            out.push('"');
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"source_ip\":");
    if e.ip == 0 {
        out.push_str("null");
    } else {
        out.push('"');
        let [a, b, c, d] = e.ip.to_be_bytes();
        for (i, o) in [a, b, c, d].into_iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            push_u64(out, o as u64);
        }
        out.push('"');
    }
    out.push_str(",\"user_agent\":");
    match kt.uas.get(e.ua as usize) {
        Some(ua) if ua != "\"\"" => out.push_str(ua),
        _ => out.push_str("null"),
    }
    out.push_str(",\"outcome\":\"");
    out.push_str(e.outcome());
    out.push_str("\",\"status_code\":");
    push_u64(out, e.status as u64);
    let _ = write!(
        out,
        ",\"request_id\":\"req_{:016x}\",\"records\":",
        mix(seed.rotate_left(17) ^ pos as u64)
    );
    if e.records == NO_RECORDS {
        out.push_str("null}");
    } else {
        push_u64(out, e.records as u64);
        out.push('}');
    }
}

fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).expect("digits are ASCII"));
}

fn push_2(out: &mut String, n: u32) {
    out.push((b'0' + (n / 10) as u8) as char);
    out.push((b'0' + (n % 10) as u8) as char);
}

/// Writes `ms` as RFC 3339 UTC with milliseconds (`2026-11-02T09:14:07.123Z`), without
/// going through chrono's formatter (this is the hot path of event pages).
pub(crate) fn push_time(out: &mut String, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    if (0..10_000).contains(&y) {
        push_2(out, (y / 100) as u32);
        push_2(out, (y % 100) as u32);
    } else {
        let _ = write!(out, "{y:04}");
    }
    out.push('-');
    push_2(out, m);
    out.push('-');
    push_2(out, d);
    out.push('T');
    let secs = (rem / 1000) as u32;
    push_2(out, secs / 3600);
    out.push(':');
    push_2(out, secs / 60 % 60);
    out.push(':');
    push_2(out, secs % 60);
    out.push('.');
    let milli = (rem % 1000) as u32;
    out.push((b'0' + (milli / 100) as u8) as char);
    push_2(out, milli % 100);
    out.push('Z');
}

pub(super) async fn labels(State(s): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, s.labels_json.clone())
}

pub(super) fn render_labels(seed: u64, d: &Dataset) -> String {
    let labels: Vec<serde_json::Value> = d
        .labels
        .iter()
        .map(|l| {
            serde_json::json!({
                "key_id": d.keys[l.key].id,
                "kind": l.kind.as_str(),
                "start": time_str(l.start),
                "end": time_str(l.end),
                "events": l.events.len(),
                "event_ids": l.events.iter().map(|&p| data::event_id(p as usize)).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({"seed": seed, "labels": labels}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_like_chrono() {
        for ms in [
            0i64,
            1_795_867_200_123,
            951_782_400_000,
            4_102_444_799_999,
            1_709_251_199_001,
        ] {
            let mut s = String::new();
            push_time(&mut s, ms);
            assert_eq!(s, crate::model::rfc3339(crate::model::from_millis(ms)));
        }
    }
}
