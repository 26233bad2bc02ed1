//! The HTTP side of the demo: routes of docs/provider-api.md over the generated data set,
//! live traffic, and fault injection.

use super::data::{
    self, local, mix, Dataset, Ev, KeyRec, ACTIONS, NO_RECORDS, PING_ACTION, UNKNOWN_KEY,
};
use super::faults::{FaultKind, FaultSpec, Peer};
use crate::model::KeyStatus;
use crate::secret;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Most user agents interned from partner pings; later ones are recorded as `other`.
const MAX_UAS: usize = 1024;

/// Keys and the string tables events refer to.
pub(crate) struct KeyTable {
    pub keys: Vec<KeyRec>,
    /// Key id and owner of each key, already JSON-encoded (with quotes).
    pub json: Vec<(String, String)>,
    pub by_id: BTreeMap<String, usize>,
    pub by_fp: HashMap<String, usize>,
    /// User agents, JSON-encoded.
    pub uas: Vec<String>,
    ua_index: HashMap<String, u16>,
}

impl KeyTable {
    fn new(keys: Vec<KeyRec>, uas: Vec<String>) -> KeyTable {
        let mut t = KeyTable {
            keys: Vec::new(),
            json: Vec::new(),
            by_id: BTreeMap::new(),
            by_fp: HashMap::new(),
            uas: Vec::new(),
            ua_index: HashMap::new(),
        };
        for ua in uas {
            t.intern_ua(&ua);
        }
        for k in keys {
            t.push(k);
        }
        t
    }

    fn push(&mut self, k: KeyRec) -> usize {
        let i = self.keys.len();
        self.json.push((json_str(&k.id), json_str(&k.owner)));
        self.by_id.insert(k.id.clone(), i);
        self.by_fp.insert(k.fingerprint.clone(), i);
        self.keys.push(k);
        i
    }

    fn intern_ua(&mut self, ua: &str) -> u16 {
        if let Some(&i) = self.ua_index.get(ua) {
            return i;
        }
        if self.uas.len() >= MAX_UAS {
            return self.intern_ua_unbounded("other");
        }
        self.intern_ua_unbounded(ua)
    }

    fn intern_ua_unbounded(&mut self, ua: &str) -> u16 {
        if let Some(&i) = self.ua_index.get(ua) {
            return i;
        }
        self.uas.push(json_str(ua));
        let i = (self.uas.len() - 1) as u16;
        self.ua_index.insert(ua.to_string(), i);
        i
    }
}

/// Everything the routes share.
pub(crate) struct Shared {
    pub seed: u64,
    token: String,
    /// Demo time at start (ms); the demo clock runs from it in real time.
    anchor: i64,
    started: Instant,
    pub keys: RwLock<KeyTable>,
    pub events: RwLock<Vec<Ev>>,
    labels_json: String,
    faults: FaultSpec,
    fault_rng: Mutex<StdRng>,
    rng: Mutex<StdRng>,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialise")
}

impl Shared {
    pub fn new(seed: u64, token: String, anchor: i64, d: Dataset, faults: FaultSpec) -> Shared {
        let labels_json = render_labels(seed, &d);
        Shared {
            seed,
            token,
            anchor,
            started: Instant::now(),
            keys: RwLock::new(KeyTable::new(d.keys, d.uas)),
            events: RwLock::new(d.events),
            labels_json,
            faults,
            fault_rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x6661_756c_7473)),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x6c69_7665)),
        }
    }

    /// The demo clock (ms): the anchor plus the real time since start.
    pub fn now(&self) -> i64 {
        self.anchor + self.started.elapsed().as_millis() as i64
    }

    /// Appends events to the log and moves their keys' `last_used`.
    fn record(&self, kt: &mut KeyTable, evs: &[Ev]) {
        for e in evs {
            if let Some(k) = kt.keys.get_mut(e.key as usize) {
                k.last_used = Some(k.last_used.map_or(e.t, |u| u.max(e.t)));
            }
        }
        self.events
            .write()
            .expect("event log lock")
            .extend_from_slice(evs);
    }

    /// Appends `n` events of normal traffic at the current time, from keys that are
    /// active and inside their working hours now. Returns how many were appended.
    pub fn append_live(&self, n: usize, rng: &mut StdRng) -> usize {
        let now = self.now();
        let mut kt = self.keys.write().expect("key table lock");
        let working: Vec<(usize, f64)> = kt
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| effective_status(k, now) == KeyStatus::Active)
            .filter_map(|(i, k)| {
                let p = k.profile.as_ref()?;
                let (lday, min) = local(now, p.tz_min);
                p.works_at(lday, min).then_some((i, p.weight))
            })
            .collect();
        if working.is_empty() {
            return 0;
        }
        let mut evs = Vec::with_capacity(n);
        for _ in 0..n {
            let &(i, _) = working
                .choose_weighted(rng, |w| w.1)
                .expect("weights are positive");
            let k = &kt.keys[i];
            let p = k.profile.as_ref().expect("filtered");
            let net = p.day_net(local(now, p.tz_min).0);
            evs.push(data::normal_event(rng, i as u16, k, p, now, net, 0));
        }
        self.record(&mut kt, &evs);
        evs.len()
    }
}

