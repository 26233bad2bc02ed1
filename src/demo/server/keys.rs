//! The key routes: list, get, create, disable, enable, revoke, rotate, and the
//! partner ping that authenticates a key's secret.

use super::events::push_time;
use super::{bearer, effective_status, error, json_response, query_param, KeyTable, Shared};
use crate::demo::data::{self, Ev, KeyRec, NO_RECORDS, PING_ACTION, UNKNOWN_KEY};
use crate::demo::faults::Peer;
use crate::model::KeyStatus;
use crate::secret;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Serialize)]
struct KeyOut<'a> {
    id: &'a str,
    name: &'a str,
    owner: &'a str,
    environment: Option<&'a str>,
    purpose: Option<&'a str>,
    prefix: &'a str,
    fingerprint: &'a str,
    scopes: &'a [String],
    status: &'static str,
    created: String,
    expires: Option<String>,
    last_used: Option<String>,
    rotated_to: Option<&'a str>,
    grace_until: Option<String>,
}

pub(super) fn time_str(ms: i64) -> String {
    let mut s = String::with_capacity(24);
    push_time(&mut s, ms);
    s
}

fn key_out(k: &KeyRec, now: i64) -> KeyOut<'_> {
    KeyOut {
        id: &k.id,
        name: &k.name,
        owner: &k.owner,
        environment: k.environment.as_deref(),
        purpose: k.purpose.as_deref(),
        prefix: &k.prefix,
        fingerprint: &k.fingerprint,
        scopes: &k.scopes,
        status: effective_status(k, now).as_str(),
        created: time_str(k.created),
        expires: k.expires.map(time_str),
        last_used: k.last_used.map(time_str),
        rotated_to: k.rotated_to.as_deref(),
        grace_until: k.grace_until.map(time_str),
    }
}

fn key_json(k: &KeyRec, now: i64) -> serde_json::Value {
    serde_json::to_value(key_out(k, now)).expect("keys always serialise")
}

/// The `limit` parameter, or the message of a `400`.
pub(super) fn parse_limit(
    query: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, String> {
    match query_param(query, "limit") {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(format!("limit `{v}` is not a whole number from 1 to {max}")),
        },
    }
}

pub(super) async fn list_keys(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let query = req.uri().query();
    let limit = match parse_limit(query, 500, 5000) {
        Ok(l) => l,
        Err(m) => return bad_request(&m),
    };
    let after = query_param(query, "page_token").filter(|t| !t.is_empty());
    let now = s.now();
    let kt = s.keys.read().expect("key table lock");
    let range: Box<dyn Iterator<Item = (&String, &usize)>> = match after {
        Some(t) => Box::new(
            kt.by_id
                .range::<str, _>((std::ops::Bound::Excluded(t), std::ops::Bound::Unbounded)),
        ),
        None => Box::new(kt.by_id.iter()),
    };
    let mut keys = Vec::with_capacity(limit.min(kt.keys.len()));
    let mut more = false;
    for (_, &i) in range {
        if keys.len() == limit {
            more = true;
            break;
        }
        keys.push(key_out(&kt.keys[i], now));
    }
    let next = if more {
        keys.last().map(|k| k.id)
    } else {
        None
    };
    let body = serde_json::json!({"keys": keys, "next_page_token": next});
    json_response(StatusCode::OK, body.to_string())
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no key `{id}`"),
    )
}

pub(super) async fn get_key(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let kt = s.keys.read().expect("key table lock");
    match kt.by_id.get(&id) {
        Some(&i) => axum::Json(key_json(&kt.keys[i], s.now())).into_response(),
        None => not_found(&id),
    }
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    owner: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    expires: Option<String>,
}

pub(super) fn bad_request(msg: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", msg)
}

/// A fresh key id that is not taken yet.
fn new_key_id(s: &Shared, kt: &KeyTable) -> String {
    let mut rng = s.rng.lock().expect("rng lock");
    loop {
        let id = format!("key_{:016x}", rng.random::<u64>());
        if !kt.by_id.contains_key(&id) {
            return id;
        }
    }
}

/// The `201` answer carrying a secret, shown this once.
fn issued(
    key: serde_json::Value,
    secret: &secret::Secret,
    old: Option<serde_json::Value>,
) -> Response {
    let mut body = serde_json::json!({"key": key, "secret": secret.expose()});
    if let Some(old) = old {
        body["old"] = old;
    }
    let mut r = (StatusCode::CREATED, axum::Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(super) async fn create_key(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let b: CreateBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad_request(&format!("invalid key body: {e}")),
    };
    if b.name.trim().is_empty() || b.owner.trim().is_empty() {
        return bad_request("`name` and `owner` must not be empty");
    }
    let expires = match b.expires.as_deref() {
        None => None,
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => Some(t.timestamp_millis()),
            Err(e) => return bad_request(&format!("`expires` `{t}` is not an RFC 3339 time: {e}")),
        },
    };
    let (secret, prefix, fingerprint) = data::new_secret_identity(b.environment.as_deref());
    let now = s.now();
    let mut kt = s.keys.write().expect("key table lock");
    let id = new_key_id(&s, &kt);
    let ua = kt.intern_ua("");
    let i = kt.push(KeyRec {
        id,
        name: b.name,
        owner: b.owner,
        environment: b.environment,
        purpose: b.purpose,
        prefix,
        fingerprint,
        scopes: b.scopes,
        status: KeyStatus::Active,
        created: now,
        expires,
        last_used: None,
        rotated_to: None,
        grace_until: None,
        profile: None,
        ua,
    });
    issued(key_json(&kt.keys[i], now), &secret, None)
}

