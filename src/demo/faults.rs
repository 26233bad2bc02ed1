//! Fault injection: answering a share of requests badly, repeatably.
//!
//! A [`FaultSpec`] (`KIND=RATE,...`) says how often each [`FaultKind`] happens. Decisions
//! come from a seeded RNG, so the same sequence of requests meets the same faults. A
//! `drop` fault needs to close the connection without an answer; for that every accepted
//! connection is wrapped in a [`KillableStream`] whose switch the handler can flip through
//! the [`Peer`] connect info: hyper's next write fails and it closes the socket.
//!
//! Read faults (`latency` to `drop`) touch GET requests and happen before anything is
//! done. Change faults (`lost-answer`, `500-after`) touch POST requests that changed
//! something, after the change is applied: the provider acted, the client does not
//! learn of it. An answer repeated for an `Idempotency-Key` changed nothing and is
//! never faulted.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// One way of answering badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Adds 200 ms before the answer.
    Latency,
    /// `429 Too Many Requests` with `Retry-After: 1`.
    TooManyRequests,
    /// `500 Internal Server Error`.
    Internal,
    /// `503 Service Unavailable` with `Retry-After: 1`.
    Unavailable,
    /// A `200` whose JSON body is cut short.
    Truncate,
    /// The connection is closed without an answer.
    Drop,
    /// A POST is applied, then the connection is closed without an answer.
    LostAnswer,
    /// A POST is applied, then answered `500 Internal Server Error`.
    InternalAfter,
}

impl FaultKind {
    /// Every kind, in the order the spec names them.
    pub const ALL: &'static [FaultKind] = &[
        FaultKind::Latency,
        FaultKind::TooManyRequests,
        FaultKind::Internal,
        FaultKind::Unavailable,
        FaultKind::Truncate,
        FaultKind::Drop,
        FaultKind::LostAnswer,
        FaultKind::InternalAfter,
    ];

    /// The word used in a spec and in `?fault=`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Latency => "latency",
            FaultKind::TooManyRequests => "429",
            FaultKind::Internal => "500",
            FaultKind::Unavailable => "503",
            FaultKind::Truncate => "truncate",
            FaultKind::Drop => "drop",
            FaultKind::LostAnswer => "lost-answer",
            FaultKind::InternalAfter => "500-after",
        }
    }

    /// True for the kinds that hit changes (POST requests, after applying them).
    pub fn after_change(self) -> bool {
        matches!(self, FaultKind::LostAnswer | FaultKind::InternalAfter)
    }

    /// Every kind word, comma-separated (for messages).
    pub fn words() -> String {
        FaultKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses a kind word.
    pub fn parse(word: &str) -> Option<FaultKind> {
        FaultKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == word.trim())
    }
}

/// How often each fault happens: `(kind, rate)` with rates in 0..=1 adding up to at most 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    /// The faults in spec order.
    pub rules: Vec<(FaultKind, f64)>,
}

impl FaultSpec {
    /// The fault for a uniform draw `u` in `[0, 1)`, if any.
    pub fn pick(&self, u: f64) -> Option<FaultKind> {
        self.pick_where(u, |_| true)
    }

    /// The fault for a uniform draw `u` among the kinds `applies` accepts (the read
    /// kinds for a GET, the change kinds for a POST), if any.
    pub fn pick_where(&self, u: f64, applies: impl Fn(FaultKind) -> bool) -> Option<FaultKind> {
        let mut acc = 0.0;
        for &(kind, rate) in self.rules.iter().filter(|(k, _)| applies(*k)) {
            acc += rate;
            if u < acc {
                return Some(kind);
            }
        }
        None
    }
}