/// The status a client sees: rotations past their grace are inactive, keys past their
/// expiry are expired.
pub(crate) fn effective_status(k: &KeyRec, now: i64) -> KeyStatus {
    match k.status {
        KeyStatus::Active if k.grace_until.is_some_and(|g| now >= g) => KeyStatus::Inactive,
        KeyStatus::Active if k.expires.is_some_and(|e| now >= e) => KeyStatus::Expired,
        s => s,
    }
}

/// Builds the router over `shared`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let admin = Router::new()
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{id}", get(get_key))
        .route("/v1/keys/{id}/disable", post(disable_key))
        .route("/v1/keys/{id}/enable", post(enable_key))
        .route("/v1/keys/{id}/revoke", post(revoke_key))
        .route("/v1/keys/{id}/rotate", post(rotate_key))
        .route("/v1/events", get(list_events))
        .route("/v1/demo/labels", get(labels))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            inject_faults,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            require_admin,
        ));
    Router::new()
        .route("/v1/partner/ping", get(ping))
        .merge(admin)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(shared)
}

/// An error answer with the contract's body.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn require_admin(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match bearer(req.headers()) {
        Some(t) if same(t, &s.token) => next.run(req).await,
        Some(_) => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong admin token",
        ),
        None => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing `Authorization: Bearer <admin token>`",
        ),
    }
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn inject_faults(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if req.method() != Method::GET
        || !(path.starts_with("/v1/keys") || path.starts_with("/v1/events"))
    {
        return next.run(req).await;
    }
    let kind = match query_param(req.uri().query(), "fault") {
        Some(word) => match FaultKind::parse(word) {
            Some(k) => Some(k),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("unknown fault `{word}`; expected one of: latency, 429, 500, 503, truncate, drop"),
                )
            }
        },
        None if s.faults.rules.is_empty() => None,
        None => {
            let u: f64 = s.fault_rng.lock().expect("fault rng lock").random();
            s.faults.pick(u)
        }
    };
    let retry = |mut r: Response| {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    };
    match kind {
        None => next.run(req).await,
        Some(FaultKind::Latency) => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            next.run(req).await
        }
        Some(FaultKind::TooManyRequests) => retry(error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests (injected fault)",
        )),
        Some(FaultKind::Internal) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (injected fault)",
        ),
        Some(FaultKind::Unavailable) => retry(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "service unavailable (injected fault)",
        )),
        Some(FaultKind::Truncate) => {
            let (mut parts, body) = next.run(req).await.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            parts.headers.remove(header::CONTENT_LENGTH);
            let cut = bytes.len() / 2;
            Response::from_parts(parts, Body::from(bytes.slice(..cut)))
        }
        Some(FaultKind::Drop) => {
            peer.drop_connection();
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

// ---- keys ----

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

fn time_str(ms: i64) -> String {
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
fn parse_limit(query: Option<&str>, default: usize, max: usize) -> Result<usize, String> {
    match query_param(query, "limit") {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(format!("limit `{v}` is not a whole number from 1 to {max}")),
        },
    }
}

async fn list_keys(State(s): State<Arc<Shared>>, req: Request) -> Response {
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

async fn get_key(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
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

fn bad_request(msg: &str) -> Response {
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

async fn create_key(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
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
        Err(m) => error(StatusCode::CONFLICT, "conflict", &m),
    }
}

async fn disable_key(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    change_key(&s, &id, |k, _| {
        // A revoked key stays revoked: it is already unusable.
        if k.status != KeyStatus::Revoked {
            k.status = KeyStatus::Inactive;
        }
        Ok(())
    })
}

async fn enable_key(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    change_key(&s, &id, |k, _| {
        if k.status == KeyStatus::Revoked {
            return Err(format!("key `{}` is revoked and cannot be enabled", k.id));
        }
        k.status = KeyStatus::Active;
        k.grace_until = None;
        Ok(())
    })
}

async fn revoke_key(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
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

async fn rotate_key(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
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

// ---- partner ping ----

async fn ping(
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

// ---- events ----

async fn list_events(State(s): State<Arc<Shared>>, req: Request) -> Response {
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

async fn labels(State(s): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, s.labels_json.clone())
}

fn render_labels(seed: u64, d: &Dataset) -> String {
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

/// Appends live traffic at `rate` events per second until the task is aborted.
pub(crate) async fn run_live(s: Arc<Shared>, rate: f64) {
    let mut rng = StdRng::seed_from_u64(s.seed ^ 0x6c69_7665_5f74_7866);
    let step = Duration::from_millis(100);
    let mut tick = tokio::time::interval(step);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due = 0.0f64;
    loop {
        tick.tick().await;
        due += rate * step.as_secs_f64();
        let n = due.floor();
        if n >= 1.0 {
            due -= n;
            s.append_live(n as usize, &mut rng);
        }
    }
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
