//! The one retry loop of the HTTP providers: a request is sent until its answer is
//! final, for a bounded number of attempts, waiting between attempts with exponential
//! backoff (jittered, capped) or the server's `Retry-After`. Each provider judges its
//! own answers ([`Verdict`]): which statuses are transient is the provider's call, the
//! loop only sends, waits and counts.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use std::time::Duration;

/// Backoff settings for one request.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 6,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
        }
    }
}

/// What a provider makes of one answer (status, `Retry-After`, body).
pub enum Verdict<T, E> {
    /// Final: the call succeeded.
    Done(T),
    /// Final: the call failed, and the same request would fail the same way.
    Fail(E),
    /// Transient: send the request again after the backoff, or after the server's
    /// `Retry-After` when it gave one. `why` is the message if no attempt succeeds.
    Again {
        why: String,
        retry_after: Option<Duration>,
    },
}

/// Why a retried request did not succeed.
pub enum Gave<E> {
    /// An answer was judged final ([`Verdict::Fail`]).
    Failed(E),
    /// Every attempt failed transiently; `last` says how the last one did.
    Exhausted { last: String, attempts: u32 },
    /// A change ([`Retry::send_change`]) was sent and its outcome is unknown: no answer,
    /// or a failure answer that does not say whether it was applied. Not sent again.
    Ambiguous { last: String },
}

impl Retry {
    /// The settings with `max_attempts` from a provider's configuration (default 6, at
    /// least 1).
    pub fn with_attempts(max_attempts: Option<u32>) -> Retry {
        Retry {
            max_attempts: max_attempts.unwrap_or(6).max(1),
            ..Retry::default()
        }
    }

    /// The wait before attempt `attempt + 1` (exponential with jitter, capped), or the
    /// server's `Retry-After` when it gave one.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(Duration::from_secs(60));
        }
        let exp = self.base.saturating_mul(1u32 << attempt.min(16));
        let capped = exp.min(self.cap);
        let jitter = rand::random::<f64>() * 0.5 + 0.75;
        capped.mul_f64(jitter)
    }

    /// Sends the request `request` builds until `judge` finds an answer final, at most
    /// `max_attempts` times. Transport failures (no answer, or an answer whose body could
    /// not be read) are always transient. `provider` and `path` label the log lines;
    /// `what` (e.g. `GET /v1/keys`) names the request in transport failures.
    pub async fn send<T, E>(
        &self,
        provider: &str,
        path: &str,
        what: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
        mut judge: impl FnMut(StatusCode, Option<Duration>, bytes::Bytes) -> Verdict<T, E>,
    ) -> Result<T, Gave<E>> {
        let judge = |s, ra, _: &HeaderMap, b| judge(s, ra, b);
        self.run(provider, path, what, request, judge, false).await
    }

    /// [`Retry::send`] for a judge that also reads the answer's headers (pagination
    /// links, rate-limit counters).
    pub async fn send_headed<T, E>(
        &self,
        provider: &str,
        path: &str,
        what: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
        judge: impl FnMut(StatusCode, Option<Duration>, &HeaderMap, bytes::Bytes) -> Verdict<T, E>,
    ) -> Result<T, Gave<E>> {
        self.run(provider, path, what, request, judge, false).await
    }

    /// [`Retry::send_change`] for a judge that also reads the answer's headers.
    pub async fn send_change_headed<T, E>(
        &self,
        provider: &str,
        path: &str,
        what: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
        judge: impl FnMut(StatusCode, Option<Duration>, &HeaderMap, bytes::Bytes) -> Verdict<T, E>,
    ) -> Result<T, Gave<E>> {
        self.run(provider, path, what, request, judge, true).await
    }

    /// Like [`Retry::send`], for a change the provider does not make idempotent: sent
    /// again only when it provably was not acted on (the connection could not be made,
    /// or a `429` / `503` refusal). A request that left without an answer, or met any
    /// other transient failure, gives [`Gave::Ambiguous`]: the caller settles it by
    /// reading the provider's state.
    pub async fn send_change<T, E>(
        &self,
        provider: &str,
        path: &str,
        what: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
        mut judge: impl FnMut(StatusCode, Option<Duration>, bytes::Bytes) -> Verdict<T, E>,
    ) -> Result<T, Gave<E>> {
        let judge = |s, ra, _: &HeaderMap, b| judge(s, ra, b);
        self.run(provider, path, what, request, judge, true).await
    }

    async fn run<T, E>(
        &self,
        provider: &str,
        path: &str,
        what: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
        mut judge: impl FnMut(StatusCode, Option<Duration>, &HeaderMap, bytes::Bytes) -> Verdict<T, E>,
        change: bool,
    ) -> Result<T, Gave<E>> {
        let mut last = String::new();
        for attempt in 0..self.max_attempts {
            if attempt > 0 {
                tracing::debug!(%provider, %path, attempt, "retrying: {last}");
            }
            let retry_after = match send_once(request()).await {
                Err(why) => {
                    last = why.describe(what);
                    if change && !why.never_sent() {
                        return Err(Gave::Ambiguous { last });
                    }
                    None
                }
                Ok((status, retry_after, headers, bytes)) => {
                    match judge(status, retry_after, &headers, bytes) {
                        Verdict::Done(v) => return Ok(v),
                        Verdict::Fail(e) => return Err(Gave::Failed(e)),
                        Verdict::Again { why, retry_after } => {
                            last = why;
                            let refused = status == StatusCode::TOO_MANY_REQUESTS
                                || status == StatusCode::SERVICE_UNAVAILABLE;
                            if change && !refused {
                                return Err(Gave::Ambiguous { last });
                            }
                            retry_after
                        }
                    }
                }
            };
            tokio::time::sleep(self.delay(attempt, retry_after)).await;
        }
        Err(Gave::Exhausted {
            last,
            attempts: self.max_attempts,
        })
    }
}

