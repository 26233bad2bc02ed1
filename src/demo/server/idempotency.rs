//! `Idempotency-Key` on every POST (docs/provider-api.md): the first answer to a key is
//! remembered for 24 hours with a hash of its request (method, path, body); the same key
//! with the same request gets that answer again and changes nothing, the same key with
//! another request is `409`. Only successful answers are remembered: a refused or failed
//! request changed nothing, so trying it again is safe. A replayed answer carries
//! `Idempotent-Replayed: true` (and the [`Replayed`] extension the fault layer reads).
//!
//! A remembered answer may hold a new secret; it goes only to a request presenting the
//! same idempotency key (and the admin token), and is forgotten after 24 hours.

use super::{error, Shared};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The request header.
pub(crate) const HEADER: &str = "idempotency-key";
/// How long an answer is remembered.
pub(crate) const KEEP: Duration = Duration::from_secs(24 * 3600);
/// Longest request body the demo accepts on a POST.
const MAX_BODY: usize = 1 << 20;

/// Marks a response that repeats a remembered answer (nothing was changed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replayed;

/// One remembered answer.
struct Answer {
    at: Instant,
    request: [u8; 32],
    status: StatusCode,
    content_type: Option<HeaderValue>,
    cache_control: Option<HeaderValue>,
    body: bytes::Bytes,
}

/// The remembered answers, by idempotency key.
#[derive(Default)]
pub(crate) struct Remembered {
    answers: HashMap<String, Answer>,
}

impl Remembered {
    fn forget_old(&mut self, now: Instant) {
        self.answers
            .retain(|_, a| now.saturating_duration_since(a.at) < KEEP);
    }
}

fn request_hash(method: &Method, path: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    h.finalize().into()
}

/// A key is 1 to 255 visible ASCII characters.
fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic())
}

pub(crate) async fn idempotent(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let Some(key) = key
        .to_str()
        .ok()
        .filter(|k| valid_key(k))
        .map(str::to_string)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "`Idempotency-Key` must be 1 to 255 visible ASCII characters",
        );
    };
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("cannot read the request body: {e}"),
            )
        }
    };
    let hash = request_hash(&parts.method, parts.uri.path(), &body);
    // One lock over lookup, change and remembering: two requests with one key never
    // both change something.
    let mut mem = s.idempotency.lock().await;
    let now = Instant::now();
    if let Some(a) = mem.answers.get(&key) {
        if now.saturating_duration_since(a.at) < KEEP {
            if a.request != hash {
                return error(
                    StatusCode::CONFLICT,
                    "idempotency_conflict",
                    "this Idempotency-Key was used with a different request; use a new key for a new request",
                );
            }
            let mut r = (a.status, Body::from(a.body.clone())).into_response();
            if let Some(v) = &a.content_type {
                r.headers_mut().insert(header::CONTENT_TYPE, v.clone());
            }
            if let Some(v) = &a.cache_control {
                r.headers_mut().insert(header::CACHE_CONTROL, v.clone());
            }
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            r.extensions_mut().insert(Replayed);
            return r;
        }
    }
    let answer = next.run(Request::from_parts(parts, Body::from(body))).await;
    if !answer.status().is_success() {
        return answer;
    }
    let (parts, body) = answer.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    mem.forget_old(now);
    mem.answers.insert(
        key,
        Answer {
            at: now,
            request: hash,
            status: parts.status,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            cache_control: parts.headers.get(header::CACHE_CONTROL).cloned(),
            body: bytes.clone(),
        },
    );
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(valid_key("3f2a9c"));
        assert!(!valid_key(""));
        assert!(!valid_key("a b"));
        assert!(!valid_key(&"x".repeat(256)));
        assert!(!valid_key("clé"));
    }

    #[test]
    fn the_request_hash_covers_method_path_and_body() {
        let a = request_hash(&Method::POST, "/v1/keys/a/revoke", b"{}");
        assert_eq!(a, request_hash(&Method::POST, "/v1/keys/a/revoke", b"{}"));
        assert_ne!(a, request_hash(&Method::POST, "/v1/keys/b/revoke", b"{}"));
        assert_ne!(a, request_hash(&Method::POST, "/v1/keys/a/revoke", b"{ }"));
    }
}