/// Parses a spec such as `latency=0.1,429=0.05,drop=0.01`. An empty spec means no faults.
pub fn parse_faults(spec: &str) -> Result<FaultSpec, String> {
    let kinds = FaultKind::words();
    let mut rules: Vec<(FaultKind, f64)> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((word, rate)) = item.split_once('=') else {
            return Err(format!(
                "fault `{item}`: expected KIND=RATE, e.g. `500=0.1`"
            ));
        };
        let kind = FaultKind::parse(word).ok_or_else(|| {
            format!(
                "fault `{item}`: unknown kind `{}`; expected one of: {kinds}",
                word.trim()
            )
        })?;
        let rate: f64 = rate
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| (0.0..=1.0).contains(r))
            .ok_or_else(|| {
                format!(
                    "fault `{item}`: rate `{}` is not a number from 0 to 1",
                    rate.trim()
                )
            })?;
        if rules.iter().any(|(k, _)| *k == kind) {
            return Err(format!(
                "fault `{item}`: `{}` is given twice",
                kind.as_str()
            ));
        }
        rules.push((kind, rate));
    }
    // GET and POST requests draw separately, so each group's rates add up to at most 1.
    for change in [false, true] {
        let total: f64 = rules
            .iter()
            .filter(|(k, _)| k.after_change() == change)
            .map(|(_, r)| r)
            .sum();
        if total > 1.0 + 1e-9 {
            let group = if change {
                "change (POST)"
            } else {
                "read (GET)"
            };
            return Err(format!(
                "faults `{spec}`: the {group} fault rates add up to {total}, more than 1"
            ));
        }
    }
    Ok(FaultSpec { rules })
}

/// The connect info of a request: the client address and the switch that drops the
/// connection.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    kill: Arc<AtomicBool>,
}

impl Peer {
    /// Makes the connection fail on its next write, so hyper closes it unanswered.
    pub fn drop_connection(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }
}

/// A TCP stream whose writes fail once its [`Peer`] asked for a drop.
pub(crate) struct KillableStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl KillableStream {
    fn check(&self) -> io::Result<()> {
        if self.kill.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fault injection: drop",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A loopback listener handing out [`KillableStream`]s.
pub(crate) struct DemoListener(pub TcpListener);

impl axum::serve::Listener for DemoListener {
    type Io = KillableStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let kill = Arc::new(AtomicBool::new(false));
                    let io = KillableStream {
                        inner: stream,
                        kill: kill.clone(),
                    };
                    return (io, Peer { addr, kill });
                }
                Err(e) => {
                    tracing::debug!("demo: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.0.local_addr()?,
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, DemoListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, DemoListener>) -> Self {
        stream.remote_addr().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_errors_name_the_bad_item() {
        let s = parse_faults("latency=0.1, 429=0.05,drop=0.01").unwrap();
        assert_eq!(s.rules.len(), 3);
        assert_eq!(s.pick(0.05), Some(FaultKind::Latency));
        assert_eq!(s.pick(0.12), Some(FaultKind::TooManyRequests));
        assert_eq!(s.pick(0.155), Some(FaultKind::Drop));
        assert_eq!(s.pick(0.5), None);
        assert!(parse_faults("").unwrap().rules.is_empty());
        let e = parse_faults("500=0.1,teapot=0.2").unwrap_err();
        assert!(
            e.contains("`teapot=0.2`") && e.contains("latency, 429, 500, 503, truncate, drop"),
            "{e}"
        );
        let e = parse_faults("500=lots").unwrap_err();
        assert!(e.contains("`500=lots`") && e.contains("from 0 to 1"), "{e}");
        assert!(parse_faults("503").unwrap_err().contains("KIND=RATE"));
        assert!(parse_faults("503=1.5").is_err());
        assert!(parse_faults("503=0.6,500=0.6")
            .unwrap_err()
            .contains("more than 1"));
        let s = parse_faults("500=0.5,lost-answer=0.3,500-after=0.2").unwrap();
        let post = |u| s.pick_where(u, FaultKind::after_change);
        assert_eq!(post(0.1), Some(FaultKind::LostAnswer));
        assert_eq!(post(0.4), Some(FaultKind::InternalAfter));
        assert_eq!(post(0.6), None);
        let get = |u| s.pick_where(u, |k| !k.after_change());
        assert_eq!(get(0.4), Some(FaultKind::Internal));
        assert_eq!(get(0.6), None);
        assert!(parse_faults("503=0.1,503=0.2")
            .unwrap_err()
            .contains("twice"));
    }
}
