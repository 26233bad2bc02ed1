//! A stateful fake of the GitHub REST API endpoints keyaudit's `github` provider calls,
//! written from GitHub's REST documentation (docs.github.com/en/rest: "Authenticating as
//! a GitHub App installation", "Personal access tokens" (orgs), "Audit log" (orgs,
//! Enterprise Cloud), "Secret scanning" (org alerts), "Using pagination in the REST API",
//! "Rate limits for the REST API"):
//!
//! - `POST /app/installations/{id}/access_tokens` verifies the App's JWT (RS256
//!   signature with the App's public key, `iss`, `iat`, `exp` no more than 10 minutes
//!   ahead and not past) and issues an hour-long `ghs_` installation token;
//! - the organisation's token grants answer only installation tokens (a personal
//!   access token gets 403, as on GitHub); revoking a grant removes it from the listing
//!   and appends `personal_access_token.access_revoked` to the audit log;
//! - the audit log is cursor-paginated (`after` in the `Link` header), `order`, and
//!   `phrase` `created:>=TIME`; an organisation without Enterprise Cloud gets 404;
//! - page-numbered listings carry `Link` headers; injected secondary rate limits answer
//!   403 with `Retry-After`, injected 429s too.
//!
//! Served by axum on 127.0.0.1; Prism sits in front.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub const ORG: &str = "acme";
pub const APP_ID: u64 = 4242;
pub const INSTALLATION_ID: u64 = 777;

/// A fine-grained personal access token with access to the organisation.
#[derive(Debug, Clone)]
pub struct Pat {
    /// The grant's id (`pat_id`).
    pub grant_id: u64,
    pub token_id: u64,
    pub name: String,
    pub owner: String,
    pub org_perms: Vec<(String, String)>,
    pub repo_perms: Vec<(String, String)>,
    pub selection: String,
    pub granted_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    /// The token itself (its hash is what the audit log records).
    pub value: String,
}

/// The fake's whole state; tests read and change it through [`Fake::with`].
pub struct FakeState {
    pub pats: Vec<Pat>,
    /// Audit-log entries, oldest first.
    pub events: Vec<Value>,
    /// Secret-scanning alerts, as GitHub lists them (without `secret`).
    pub alerts: Vec<Value>,
    /// The App's public key (PKCS#1 RSAPublicKey DER) JWTs are verified with.
    pub app_public_key: Vec<u8>,
    /// Installation tokens issued, with their expiry.
    pub installation_tokens: Vec<(String, DateTime<Utc>)>,
    /// JWTs refused, with the reason.
    pub refused_jwts: Vec<String>,
    /// Personal access tokens accepted by the audit log and the alerts (not by the token
    /// grants, which answer only Apps).
    pub pat_credentials: Vec<String>,
    /// The organisation is on GitHub Enterprise Cloud (has the audit log API).
    pub enterprise: bool,
    /// Path fragments answered 403 "Resource not accessible by integration" (a
    /// permission the App lacks).
    pub forbidden: HashSet<String>,
    /// Requests (whose `METHOD /path` contains the fragment) to answer with a secondary rate
    /// limit (403, `Retry-After: 1`) before serving normally.
    pub secondary_limit: Vec<String>,
    /// Requests (whose `METHOD /path` contains the fragment) to answer 429 (`Retry-After: 1`).
    pub too_many: Vec<String>,
    /// Requests (whose `METHOD /path` contains the fragment) to answer as the primary
    /// rate limit exhausted (403, `X-RateLimit-Remaining: 0`, reset a second ahead).
    pub primary_limit: Vec<String>,
    /// Changes (POST to the organisation) to answer 500 without applying them.
    pub fail_next_change: u32,
    /// The URL clients use (Prism's), for the `Link` header's targets.
    pub public_url: String,
    /// Every request: `METHOD /path?query`.
    pub seen: Vec<String>,
    next_id: u64,
    next_doc: u64,
    pub now: DateTime<Utc>,
}

/// The `hashed_token` GitHub records for `token`: base64 SHA-256.
pub fn hashed(token: &str) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(token.as_bytes()))
}

fn api(rest: &str) -> String {
    format!("https://api.github.com{rest}")
}

