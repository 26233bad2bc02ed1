//! A stateful fake of the OpenAI Administration API endpoints keyaudit uses, written
//! from OpenAI's API reference (platform.openai.com/docs/api-reference: administration,
//! projects, project API keys, project service accounts, admin API keys, audit logs) and
//! its error-codes guide: cursor pagination (`limit`, `after`; `first_id`, `last_id`,
//! `has_more`), bearer authentication with an admin key, 403 with OpenAI's error object
//! for a missing permission, injected 429s with `Retry-After`, and an organization whose
//! audit logging may be off. A project key of a service account cannot be deleted on its
//! own (the reference: "an error if the key belonged to a service account"); deleting
//! the service account removes its key. Every change appends the audit-log entry OpenAI
//! records for it, newest first. Served by axum on 127.0.0.1; Prism sits in front.

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// Who owns a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A user (id, email, name).
    User(String, String, String),
    /// A service account (id, name).
    ServiceAccount(String, String),
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The project, or `None` for an admin key.
    pub project: Option<String>,
    pub owner: Owner,
    pub value: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl ApiKey {
    fn redacted(&self) -> String {
        let head = if self.project.is_none() {
            "sk-admin"
        } else if matches!(self.owner, Owner::ServiceAccount(..)) {
            "sk-svcacct-"
        } else {
            "sk-proj-"
        };
        format!("{head}...{}", &self.value[self.value.len() - 4..])
    }

    fn json(&self) -> Value {
        if self.project.is_none() {
            let (id, name) = match &self.owner {
                Owner::User(id, _, name) => (id, name),
                Owner::ServiceAccount(id, name) => (id, name),
            };
            return json!({
                "object": "organization.admin_api_key",
                "id": self.id,
                "name": self.name,
                "redacted_value": self.redacted(),
                "created_at": self.created_at,
                "expires_at": null,
                "last_used_at": self.last_used_at,
                "owner": {"type": "user", "object": "organization.user", "id": id,
                          "name": name, "created_at": self.created_at - 86400, "role": "owner"},
            });
        }
        let owner = match &self.owner {
            Owner::User(id, email, name) => json!({"type": "user", "user": {
                "id": id, "email": email, "name": name, "created_at": self.created_at - 86400, "role": "owner"}}),
            Owner::ServiceAccount(id, name) => {
                json!({"type": "service_account", "service_account": {
                "id": id, "name": name, "created_at": self.created_at, "role": "member"}})
            }
        };
        json!({
            "object": "organization.project.api_key",
            "redacted_value": self.redacted(),
            "name": self.name,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "id": self.id,
            "owner_project_access": "active",
            "owner": owner,
        })
    }
}

/// The fake's whole state; tests read and change it through [`Fake::with`].
pub struct FakeState {
    /// (id, name) of the projects, in creation order.
    pub projects: Vec<(String, String)>,
    pub keys: Vec<ApiKey>,
    /// Audit-log entries, oldest first (served newest first).
    pub audit: Vec<Value>,
    pub audit_enabled: bool,
    /// The admin key keyaudit uses.
    pub admin_value: String,
    /// Requests to answer with 429 (`Retry-After: 1`) before serving normally.
    pub throttle_next: u32,
    /// Changes (DELETEs) to answer with 500 without applying them.
    pub fail_next_change: u32,
    /// Path prefixes answered with 403 (a missing permission).
    pub forbidden: HashSet<String>,
    /// Every request: `METHOD /path?query`.
    pub seen: Vec<String>,
    next_id: u64,
    pub now: i64,
}