/// Applies `change` to key `id` and answers with the key after it, or `409` with the
/// message `change` refused with.
fn change_key(
    s: &Shared,
    id: &str,
    change: impl FnOnce(&mut KeyRec, i64) -> Result<(), String>,
) -> Response {
    let now = s.now();
    let mut kt = s.keys.write().expect("key table lock");
    let Some(&i) = kt.by_id.get(id) else {
        return not_found(id);
    };
    let k = &mut kt.keys[i];
    match change(k, now) {
        Ok(()) => axum::Json(key_json(k, now)).into_response(),
        // In hostile mode the refusal names the key by its (hostile) name.
        Err(m) if s.hostile => error(
            StatusCode::CONFLICT,
            "conflict",
            &format!("{m} (key {})", k.name),
        ),
        Err(m) => error(StatusCode::CONFLICT, "conflict", &m),
    }
}

pub(super) async fn disable_key(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    change_key(&s, &id, |k, _| {
        // A revoked key stays revoked: it is already unusable.
        if k.status != KeyStatus::Revoked {
            k.status = KeyStatus::Inactive;
        }
        Ok(())
    })
}

pub(super) async fn enable_key(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    change_key(&s, &id, |k, _| {
        if k.status == KeyStatus::Revoked {
            return Err(format!("key `{}` is revoked and cannot be enabled", k.id));
        }
        k.status = KeyStatus::Active;
        k.grace_until = None;
        Ok(())
    })
}

pub(super) async fn revoke_key(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    change_key(&s, &id, |k, _| {
        k.status = KeyStatus::Revoked;
        Ok(())
    })
}

#[derive(Deserialize, Default)]
struct RotateBody {
    #[serde(default)]
    grace_seconds: u64,
}

/// Longest grace period accepted: 90 days.
const MAX_GRACE_SECONDS: u64 = 90 * 24 * 3600;

pub(super) async fn rotate_key(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let b: RotateBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return bad_request(&format!("invalid rotate body: {e}")),
        }
    };
    if b.grace_seconds > MAX_GRACE_SECONDS {
        return bad_request(&format!(
            "grace_seconds {} is more than {MAX_GRACE_SECONDS} (90 days)",
            b.grace_seconds
        ));
    }
    let now = s.now();
    let mut kt = s.keys.write().expect("key table lock");
    let Some(&oi) = kt.by_id.get(&id) else {
        return not_found(&id);
    };
    let old_status = effective_status(&kt.keys[oi], now);
    if old_status == KeyStatus::Revoked {
        return error(
            StatusCode::CONFLICT,
            "conflict",
            &format!("key `{id}` is revoked; create a new key instead"),
        );
    }
    let (secret, prefix, fingerprint) =
        data::new_secret_identity(kt.keys[oi].environment.as_deref());
    let new_id = new_key_id(&s, &kt);
    let old = &kt.keys[oi];
    let new = KeyRec {
        id: new_id.clone(),
        name: old.name.clone(),
        owner: old.owner.clone(),
        environment: old.environment.clone(),
        purpose: old.purpose.clone(),
        prefix,
        fingerprint,
        scopes: old.scopes.clone(),
        status: KeyStatus::Active,
        created: now,
        expires: old.expires.map(|e| now + (e - old.created).max(0)),
        last_used: None,
        rotated_to: None,
        grace_until: None,
        profile: None,
        ua: old.ua,
    };
    let ni = kt.push(new);
    let old = &mut kt.keys[oi];
    old.rotated_to = Some(new_id);
    if b.grace_seconds == 0 {
        old.status = KeyStatus::Inactive;
        old.grace_until = None;
    } else {
        old.grace_until = Some(now + b.grace_seconds as i64 * 1000);
    }
    let old_json = key_json(&kt.keys[oi], now);
    issued(key_json(&kt.keys[ni], now), &secret, Some(old_json))
}

pub(super) async fn ping(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    let Some(presented) = bearer(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing `Authorization: Bearer <api key>`",
        );
    };
    let fp = secret::fingerprint(presented);
    let ua: String = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    let ip = match peer.addr.ip() {
        std::net::IpAddr::V4(v4) => u32::from(v4),
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(0, u32::from),
    };
    let now = s.now();
    let mut kt = s.keys.write().expect("key table lock");
    let ua = kt.intern_ua(&ua);
    let found = kt.by_fp.get(&fp).copied();
    let usable = found.is_some_and(|i| effective_status(&kt.keys[i], now) == KeyStatus::Active);
    let ev = Ev {
        t: now,
        ip,
        records: NO_RECORDS,
        key: found.map_or(UNKNOWN_KEY, |i| i as u16),
        ua,
        action: PING_ACTION,
        status: if usable { 200 } else { 401 },
        label: 0,
    };
    s.record(&mut kt, &[ev]);
    match found {
        Some(i) if usable => {
            axum::Json(serde_json::json!({"key_id": kt.keys[i].id})).into_response()
        }
        _ => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this key is not valid",
        ),
    }
}
