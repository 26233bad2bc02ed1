//! The HTTP side of the demo: routes of docs/provider-api.md over the generated data set,
//! live traffic, and fault injection.

use super::data::{self, local, Dataset, Ev, KeyRec};
mod events;
mod idempotency;
mod keys;

use super::faults::{FaultKind, FaultSpec, Peer};
use crate::model::KeyStatus;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use events::{labels, list_events, render_labels};
use keys::{create_key, disable_key, enable_key, get_key, list_keys, ping, revoke_key, rotate_key};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
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
    /// Answers remembered for `Idempotency-Key` (24 h).
    idempotency: tokio::sync::Mutex<idempotency::Remembered>,
    /// Error messages carry [`super::hostile::ERROR_TEXT`] (`--hostile`).
    pub hostile: bool,
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
            idempotency: tokio::sync::Mutex::new(idempotency::Remembered::default()),
            hostile: false,
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
    /// active and inside their working hours now (`any_hour`: from every active key when
    /// none is). Returns how many were appended.
    pub fn append_live(&self, n: usize, rng: &mut StdRng, any_hour: bool) -> usize {
        let now = self.now();
        let mut kt = self.keys.write().expect("key table lock");
        let active = |at_work: bool| -> Vec<(usize, f64)> {
            kt.keys
                .iter()
                .enumerate()
                .filter(|(_, k)| effective_status(k, now) == KeyStatus::Active)
                .filter_map(|(i, k)| {
                    let p = k.profile.as_ref()?;
                    let (lday, min) = local(now, p.tz_min);
                    (!at_work || p.works_at(lday, min)).then_some((i, p.weight))
                })
                .collect()
        };
        let mut working = active(true);
        if working.is_empty() && any_hour {
            working = active(false);
        }
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
            idempotency::idempotent,
        ))
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
    let change = req.method() == Method::POST && path.starts_with("/v1/keys");
    if !(change
        || req.method() == Method::GET
            && (path.starts_with("/v1/keys") || path.starts_with("/v1/events")))
    {
        return next.run(req).await;
    }
    let kind = match query_param(req.uri().query(), "fault") {
        Some(word) => match FaultKind::parse(word) {
            Some(k) if k.after_change() == change => Some(k),
            Some(k) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!(
                        "fault `{}` applies to {} requests only",
                        k.as_str(),
                        if k.after_change() { "POST" } else { "GET" }
                    ),
                )
            }
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!(
                        "unknown fault `{word}`; expected one of: {}",
                        FaultKind::words()
                    ),
                )
            }
        },
        None if s.faults.rules.is_empty() => None,
        None => {
            let u: f64 = s.fault_rng.lock().expect("fault rng lock").random();
            s.faults.pick_where(u, |k| k.after_change() == change)
        }
    };
    let message = |m: &str| {
        if s.hostile {
            format!("{m}; {}", super::hostile::ERROR_TEXT)
        } else {
            m.to_string()
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
            &message("too many requests (injected fault)"),
        )),
        Some(FaultKind::Internal) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &message("internal error (injected fault)"),
        ),
        Some(FaultKind::Unavailable) => retry(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &message("service unavailable (injected fault)"),
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
        Some(after @ (FaultKind::LostAnswer | FaultKind::InternalAfter)) => {
            let answer = next.run(req).await;
            // Only a change that was applied now: a refusal or a repeated answer changed
            // nothing.
            let applied = answer.status().is_success()
                && answer.extensions().get::<idempotency::Replayed>().is_none();
            if !applied {
                return answer;
            }
            if after == FaultKind::LostAnswer {
                peer.drop_connection();
                return StatusCode::NO_CONTENT.into_response();
            }
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &message("internal error after the change was applied (injected fault)"),
            )
        }
    }
}

// ---- keys ----

// ---- partner ping ----

// ---- events ----

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
            s.append_live(n as usize, &mut rng, false);
        }
    }
}