impl FakeState {
    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:06}", self.next_id)
    }

    /// A key value of OpenAI's shape (`T3BlbkFJ` in the middle of the random part).
    fn value(head: &str, n: u64) -> String {
        format!("{head}{n:020}T3BlbkFJ{:020}Zq{:02}", n * 7, n % 100)
    }

    /// Adds a key (an admin key when `project` is `None`) and the `api_key.created`
    /// entry; returns its id.
    pub fn add_key(&mut self, name: &str, project: Option<&str>, owner: Owner) -> String {
        let id = self.fresh_id("key_");
        let head = match (project, &owner) {
            (None, _) => "sk-admin-",
            (Some(_), Owner::ServiceAccount(..)) => "sk-svcacct-",
            _ => "sk-proj-",
        };
        let value = Self::value(head, self.next_id);
        self.now += 1;
        let k = ApiKey {
            id: id.clone(),
            name: name.into(),
            project: project.map(str::to_string),
            owner,
            value,
            created_at: self.now,
            last_used_at: None,
        };
        self.keys.push(k.clone());
        self.log(
            "api_key.created",
            &k,
            json!({"id": id, "data": {"scopes": ["api.all"]}}),
        );
        id
    }

    pub fn key(&self, id: &str) -> Option<&ApiKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Records a use of key `id` now.
    pub fn use_key(&mut self, id: &str) {
        self.now += 60;
        let now = self.now;
        if let Some(k) = self.keys.iter_mut().find(|k| k.id == id) {
            k.last_used_at = Some(now);
        }
    }

    fn log(&mut self, kind: &str, k: &ApiKey, subject: Value) {
        let n = self.audit.len() + 1;
        let mut e = json!({
            "id": format!("audit_log-{n:05}"),
            "type": kind,
            "effective_at": self.now,
            "actor": {"type": "session", "session": {
                "user": {"id": "user-ana", "email": "ana@acme.example"},
                "ip_address": "198.51.100.7"}},
        });
        if let Some(p) = &k.project {
            let name = self
                .projects
                .iter()
                .find(|x| &x.0 == p)
                .map(|x| x.1.clone())
                .unwrap_or_default();
            e["project"] = json!({"id": p, "name": name});
        }
        e[kind] = subject;
        self.audit.push(e);
    }
}

/// A running fake.
#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<FakeState>>,
    pub url: String,
}

