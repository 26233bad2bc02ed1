//! A stateful fake of the Cloudflare API v4 endpoints keyaudit uses, written from
//! Cloudflare's API reference (the pages cited in tests/fixtures/openapi/cloudflare.yaml):
//! user and account-owned API tokens (list, get, update, delete, roll, verify) and the
//! account audit logs, in the v4 envelope (`success`, `errors`, `messages`, `result`,
//! `result_info`), with page/per_page pagination, bearer authentication, 403s for
//! missing permissions, and injected 429s with `Retry-After`. Every change to an
//! account's token appends the audit-log entry Cloudflare records for it. Served by axum
//! on 127.0.0.1; Prism sits in front.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The account the fake knows (a 32-hex account id).
pub const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

/// Who owns a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    User,
    Account(String),
}

#[derive(Debug, Clone)]
pub struct Tok {
    pub id: String,
    pub name: String,
    /// `active` or `disabled` (expiry is computed from `expires_on`).
    pub status: String,
    pub issued_on: DateTime<Utc>,
    pub modified_on: DateTime<Utc>,
    pub last_used_on: Option<DateTime<Utc>>,
    pub expires_on: Option<DateTime<Utc>>,
    pub condition: Option<Value>,
    pub policies: Value,
    pub owner: Owner,
    pub value: String,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Tok {
    pub fn status_at(&self, now: DateTime<Utc>) -> &str {
        if self.expires_on.is_some_and(|e| e <= now) {
            "expired"
        } else {
            &self.status
        }
    }

    fn json(&self, now: DateTime<Utc>) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "status": self.status_at(now),
            "issued_on": ts(self.issued_on),
            "modified_on": ts(self.modified_on),
            "last_used_on": self.last_used_on.map(ts),
            "policies": self.policies,
        });
        if let Some(e) = self.expires_on {
            v["expires_on"] = json!(ts(e));
        }
        if let Some(c) = &self.condition {
            v["condition"] = c.clone();
        }
        v
    }
}

/// The fake's whole state; tests read and change it through [`Fake::with`].
pub struct FakeState {
    pub tokens: Vec<Tok>,
    /// Audit-log entries per account, oldest first.
    pub audit: BTreeMap<String, Vec<Value>>,
    /// Requests to answer with 429 (`Retry-After: 1`) before serving normally.
    pub throttle_next: u32,
    /// Deletions to answer with 500 without applying them.
    pub fail_next_delete: u32,
    /// `METHOD /path` prefixes (after `/client/v4`) answered 403, code 9109.
    pub forbidden: Vec<String>,
    /// Every request: `METHOD /path?query`.
    pub seen: Vec<String>,
    next_id: u64,
    next_value: u64,
    pub now: DateTime<Utc>,
}

/// A permission group as Cloudflare's policies carry it.
pub fn group(name: &str) -> Value {
    let id: String = format!("{:x}", md5ish(name))
        .chars()
        .cycle()
        .take(32)
        .collect();
    json!({"id": id, "name": name})
}

fn md5ish(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

impl FakeState {
    fn new_value(&mut self) -> String {
        self.next_value += 1;
        // Cloudflare's token values are 40 characters of [A-Za-z0-9_-].
        format!("{:_<40}", format!("cfFake{:06}v", self.next_value))
    }

    /// Adds a token with the given permission groups (allow, on all zones of the
    /// account); returns its id and value.
    pub fn add(&mut self, name: &str, owner: Owner, groups: &[&str]) -> (String, String) {
        self.next_id += 1;
        let id = format!(
            "{:032x}",
            0xed17_5743_8685_4bf7u64 as u128 * 1000 + self.next_id as u128
        );
        let value = self.new_value();
        let policies = json!([{
            "id": format!("{:032x}", self.next_id),
            "effect": "allow",
            "resources": {format!("com.cloudflare.api.account.{ACCOUNT}"): "*"},
            "permission_groups": groups.iter().map(|g| group(g)).collect::<Vec<_>>(),
        }]);
        self.tokens.push(Tok {
            id: id.clone(),
            name: name.into(),
            status: "active".into(),
            issued_on: self.now - Duration::days(30),
            modified_on: self.now - Duration::days(30),
            last_used_on: Some(self.now - Duration::days(1)),
            expires_on: Some(self.now + Duration::days(200)),
            condition: None,
            policies,
            owner,
            value: value.clone(),
        });
        (id, value)
    }

    pub fn token(&self, id: &str) -> &Tok {
        self.tokens.iter().find(|t| t.id == id).expect("token")
    }

    pub fn token_mut(&mut self, id: &str) -> &mut Tok {
        self.tokens.iter_mut().find(|t| t.id == id).expect("token")
    }

    /// Appends the audit-log entry of an action on an account's token.
    pub fn log(&mut self, t: &Tok, action: &str, actor: &Tok) {
        let Owner::Account(a) = &t.owner else { return };
        self.now += Duration::seconds(1);
        let n = self.audit.values().map(Vec::len).sum::<usize>() + 1;
        let entry = json!({
            "id": format!("{n:08}-aaaa-bbbb-cccc-{:012}", n),
            "action": {"type": action, "result": true},
            "actor": {"id": format!("actor-{}", &actor.id[..8]), "email": "ana@example.com",
                      "ip": "198.51.100.7", "type": "user"},
            "interface": "API",
            "metadata": {},
            "owner": {"id": a},
            "resource": {"id": t.id, "type": "API_token"},
            "when": ts(self.now),
        });
        self.audit.entry(a.clone()).or_default().push(entry);
    }
}

/// A running fake.
#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<FakeState>>,
    pub url: String,
}

