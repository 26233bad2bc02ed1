//! A stateful fake of the GitLab REST API v4 endpoints keyaudit uses, written from
//! GitLab's API reference (the pages cited in tests/fixtures/openapi/gitlab.yaml):
//! personal, project and group access tokens (list, get, `self`, revoke, rotate) and
//! audit events (instance, group, project), with offset pagination (`page`, `per_page`,
//! `X-Next-Page`, `Link`), `PRIVATE-TOKEN` authentication, 403s for missing
//! permissions, and injected 429s with `Retry-After`. Every change appends the audit
//! event GitLab records for it. Served by axum on 127.0.0.1; Prism sits in front.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// Where a token lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    Personal,
    Project(u64),
    Group(u64),
}

#[derive(Debug, Clone)]
pub struct Tok {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub revoked: bool,
    pub created_at: DateTime<Utc>,
    pub scopes: Vec<String>,
    pub user_id: u64,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<NaiveDate>,
    pub access_level: Option<u32>,
    pub place: Where,
    pub value: String,
}

impl Tok {
    fn active(&self, today: NaiveDate) -> bool {
        !self.revoked && self.expires_at.is_none_or(|e| e > today)
    }

    fn json(&self, today: NaiveDate) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "revoked": self.revoked,
            "created_at": self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "scopes": self.scopes,
            "user_id": self.user_id,
            "last_used_at": self.last_used_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            "active": self.active(today),
            "expires_at": self.expires_at.map(|d| d.to_string()),
        });
        if let Some(l) = self.access_level {
            v["access_level"] = json!(l);
        }
        v
    }
}

/// The fake's whole state; tests read and change it through [`Fake::with`].
pub struct FakeState {
    pub tokens: Vec<Tok>,
    /// (id, full path) of the projects and groups.
    pub projects: Vec<(u64, String)>,
    pub groups: Vec<(u64, String)>,
    /// Audit events, oldest first, each with the entity (`Project`/`Group`/`User`, id).
    pub events: Vec<Value>,
    /// The token value that authenticates as an administrator.
    pub admin_value: Option<String>,
    /// Requests to answer with 429 (`Retry-After: 1`) before serving normally.
    pub throttle_next: u32,
    /// Changes (non-GET requests) to answer with 500 without applying them.
    pub fail_next_change: u32,
    /// Path prefixes (after `/api/v4`) answered with 403 insufficient scope.
    pub forbidden: HashSet<String>,
    /// The URL clients use (Prism's), for the `Link` header's targets.
    pub public_url: String,
    /// Every request: `METHOD /path?query`.
    pub seen: Vec<String>,
    next_id: u64,
    next_event: u64,
    pub now: DateTime<Utc>,
}

impl FakeState {
    fn today(&self) -> NaiveDate {
        self.now.date_naive()
    }

    /// Adds a token; returns its id and value.
    pub fn add(
        &mut self,
        name: &str,
        place: Where,
        user_id: u64,
        scopes: &[&str],
    ) -> (u64, String) {
        self.next_id += 1;
        let id = self.next_id;
        let value = format!("glpat-fake{id:016}x");
        let level = (place != Where::Personal).then_some(40);
        self.tokens.push(Tok {
            id,
            name: name.into(),
            description: String::new(),
            revoked: false,
            created_at: self.now - Duration::days(30),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            user_id,
            last_used_at: Some(self.now - Duration::days(1)),
            expires_at: Some(self.today() + Duration::days(200)),
            access_level: level,
            place,
            value: value.clone(),
        });
        (id, value)
    }

    pub fn token(&self, id: u64) -> &Tok {
        self.tokens.iter().find(|t| t.id == id).expect("token")
    }

    /// Appends an audit event about token `t` (GitLab's token events name the token in
    /// `target_id`, type `PersonalAccessToken`).
    pub fn audit(&mut self, t: &Tok, event_name: &str, message: &str, author: u64) {
        self.next_event += 1;
        let (entity_type, entity_id, path) = match &t.place {
            Where::Personal => ("User", t.user_id, format!("user{}", t.user_id)),
            Where::Project(p) => ("Project", *p, self.path_of(&t.place)),
            Where::Group(g) => ("Group", *g, self.path_of(&t.place)),
        };
        self.now += Duration::seconds(1);
        self.events.push(json!({
            "id": self.next_event,
            "author_id": author,
            "entity_id": entity_id,
            "entity_type": entity_type,
            "event_name": event_name,
            "details": {
                "event_name": event_name,
                "author_name": format!("user{author}"),
                "author_email": format!("user{author}@example.com"),
                "custom_message": message,
                "target_id": t.id,
                "target_type": "PersonalAccessToken",
                "target_details": t.name,
                "ip_address": "198.51.100.7",
                "entity_path": path,
            },
            "created_at": self.now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }));
    }