impl Fake {
    /// Starts the fake on a free loopback port: projects `proj_payroll` and `proj_ats`,
    /// and the admin key keyaudit uses (`keyaudit-audit`, owned by Ana).
    pub async fn start() -> (Fake, String) {
        let mut st = FakeState {
            projects: vec![
                ("proj_payroll".into(), "Payroll".into()),
                ("proj_ats".into(), "Applicant tracking".into()),
            ],
            keys: Vec::new(),
            audit: Vec::new(),
            audit_enabled: true,
            admin_value: String::new(),
            throttle_next: 0,
            fail_next_change: 0,
            forbidden: HashSet::new(),
            seen: Vec::new(),
            next_id: 0,
            now: chrono::Utc::now().timestamp() - 86400 * 30,
        };
        let id = st.add_key("keyaudit-audit", None, ana());
        let admin = st.key(&id).unwrap().value.clone();
        st.admin_value = admin.clone();
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

/// The organization's owner.
pub fn ana() -> Owner {
    Owner::User(
        "user-ana".into(),
        "ana@acme.example".into(),
        "Ana Lima".into(),
    )
}

fn err(status: StatusCode, message: &str, code: Option<&str>) -> Response {
    (
        status,
        axum::Json(
            json!({"error": {"message": message, "type": "invalid_request_error",
            "param": null, "code": code}}),
        ),
    )
        .into_response()
}

/// One page of `items` (each with an `id`) after the query's `after`.
fn page_of(items: Vec<Value>, query: &BTreeMap<String, String>) -> Response {
    let limit: usize = query
        .get("limit")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let start = match query.get("after") {
        Some(a) => match items.iter().position(|v| v["id"] == a.as_str()) {
            Some(i) => i + 1,
            None => return err(StatusCode::BAD_REQUEST, "Invalid 'after' cursor.", None),
        },
        None => 0,
    };
    let has_more = items.len() > start + limit;
    let data: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let first = data.first().map(|v| v["id"].clone()).unwrap_or(Value::Null);
    let last = data.last().map(|v| v["id"].clone()).unwrap_or(Value::Null);
    axum::Json(
        json!({"object": "list", "data": data, "first_id": first, "last_id": last,
        "has_more": has_more}),
    )
    .into_response()
}

fn url_pairs(q: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{q}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut st = state.lock().unwrap();
    let query = uri.query().map(url_pairs).unwrap_or_default();
    st.seen.push(format!("{method} {uri}"));
    if st.throttle_next > 0 {
        st.throttle_next -= 1;
        let mut r = err(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for requests. Please try again in 1s.",
            Some("rate_limit_exceeded"),
        );
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented != Some(st.admin_value.as_str()) {
        return err(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            Some("invalid_api_key"),
        );
    }
    let path = uri.path().to_string();
    if st.forbidden.iter().any(|p| path.starts_with(p.as_str())) {
        return err(
            StatusCode::FORBIDDEN,
            "You have insufficient permissions for this operation. Missing scopes: api.organization.projects.api_keys.write.",
            None,
        );
    }
    if method == Method::DELETE && st.fail_next_change > 0 {
        st.fail_next_change -= 1;
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request. Sorry about that!",
            None,
        );
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["organization", "projects"]) => {
            let items = st
                .projects
                .iter()
                .map(|(id, name)| {
                    json!({"id": id, "object": "organization.project", "name": name,
                    "created_at": 1711471533, "archived_at": null, "status": "active"})
                })
                .collect();
            page_of(items, &query)
        }
        (Method::GET, ["organization", "projects", p, "api_keys"]) => {
            if !st.projects.iter().any(|x| x.0 == *p) {
                return err(StatusCode::NOT_FOUND, "No such project.", None);
            }
            let items = st
                .keys
                .iter()
                .filter(|k| k.project.as_deref() == Some(*p))
                .map(ApiKey::json)
                .collect();
            page_of(items, &query)
        }
        (m, ["organization", "projects", p, "api_keys", id]) => {
            let Some(k) = st
                .keys
                .iter()
                .find(|k| k.id == *id && k.project.as_deref() == Some(*p))
                .cloned()
            else {
                return err(StatusCode::NOT_FOUND, "No such API key.", None);
            };
            if m == Method::GET {
                return axum::Json(k.json()).into_response();
            }
            if matches!(k.owner, Owner::ServiceAccount(..)) {
                return err(
                    StatusCode::BAD_REQUEST,
                    "API keys of service accounts cannot be deleted; delete the service account instead.",
                    None,
                );
            }
            st.keys.retain(|x| x.id != k.id);
            st.now += 1;
            st.log("api_key.deleted", &k, json!({"id": k.id}));
            axum::Json(
                json!({"object": "organization.project.api_key.deleted", "id": k.id,
                "deleted": true}),
            )
            .into_response()
        }
        (Method::DELETE, ["organization", "projects", p, "service_accounts", sa]) => {
            let gone: Vec<ApiKey> = st
                .keys
                .iter()
                .filter(|k| {
                    k.project.as_deref() == Some(*p)
                        && matches!(&k.owner, Owner::ServiceAccount(id, _) if id == sa)
                })
                .cloned()
                .collect();
            if gone.is_empty() {
                return err(StatusCode::NOT_FOUND, "No such service account.", None);
            }
            st.keys.retain(|k| !gone.iter().any(|g| g.id == k.id));
            st.now += 1;
            st.log("service_account.deleted", &gone[0], json!({"id": sa}));
            for k in &gone {
                st.log("api_key.deleted", k, json!({"id": k.id}));
            }
            axum::Json(
                json!({"object": "organization.project.service_account.deleted",
                "id": sa, "deleted": true}),
            )
            .into_response()
        }
        (Method::GET, ["organization", "admin_api_keys"]) => {
            let items = st
                .keys
                .iter()
                .filter(|k| k.project.is_none())
                .map(ApiKey::json)
                .collect();
            page_of(items, &query)
        }
        (m, ["organization", "admin_api_keys", id]) => {
            let Some(k) = st
                .keys
                .iter()
                .find(|k| k.id == *id && k.project.is_none())
                .cloned()
            else {
                return err(StatusCode::NOT_FOUND, "No such admin API key.", None);
            };
            if m == Method::GET {
                return axum::Json(k.json()).into_response();
            }
            st.keys.retain(|x| x.id != k.id);
            st.now += 1;
            st.log("api_key.deleted", &k, json!({"id": k.id}));
            axum::Json(
                json!({"id": k.id, "object": "organization.admin_api_key.deleted",
                "deleted": true}),
            )
            .into_response()
        }
        (Method::GET, ["organization", "audit_logs"]) => {
            if !st.audit_enabled {
                return err(
                    StatusCode::BAD_REQUEST,
                    "Audit logging is not enabled for this organization.",
                    None,
                );
            }
            let items = st.audit.iter().rev().cloned().collect();
            page_of(items, &query)
        }
        _ => err(StatusCode::NOT_FOUND, "Invalid URL.", None),
    }
}