impl Fake {
    /// Starts the fake on a free loopback port with account [`ACCOUNT`] and the user
    /// token keyaudit uses (API Tokens Read/Write, Account API Tokens Read/Write,
    /// Account Settings Read). Returns the fake and that token's value.
    pub async fn start() -> (Fake, String) {
        let mut st = FakeState {
            tokens: Vec::new(),
            audit: BTreeMap::new(),
            throttle_next: 0,
            fail_next_delete: 0,
            forbidden: Vec::new(),
            seen: Vec::new(),
            next_id: 0,
            next_value: 0,
            now: DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap(),
        };
        let (_, value) = st.add(
            "keyaudit",
            Owner::User,
            &[
                "API Tokens Write",
                "Account API Tokens Write",
                "Account Settings Read",
            ],
        );
        let state = Arc::new(Mutex::new(st));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (Fake { state, url }, value)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

/// A failure in the v4 envelope.
fn fail(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "success": false,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": null,
        })),
    )
        .into_response()
}

fn ok(result: Value) -> Response {
    axum::Json(json!({"success": true, "errors": [], "messages": [], "result": result}))
        .into_response()
}

/// One page of `items` in the envelope with `result_info` (Cloudflare's `page` /
/// `per_page`; a page past the end is empty). Only the page's items are turned into JSON.
fn page_of<T>(
    items: Vec<T>,
    query: &BTreeMap<String, String>,
    max: usize,
    json: impl Fn(T) -> Value,
) -> Response {
    let per_page: usize = query
        .get("per_page")
        .and_then(|s| s.parse::<f64>().ok())
        .map(|f| f as usize)
        .unwrap_or(20)
        .clamp(1, max);
    let page: usize = query
        .get("page")
        .and_then(|s| s.parse::<f64>().ok())
        .map(|f| f as usize)
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let body: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(json)
        .collect();
    axum::Json(json!({
        "success": true, "errors": [], "messages": [],
        "result": body.clone(),
        "result_info": {"page": page, "per_page": per_page, "count": body.len(), "total_count": total},
    }))
    .into_response()
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = state.lock().unwrap();
    let query: BTreeMap<String, String> = uri.query().map(url_pairs).unwrap_or_default();
    st.seen.push(format!("{method} {uri}"));
    if st.throttle_next > 0 {
        st.throttle_next -= 1;
        let mut r = fail(
            StatusCode::TOO_MANY_REQUESTS,
            10000,
            "Rate limited. Please wait and consider throttling your request speed",
        );
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    let Some(path) = uri.path().strip_prefix("/client/v4") else {
        return fail(StatusCode::NOT_FOUND, 7000, "No route for that URI");
    };
    let now = st.now;
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let Some(caller) = presented
        .as_deref()
        .and_then(|v| {
            st.tokens
                .iter()
                .find(|t| t.value == v && t.status_at(now) == "active")
        })
        .cloned()
    else {
        return fail(StatusCode::UNAUTHORIZED, 1000, "Invalid API Token");
    };
    let line = format!("{method} {path}");
    if st.forbidden.iter().any(|p| line.starts_with(p.as_str())) {
        return fail(
            StatusCode::FORBIDDEN,
            9109,
            "Unauthorized to access requested resource",
        );
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (owner, rest): (Owner, &[&str]) = match segs.as_slice() {
        ["user", "tokens", rest @ ..] => (Owner::User, rest),
        ["accounts", a, "tokens", rest @ ..] if *a == ACCOUNT => {
            (Owner::Account(a.to_string()), rest)
        }
        ["accounts", a, "audit_logs"] if *a == ACCOUNT && method == Method::GET => {
            let since: Option<DateTime<Utc>> = query.get("since").and_then(|s| s.parse().ok());
            let mut items: Vec<&Value> = st
                .audit
                .get(*a)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            items.retain(|e| {
                since.is_none_or(|s| {
                    e["when"]
                        .as_str()
                        .and_then(|w| w.parse::<DateTime<Utc>>().ok())
                        .is_some_and(|w| w >= s)
                })
            });
            if query.get("direction").map(String::as_str) != Some("asc") {
                items.reverse();
            }
            return page_of(items, &query, 1000, Value::clone);
        }
        ["accounts", ..] => {
            return fail(
                StatusCode::FORBIDDEN,
                9109,
                "Unauthorized to access requested resource",
            )
        }
        _ => return fail(StatusCode::NOT_FOUND, 7000, "No route for that URI"),
    };
    // A user's endpoints answer user tokens only; an account's, its own tokens.
    if owner == Owner::User && caller.owner != Owner::User {
        return fail(StatusCode::UNAUTHORIZED, 1000, "Invalid API Token");
    }
    match (method.clone(), rest) {
        (Method::GET, []) => {
            let with_expired = query.get("include_expired").map(String::as_str) == Some("true");
            let items = st
                .tokens
                .iter()
                .filter(|t| t.owner == owner)
                .filter(|t| with_expired || t.status_at(now) != "expired")
                .collect();
            page_of(items, &query, 50, |t: &Tok| t.json(now))
        }
        (Method::GET, ["verify"]) => {
            if caller.owner != owner {
                return fail(StatusCode::UNAUTHORIZED, 1000, "Invalid API Token");
            }
            let mut r = json!({"id": caller.id, "status": caller.status_at(now)});
            if let Some(e) = caller.expires_on {
                r["expires_on"] = json!(ts(e));
            }
            ok(r)
        }
        (m, [id, tail @ ..]) => {
            let Some(t) = st
                .tokens
                .iter()
                .find(|t| t.id == *id && t.owner == owner)
                .cloned()
            else {
                return fail(StatusCode::NOT_FOUND, 1003, "Invalid or missing token id");
            };
            match (m, tail) {
                (Method::GET, []) => ok(t.json(now)),
                (Method::DELETE, []) => {
                    if st.fail_next_delete > 0 {
                        st.fail_next_delete -= 1;
                        return fail(StatusCode::INTERNAL_SERVER_ERROR, 10000, "Internal error");
                    }
                    st.tokens.retain(|x| x.id != t.id);
                    st.log(&t, "delete", &caller);
                    ok(json!({"id": t.id}))
                }
                (Method::PUT, []) => {
                    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
                        return fail(
                            StatusCode::BAD_REQUEST,
                            6007,
                            "Malformed JSON in request body",
                        );
                    };
                    let (Some(name), Some(policies)) = (
                        b["name"].as_str(),
                        b.get("policies").filter(|p| p.is_array()),
                    ) else {
                        return fail(StatusCode::BAD_REQUEST, 6003, "Invalid request body");
                    };
                    let (name, policies) = (name.to_string(), policies.clone());
                    st.now += Duration::seconds(1);
                    let at = st.now;
                    let x = st.token_mut(&t.id);
                    x.name = name;
                    x.policies = policies;
                    if let Some(s) = b["status"].as_str() {
                        x.status = s.to_string();
                    }
                    x.condition = b.get("condition").cloned().filter(|c| !c.is_null());
                    x.expires_on = b["expires_on"].as_str().and_then(|s| s.parse().ok());
                    x.modified_on = at;
                    let x = x.clone();
                    st.log(&x, "update", &caller);
                    ok(x.json(now))
                }
                (Method::PUT, ["value"]) => {
                    let value = st.new_value();
                    st.now += Duration::seconds(1);
                    let at = st.now;
                    let x = st.token_mut(&t.id);
                    x.value = value.clone();
                    x.modified_on = at;
                    let x = x.clone();
                    st.log(&x, "roll", &caller);
                    ok(json!(value))
                }
                _ => fail(StatusCode::METHOD_NOT_ALLOWED, 10405, "Method not allowed"),
            }
        }
        _ => fail(StatusCode::METHOD_NOT_ALLOWED, 10405, "Method not allowed"),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn url_pairs(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}