/// A `simple-user` as GitHub serves it.
pub fn user(login: &str, id: u64) -> Value {
    json!({
        "login": login, "id": id, "node_id": format!("U_{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}"), "gravatar_id": "",
        "url": api(&format!("/users/{login}")), "html_url": format!("https://github.com/{login}"),
        "followers_url": api(&format!("/users/{login}/followers")),
        "following_url": api(&format!("/users/{login}/following{{/other_user}}")),
        "gists_url": api(&format!("/users/{login}/gists{{/gist_id}}")),
        "starred_url": api(&format!("/users/{login}/starred{{/owner}}{{/repo}}")),
        "subscriptions_url": api(&format!("/users/{login}/subscriptions")),
        "organizations_url": api(&format!("/users/{login}/orgs")),
        "repos_url": api(&format!("/users/{login}/repos")),
        "events_url": api(&format!("/users/{login}/events{{/privacy}}")),
        "received_events_url": api(&format!("/users/{login}/received_events")),
        "type": "User", "site_admin": false
    })
}

/// A `simple-repository` of the organisation.
pub fn repo(name: &str, id: u64) -> Value {
    let full = format!("{ORG}/{name}");
    let r = |s: &str| api(&format!("/repos/{full}{s}"));
    let mut v = json!({
        "id": id, "node_id": format!("R_{id}"), "name": name, "full_name": full,
        "owner": user(ORG, 1), "private": true, "html_url": format!("https://github.com/{full}"),
        "description": null, "fork": false, "url": r(""),
    });
    let urls = [
        ("archive_url", "/{archive_format}{/ref}"),
        ("assignees_url", "/assignees{/user}"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("branches_url", "/branches{/branch}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("comments_url", "/comments{/number}"),
        ("commits_url", "/commits{/sha}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("contents_url", "/contents/{+path}"),
        ("contributors_url", "/contributors"),
        ("deployments_url", "/deployments"),
        ("downloads_url", "/downloads"),
        ("events_url", "/events"),
        ("forks_url", "/forks"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("issue_events_url", "/issues/events{/number}"),
        ("issues_url", "/issues{/number}"),
        ("keys_url", "/keys{/key_id}"),
        ("labels_url", "/labels{/name}"),
        ("languages_url", "/languages"),
        ("merges_url", "/merges"),
        ("milestones_url", "/milestones{/number}"),
        (
            "notifications_url",
            "/notifications{?since,all,participating}",
        ),
        ("pulls_url", "/pulls{/number}"),
        ("releases_url", "/releases{/id}"),
        ("stargazers_url", "/stargazers"),
        ("statuses_url", "/statuses/{sha}"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("tags_url", "/tags"),
        ("teams_url", "/teams"),
        ("trees_url", "/git/trees{/sha}"),
        ("hooks_url", "/hooks"),
    ];
    for (k, rest) in urls {
        v[k] = json!(r(rest));
    }
    v
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Pat {
    fn json(&self, now: DateTime<Utc>, user_id: u64) -> Value {
        let perms = |v: &[(String, String)]| {
            Value::Object(v.iter().map(|(k, p)| (k.clone(), json!(p))).collect())
        };
        json!({
            "id": self.grant_id,
            "owner": user(&self.owner, user_id),
            "repository_selection": self.selection,
            "repositories_url": api(&format!("/organizations/1/personal-access-tokens/{}/repositories", self.grant_id)),
            "permissions": {"organization": perms(&self.org_perms), "repository": perms(&self.repo_perms)},
            "access_granted_at": iso(self.granted_at),
            "token_id": self.token_id,
            "token_name": self.name,
            "token_expired": self.expires_at.is_some_and(|e| e <= now),
            "token_expires_at": self.expires_at.map(iso),
            "token_last_used_at": self.last_used_at.map(iso),
        })
    }
}

impl FakeState {
    /// Adds a token granted to the organisation; returns (token id, token value).
    pub fn add_pat(
        &mut self,
        name: &str,
        owner: &str,
        org_perms: &[(&str, &str)],
        repo_perms: &[(&str, &str)],
    ) -> (u64, String) {
        self.next_id += 1;
        let n = self.next_id;
        let value = format!("github_pat_11FAKE{n:06}_{}", "x".repeat(30));
        let own = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        self.pats.push(Pat {
            grant_id: 25_000 + n,
            token_id: 98_000 + n,
            name: name.into(),
            owner: owner.into(),
            org_perms: own(org_perms),
            repo_perms: own(repo_perms),
            selection: if repo_perms.is_empty() {
                "none".into()
            } else {
                "subset".into()
            },
            granted_at: self.now - Duration::days(40),
            expires_at: Some(self.now + Duration::days(60)),
            last_used_at: Some(self.now - Duration::days(2)),
            revoked: false,
            value: value.clone(),
        });
        (98_000 + n, value)
    }

    pub fn pat(&self, token_id: u64) -> &Pat {
        self.pats
            .iter()
            .find(|p| p.token_id == token_id)
            .expect("pat")
    }

    /// Appends an audit-log entry; `token`: the token that made the call (its id and
    /// hash are recorded, or only the hash with `hash_only`).
    pub fn audit(
        &mut self,
        action: &str,
        actor: &str,
        token: Option<&Pat>,
        hash_only: bool,
    ) -> String {
        self.next_doc += 1;
        self.now += Duration::seconds(1);
        let ms = self.now.timestamp_millis();
        let doc = format!("doc-{:05}", self.next_doc);
        let mut v = json!({
            "@timestamp": ms, "created_at": ms, "_document_id": doc, "action": action,
            "actor": actor, "actor_id": 11, "org": ORG, "org_id": 1,
            "actor_ip": "203.0.113.9", "user_agent": "curl/8.5.0",
        });
        if let Some(t) = token {
            v["hashed_token"] = json!(hashed(&t.value));
            v["programmatic_access_type"] = json!("Fine-grained personal access token");
            if !hash_only {
                v["token_id"] = json!(t.token_id);
            }
        }
        self.events.push(v);
        doc
    }

    /// Adds a secret-scanning alert (validity `active`, `inactive` or `unknown`).
    pub fn alert(
        &mut self,
        repo_name: &str,
        secret_type: &str,
        display: &str,
        validity: &str,
    ) -> u64 {
        let number = self.alerts.len() as u64 + 1;
        let full = format!("{ORG}/{repo_name}");
        self.alerts.push(json!({
            "number": number,
            "created_at": iso(self.now - Duration::days(3)),
            "updated_at": iso(self.now - Duration::days(1)),
            "url": api(&format!("/repos/{full}/secret-scanning/alerts/{number}")),
            "html_url": format!("https://github.com/{full}/security/secret-scanning/{number}"),
            "locations_url": api(&format!("/repos/{full}/secret-scanning/alerts/{number}/locations")),
            "state": "open", "resolution": null, "resolved_at": null, "resolved_by": null,
            "secret_type": secret_type, "secret_type_display_name": display,
            "provider": "Fake", "provider_slug": "fake",
            "repository": repo(repo_name, 500 + number),
            "push_protection_bypassed": false, "push_protection_bypassed_by": null,
            "push_protection_bypassed_at": null, "resolution_comment": null,
            "validity": validity, "publicly_leaked": false, "multi_repo": false,
        }));
        number
    }

    fn installation_token_ok(&self, t: &str) -> bool {
        self.installation_tokens
            .iter()
            .any(|(v, exp)| v == t && *exp > self.now)
    }
}

/// A running fake.
#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<FakeState>>,
    pub url: String,
}

impl Fake {
    /// Starts the fake on a free loopback port for organisation `acme`, on Enterprise
    /// Cloud, with App 4242 (installation 777) whose public key is `app_public_key`.
    pub async fn start(app_public_key: Vec<u8>) -> Fake {
        let st = FakeState {
            pats: Vec::new(),
            events: Vec::new(),
            alerts: Vec::new(),
            app_public_key,
            installation_tokens: Vec::new(),
            refused_jwts: Vec::new(),
            pat_credentials: Vec::new(),
            enterprise: true,
            forbidden: HashSet::new(),
            secondary_limit: Vec::new(),
            too_many: Vec::new(),
            fail_next_change: 0,
            primary_limit: Vec::new(),
            public_url: String::new(),
            seen: Vec::new(),
            next_id: 0,
            next_doc: 0,
            now: DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap(),
        };
        let state = Arc::new(Mutex::new(st));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fake { state, url }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

fn err(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.as_str()})),
    )
        .into_response()
}

fn limited(status: StatusCode) -> Response {
    let mut r = err(
        status,
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    );
    r.headers_mut().insert("retry-after", "1".parse().unwrap());
    r
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    let u = reqwest::Url::parse(&format!("http://fake/?{}", uri.query().unwrap_or(""))).unwrap();
    u.query_pairs().into_owned().collect()
}

fn q<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A page of `items` by `page` / `per_page`, with GitHub's `Link` header.
fn page_of<T>(
    items: Vec<T>,
    to_json: impl Fn(T) -> Value,
    pairs: &[(String, String)],
    path: &str,
    base: &str,
) -> Response {
    let per_page: usize = q(pairs, "per_page")
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = q(pairs, "page")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let pages = items.len().div_ceil(per_page).max(1);
    let body: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(to_json)
        .collect();
    let mut resp = axum::Json(Value::Array(body)).into_response();
    let link_to = |p: usize| {
        let mut u = reqwest::Url::parse(&format!("{base}{path}")).unwrap();
        {
            let mut qp = u.query_pairs_mut();
            for (k, v) in pairs.iter().filter(|(k, _)| k != "page") {
                qp.append_pair(k, v);
            }
            qp.append_pair("page", &p.to_string());
        }
        u.to_string()
    };
    let mut links = Vec::new();
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", link_to(page + 1)));
        links.push(format!("<{}>; rel=\"last\"", link_to(pages)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link_to(page - 1)));
        links.push(format!("<{}>; rel=\"first\"", link_to(1)));
    }
    if !links.is_empty() {
        resp.headers_mut()
            .insert("link", links.join(", ").parse().unwrap());
    }
    resp
}

fn b64url_json(part: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Verifies an App JWT as GitHub does; the reason when it is refused.
fn check_jwt(jwt: &str, public_key: &[u8], now: DateTime<Utc>) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("A JSON web token could not be decoded".into());
    }
    let header = b64url_json(parts[0]).ok_or("A JSON web token could not be decoded")?;
    if header["alg"] != "RS256" {
        return Err("A JSON web token could not be decoded (alg must be RS256)".into());
    }
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|_| "A JSON web token could not be decoded")?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key,
    );
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .map_err(|_| "A JSON web token could not be decoded (signature)")?;
    let claims = b64url_json(parts[1]).ok_or("A JSON web token could not be decoded")?;
    let iss_ok = claims["iss"] == json!(APP_ID.to_string()) || claims["iss"] == json!(APP_ID);
    if !iss_ok {
        return Err(format!("Integration not found (iss {})", claims["iss"]));
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err("'Issued at' and 'Expiration time' claims are required".into());
    };
    let t = now.timestamp();
    if iat > t + 60 {
        return Err("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued".into());
    }
    if exp <= t {
        return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".into());
    }
    if exp - iat > 600 || exp > t + 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future".into());
    }
    Ok(())
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = state.lock().unwrap();
    let path = uri.path().to_string();
    st.seen.push(format!(
        "{method} {}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or(&path)
    ));
    let line = format!("{method} {path}");
    if let Some(i) = st
        .secondary_limit
        .iter()
        .position(|f| line.contains(f.as_str()))
    {
        st.secondary_limit.remove(i);
        return limited(StatusCode::FORBIDDEN);
    }
    if let Some(i) = st
        .primary_limit
        .iter()
        .position(|f| line.contains(f.as_str()))
    {
        st.primary_limit.remove(i);
        let mut r = err(
            StatusCode::FORBIDDEN,
            &format!("API rate limit exceeded for installation ID {INSTALLATION_ID}."),
        );
        let h = r.headers_mut();
        h.insert("x-ratelimit-limit", "5000".parse().unwrap());
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert(
            "x-ratelimit-reset",
            (Utc::now().timestamp() + 1).to_string().parse().unwrap(),
        );
        return r;
    }
    if let Some(i) = st.too_many.iter().position(|f| line.contains(f.as_str())) {
        st.too_many.remove(i);
        return limited(StatusCode::TOO_MANY_REQUESTS);
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .unwrap_or("")
        .to_string();
    let pairs = query_pairs(&uri);
    let now = st.now;
    let base = st.public_url.clone();

    // Authenticating as an App installation.
    let install_path = format!("/app/installations/{INSTALLATION_ID}/access_tokens");
    if method == Method::POST
        && path.starts_with("/app/installations/")
        && path.ends_with("/access_tokens")
    {
        if let Err(why) = check_jwt(&bearer, &st.app_public_key, Utc::now()) {
            st.refused_jwts.push(why.clone());
            return err(StatusCode::UNAUTHORIZED, &why);
        }
        if path != install_path {
            return err(StatusCode::NOT_FOUND, "Not Found");
        }
        let n = st.installation_tokens.len() + 1;
        let token = format!("ghs_fakeinstallation{n:016}");
        let exp = now + Duration::hours(1);
        st.installation_tokens.push((token.clone(), exp));
        return (
            StatusCode::CREATED,
            axum::Json(json!({"token": token, "expires_at": iso(exp), "permissions": {"organization_personal_access_tokens": "write"}, "repository_selection": "all"})),
        )
            .into_response();
    }

    let app = st.installation_token_ok(&bearer);
    let pat = st.pat_credentials.contains(&bearer);
    if !app && !pat {
        return err(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    if let Some(f) = st.forbidden.iter().find(|f| path.contains(f.as_str())) {
        let _ = f;
        return err(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        );
    }
    let org = format!("/orgs/{ORG}");
    let Some(rest) = path.strip_prefix(&org) else {
        return err(StatusCode::NOT_FOUND, "Not Found");
    };
    match (method.clone(), rest) {
        (Method::GET, "/personal-access-tokens") | (Method::POST, "/personal-access-tokens")
            if !app =>
        {
            err(
                StatusCode::FORBIDDEN,
                "Resource not accessible by personal access token",
            )
        }
        (Method::GET, "/personal-access-tokens") => {
            let wanted: Vec<u64> = pairs
                .iter()
                .filter(|(k, _)| k == "token_id" || k == "token_id[]")
                .filter_map(|(_, v)| v.parse().ok())
                .collect();
            let items = st
                .pats
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.revoked && (wanted.is_empty() || wanted.contains(&p.token_id)))
                .collect::<Vec<_>>();
            page_of(
                items,
                |(i, p)| p.json(now, 100 + i as u64),
                &pairs,
                &path,
                &base,
            )
        }
        (Method::POST, "/personal-access-tokens") if st.fail_next_change > 0 => {
            st.fail_next_change -= 1;
            err(StatusCode::INTERNAL_SERVER_ERROR, "Server Error")
        }
        (Method::POST, "/personal-access-tokens") => {
            let Ok(b) = serde_json::from_slice::<Value>(&body) else {
                return err(StatusCode::BAD_REQUEST, "Problems parsing JSON");
            };
            if b["action"] != "revoke" {
                return err(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request.");
            }
            let ids: Vec<u64> = b["pat_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect();
            if ids.is_empty()
                || ids
                    .iter()
                    .any(|id| !st.pats.iter().any(|p| p.grant_id == *id && !p.revoked))
            {
                return err(StatusCode::NOT_FOUND, "Not Found");
            }
            for id in ids {
                let p = st.pats.iter_mut().find(|p| p.grant_id == id).unwrap();
                p.revoked = true;
                let p = p.clone();
                st.audit(
                    "personal_access_token.access_revoked",
                    "keyaudit-app[bot]",
                    Some(&p),
                    false,
                );
            }
            (StatusCode::ACCEPTED, axum::Json(json!({}))).into_response()
        }
        (Method::GET, "/audit-log") => {
            if !st.enterprise {
                return err(StatusCode::NOT_FOUND, "Not Found");
            }
            let asc = q(&pairs, "order") == Some("asc");
            let since = q(&pairs, "phrase")
                .and_then(|p| p.strip_prefix("created:>="))
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_millis());
            // Entries are appended in time order: the ones at or after `since` are a tail.
            let stamp = |e: &Value| e["@timestamp"].as_i64().unwrap_or(0);
            let lo = since.map_or(0, |s| st.events.partition_point(|e| stamp(e) < s));
            let total = st.events.len();
            let count = total - lo;
            let at = |i: usize| if asc { lo + i } else { total - 1 - i };
            let per_page: usize = q(&pairs, "per_page")
                .and_then(|s| s.parse().ok())
                .unwrap_or(30)
                .clamp(1, 100);
            let start: usize = q(&pairs, "after")
                .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("pos:").and_then(|n| n.parse().ok()))
                .unwrap_or(0);
            let end = (start + per_page).min(count);
            let body: Vec<Value> = (start.min(end)..end)
                .map(|i| st.events[at(i)].clone())
                .collect();
            let mut resp = axum::Json(Value::Array(body)).into_response();
            if end < count {
                let mut u = reqwest::Url::parse(&format!("{base}{path}")).unwrap();
                {
                    let mut qp = u.query_pairs_mut();
                    for (k, v) in pairs.iter().filter(|(k, _)| k != "after" && k != "before") {
                        qp.append_pair(k, v);
                    }
                    qp.append_pair(
                        "after",
                        &base64::engine::general_purpose::STANDARD.encode(format!("pos:{end}")),
                    );
                    qp.append_pair("before", "");
                }
                resp.headers_mut()
                    .insert("link", format!("<{u}>; rel=\"next\"").parse().unwrap());
            }
            resp
        }
        (Method::GET, "/secret-scanning/alerts") => {
            let state_filter = q(&pairs, "state");
            let items: Vec<Value> = st
                .alerts
                .iter()
                .filter(|a| state_filter.is_none_or(|s| a["state"] == s))
                .cloned()
                .collect();
            page_of(items, |a| a, &pairs, &path, &base)
        }
        _ => err(StatusCode::NOT_FOUND, "Not Found"),
    }
}