    fn path_of(&self, w: &Where) -> String {
        match w {
            Where::Personal => String::new(),
            Where::Project(p) => self
                .projects
                .iter()
                .find(|x| x.0 == *p)
                .map(|x| x.1.clone())
                .unwrap_or_default(),
            Where::Group(g) => self
                .groups
                .iter()
                .find(|x| x.0 == *g)
                .map(|x| x.1.clone())
                .unwrap_or_default(),
        }
    }

    fn find_ns(list: &[(u64, String)], key: &str) -> Option<u64> {
        list.iter()
            .find(|(id, path)| id.to_string() == key || path == key)
            .map(|x| x.0)
    }
}

/// A running fake.
#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<FakeState>>,
    pub url: String,
}

impl Fake {
    /// Starts the fake on a free loopback port: project `acme/payroll` (42), group
    /// `acme` (9), and user 1 (an administrator) holding the token keyaudit uses.
    pub async fn start() -> (Fake, String) {
        let mut st = FakeState {
            tokens: Vec::new(),
            projects: vec![(42, "acme/payroll".into())],
            groups: vec![(9, "acme".into())],
            events: Vec::new(),
            admin_value: None,
            throttle_next: 0,
            fail_next_change: 0,
            forbidden: HashSet::new(),
            seen: Vec::new(),
            public_url: String::new(),
            next_id: 100,
            next_event: 0,
            now: chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap(),
        };
        let (_, admin) = st.add("keyaudit-reader", Where::Personal, 1, &["read_api"]);
        st.admin_value = Some(admin.clone());
        let state = Arc::new(Mutex::new(st));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (Fake { state, url }, admin)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

fn err(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

fn page_of(items: Vec<Value>, query: &BTreeMap<String, String>, uri: &Uri, base: &str) -> Response {
    let per_page: usize = query
        .get("per_page")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page: usize = query
        .get("page")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let body: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let mut resp = axum::Json(Value::Array(body)).into_response();
    let h = resp.headers_mut();
    h.insert("x-next-page", next.parse().unwrap());
    h.insert("x-page", page.to_string().parse().unwrap());
    h.insert("x-per-page", per_page.to_string().parse().unwrap());
    h.insert("x-total", total.to_string().parse().unwrap());
    h.insert("x-total-pages", pages.to_string().parse().unwrap());
    let link = |p: usize, rel: &str| {
        let mut q = query.clone();
        q.insert("page".into(), p.to_string());
        q.insert("per_page".into(), per_page.to_string());
        let qs: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace('+', "%2B")))
            .collect();
        format!("<{base}{}?{}>; rel=\"{rel}\"", uri.path(), qs.join("&"))
    };
    let mut links = vec![link(1, "first"), link(pages, "last")];
    if page < pages {
        links.push(link(page + 1, "next"));
    }
    h.insert("link", links.join(", ").parse().unwrap());
    resp
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
    st.seen.push(format!("{method} {}", uri));
    if st.throttle_next > 0 {
        st.throttle_next -= 1;
        let mut r = (StatusCode::TOO_MANY_REQUESTS, "Retry later\n").into_response();
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        r.headers_mut()
            .insert("ratelimit-limit", "600".parse().unwrap());
        r.headers_mut()
            .insert("ratelimit-remaining", "0".parse().unwrap());
        r.headers_mut()
            .insert("content-type", "text/plain".parse().unwrap());
        return r;
    }
    if method != Method::GET && st.fail_next_change > 0 {
        st.fail_next_change -= 1;
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error",
        );
    }
    let Some(raw_path) = uri.path().strip_prefix("/api/v4") else {
        return err(StatusCode::NOT_FOUND, "404 Not Found");
    };
    let decoded: Vec<String> = raw_path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let path = format!("/{}", decoded.join("/"));
    // Authentication: an active token's value.
    let today = st.today();
    let presented = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string)
        });
    let Some(caller) = presented
        .as_deref()
        .and_then(|v| st.tokens.iter().find(|t| t.value == v && t.active(today)))
        .cloned()
    else {
        return err(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    };
    let admin = st.admin_value.as_deref() == presented.as_deref();
    if let Some(p) = st.forbidden.iter().find(|p| path.starts_with(p.as_str())) {
        let _ = p;
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided by the access token.",
                "scope": "api"
            })),
        )
            .into_response();
    }
    let _ = body;
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    // Which token collection the path names, and the rest of the path.
    let (place, rest): (Option<Where>, &[&str]) = match segs.as_slice() {
        ["personal_access_tokens", rest @ ..] => (Some(Where::Personal), rest),
        ["projects", id, "access_tokens", rest @ ..] => {
            match FakeState::find_ns(&st.projects, id) {
                Some(p) => (Some(Where::Project(p)), rest),
                None => return err(StatusCode::NOT_FOUND, "404 Project Not Found"),
            }
        }
        ["groups", id, "access_tokens", rest @ ..] => match FakeState::find_ns(&st.groups, id) {
            Some(g) => (Some(Where::Group(g)), rest),
            None => return err(StatusCode::NOT_FOUND, "404 Group Not Found"),
        },
        _ => (None, &[]),
    };
    if let Some(place) = place {
        return tokens(&mut st, &method, &uri, &query, place, rest, &caller, admin);
    }
    let (entity, id) = match segs.as_slice() {
        ["audit_events"] if admin => (None, 0),
        ["audit_events"] => return err(StatusCode::FORBIDDEN, "403 Forbidden"),
        ["projects", id, "audit_events"] => match FakeState::find_ns(&st.projects, id) {
            Some(p) => (Some("Project"), p),
            None => return err(StatusCode::NOT_FOUND, "404 Project Not Found"),
        },
        ["groups", id, "audit_events"] => match FakeState::find_ns(&st.groups, id) {
            Some(g) => (Some("Group"), g),
            None => return err(StatusCode::NOT_FOUND, "404 Group Not Found"),
        },
        _ => return err(StatusCode::NOT_FOUND, "404 Not Found"),
    };
    if method != Method::GET {
        return err(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
    }
    let after: Option<DateTime<Utc>> = query.get("created_after").and_then(|s| s.parse().ok());
    let mut items: Vec<Value> = st
        .events
        .iter()
        .filter(|e| entity.is_none_or(|t| e["entity_type"] == t && e["entity_id"] == id))
        .filter(|e| {
            after.is_none_or(|a| {
                e["created_at"]
                    .as_str()
                    .and_then(|s| s.parse::<DateTime<Utc>>().ok())
                    .is_some_and(|t| t >= a)
            })
        })
        .cloned()
        .collect();
    items.reverse();
    page_of(items, &query, &uri, &st.public_url)
}