/// Why one attempt of a request got no answer to look at.
enum SendFailure {
    /// No connection could be made: the request never left.
    Connect(String),
    /// The request could not be sent, or was sent without an answer (timeout, dropped
    /// connection).
    Send(String),
    /// The answer's body could not be read.
    Read(String),
}

impl SendFailure {
    /// The failure as a message about `what` (e.g. `GET /v1/keys`).
    fn describe(&self, what: &str) -> String {
        match self {
            SendFailure::Connect(why) | SendFailure::Send(why) => why.clone(),
            SendFailure::Read(why) => format!("reading the answer to {what}: {why}"),
        }
    }
}

impl SendFailure {
    /// True when the provider cannot have seen the request.
    fn never_sent(&self) -> bool {
        matches!(self, SendFailure::Connect(_))
    }
}

/// Sends one attempt of a request and reads its whole answer: status, `Retry-After`
/// (seconds) and body.
async fn send_once(
    req: reqwest::RequestBuilder,
) -> std::result::Result<(StatusCode, Option<Duration>, HeaderMap, bytes::Bytes), SendFailure> {
    let resp = req.send().await.map_err(|e| {
        if e.is_connect() {
            SendFailure::Connect(describe_transport(&e))
        } else {
            SendFailure::Send(describe_transport(&e))
        }
    })?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let headers = resp.headers().clone();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| SendFailure::Read(describe_transport(&e)))?;
    Ok((status, retry_after, headers, bytes))
}

fn describe_transport(e: &reqwest::Error) -> String {
    let mut chain = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        chain.push(inner.to_string());
        src = inner.source();
    }
    if let Some(tls) = chain
        .iter()
        .find(|m| m.contains("certificate") || m.contains("CertificateRequired"))
    {
        return format!(
            "TLS: the server's certificate is not trusted ({tls}); for an internal CA set \
             the provider's `ca_file` (or SSL_CERT_FILE, VAULT_CACERT) to its PEM bundle"
        );
    }
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        "cannot connect (is the provider running and the url right?)".into()
    } else {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            src = inner.source();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let r = Retry::default();
        assert!(r.delay(0, None) <= Duration::from_millis(125));
        assert!(r.delay(10, None) <= Duration::from_millis(12_500));
        assert!(r.delay(3, None) > r.delay(0, None) / 2);
        assert_eq!(
            r.delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }

    /// A loopback server that reads each request and then, per connection, either closes
    /// without an answer or answers `status`; returns its address and a request counter.
    async fn server(status: Option<u16>) -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                if let Some(code) = status {
                    let answer = format!(
                        "HTTP/1.1 {code} X\r\nRetry-After: 0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                    );
                    let _ = sock.write_all(answer.as_bytes()).await;
                }
                drop(sock);
            }
        });
        (format!("http://{addr}/v1/keys"), seen)
    }

    async fn post(url: &str, change: bool) -> Result<(), Gave<()>> {
        let client = reqwest::Client::new();
        let r = Retry {
            max_attempts: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        };
        let judge = |status: StatusCode, retry_after, _b: bytes::Bytes| {
            if status.is_success() {
                Verdict::Done(())
            } else {
                Verdict::Again {
                    why: format!("HTTP {status}"),
                    retry_after,
                }
            }
        };
        let request = || client.post(url).body("{}");
        if change {
            r.send_change("p", "/v1/keys", "POST /v1/keys", request, judge)
                .await
        } else {
            r.send("p", "/v1/keys", "POST /v1/keys", request, judge)
                .await
        }
    }

    #[tokio::test]
    async fn a_change_without_idempotency_is_sent_once_when_its_answer_is_lost() {
        use std::sync::atomic::Ordering;
        for status in [None, Some(500)] {
            let (url, seen) = server(status).await;
            let out = post(&url, true).await;
            assert!(matches!(out, Err(Gave::Ambiguous { .. })), "{status:?}");
            assert_eq!(seen.load(Ordering::SeqCst), 1, "{status:?}: sent once");
            // The same request as an idempotent one is sent again.
            let out = post(&url, false).await;
            assert!(matches!(out, Err(Gave::Exhausted { attempts: 3, .. })));
            assert_eq!(seen.load(Ordering::SeqCst), 4, "{status:?}");
        }
    }

    #[tokio::test]
    async fn a_refusal_before_acting_is_sent_again_even_without_idempotency() {
        use std::sync::atomic::Ordering;
        let (url, seen) = server(Some(503)).await;
        let out = post(&url, true).await;
        assert!(matches!(out, Err(Gave::Exhausted { attempts: 3, .. })));
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        // Nothing listens: the request never left, so it is tried again.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let out = post(&format!("http://127.0.0.1:{port}/v1/keys"), true).await;
        assert!(matches!(out, Err(Gave::Exhausted { attempts: 3, .. })));
    }

    #[test]
    fn configured_attempts_are_at_least_one() {
        assert_eq!(Retry::with_attempts(None).max_attempts, 6);
        assert_eq!(Retry::with_attempts(Some(0)).max_attempts, 1);
        assert_eq!(Retry::with_attempts(Some(3)).max_attempts, 3);
    }
}