#[allow(clippy::too_many_arguments)]
fn tokens(
    st: &mut FakeState,
    method: &Method,
    uri: &Uri,
    query: &BTreeMap<String, String>,
    place: Where,
    rest: &[&str],
    caller: &Tok,
    admin: bool,
) -> Response {
    let today = st.today();
    let visible = |t: &Tok| {
        t.place == place && (place != Where::Personal || admin || t.user_id == caller.user_id)
    };
    match (method.clone(), rest) {
        (Method::GET, []) => {
            let items = st
                .tokens
                .iter()
                .filter(|t| visible(t))
                .filter(|t| match query.get("state").map(String::as_str) {
                    Some("active") => t.active(today),
                    Some("inactive") => !t.active(today),
                    _ => true,
                })
                .map(|t| t.json(today))
                .collect();
            page_of(items, query, uri, &st.public_url)
        }
        (Method::GET, ["self"]) if place == Where::Personal => {
            axum::Json(caller.json(today)).into_response()
        }
        (m, [id, tail @ ..]) => {
            let Some(n) = id.parse::<u64>().ok() else {
                return err(StatusCode::BAD_REQUEST, "400 Bad request - id is invalid");
            };
            let Some(t) = st.tokens.iter().find(|t| t.id == n && visible(t)).cloned() else {
                return err(StatusCode::NOT_FOUND, "404 Token Not Found");
            };
            let kind = match place {
                Where::Personal => "personal_access_token",
                Where::Project(_) => "project_access_token",
                Where::Group(_) => "group_access_token",
            };
            match (m, tail) {
                (Method::GET, []) => axum::Json(t.json(today)).into_response(),
                (Method::DELETE, []) => {
                    if t.revoked {
                        return err(
                            StatusCode::BAD_REQUEST,
                            "400 Bad request - Token already revoked",
                        );
                    }
                    st.tokens.iter_mut().find(|x| x.id == n).unwrap().revoked = true;
                    let t = st.token(n).clone();
                    st.audit(
                        &t,
                        &format!("{kind}_revoked"),
                        &format!("Revoked {} with token_id: {n}", kind.replace('_', " ")),
                        caller.user_id,
                    );
                    StatusCode::NO_CONTENT.into_response()
                }
                (Method::POST, ["rotate"]) => {
                    if !t.active(today) {
                        return err(
                            StatusCode::BAD_REQUEST,
                            "400 Bad request - Token already revoked",
                        );
                    }
                    st.tokens.iter_mut().find(|x| x.id == n).unwrap().revoked = true;
                    st.next_id += 1;
                    let id = st.next_id;
                    let mut new = t.clone();
                    new.id = id;
                    new.value = format!("glpat-fake{id:016}r");
                    new.created_at = st.now;
                    new.last_used_at = None;
                    new.expires_at = Some(today + Duration::days(7));
                    st.tokens.push(new.clone());
                    st.audit(
                        &new,
                        &format!("{kind}_rotated"),
                        &format!("Rotated {} with token_id: {n}", kind.replace('_', " ")),
                        caller.user_id,
                    );
                    let mut v = new.json(today);
                    v["token"] = json!(new.value);
                    axum::Json(v).into_response()
                }
                _ => err(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed"),
            }
        }
        _ => err(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed"),
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
