//! A loopback HTTP/1.1 proxy that loses answers: it forwards every request to a real
//! server (OpenBao, moto), reads the whole answer, and for the requests `lose` picks
//! closes the client's connection without sending it (the server has applied the
//! change; the client never learns its outcome). One connection per request: both sides
//! are told `Connection: close`, so no answer is ever left on a reused connection.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Which requests lose their answer: given the request head (request line and headers)
/// and body.
pub type Lose = fn(head: &str, body: &[u8]) -> bool;

pub struct LossyProxy {
    pub port: u16,
    lost: Arc<AtomicUsize>,
    /// Answers still to lose (the first N matching requests).
    budget: Arc<AtomicUsize>,
}

impl LossyProxy {
    /// Starts a proxy to `backend` (`host:port`) that loses the answers of the first
    /// `times` requests `lose` picks.
    pub fn start(backend: &str, lose: Lose, times: usize) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let lost = Arc::new(AtomicUsize::new(0));
        let budget = Arc::new(AtomicUsize::new(times));
        let backend = backend.to_string();
        let (l, b) = (lost.clone(), budget.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let (backend, l, b) = (backend.clone(), l.clone(), b.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, &backend, lose, &l, &b);
                });
            }
        });
        LossyProxy { port, lost, budget }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many answers were lost so far.
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

/// Reads a head (up to the blank line) and returns it without the blank line.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(if head.is_empty() { None } else { Some(head) });
        }
        if line == "\r\n" || line == "\n" {
            return Ok(Some(head));
        }
        head.push_str(&line);
    }
}

/// The head with its `Connection` headers replaced by `Connection: close`.
fn closing(head: &str) -> String {
    let mut out: String = head
        .split_inclusive('\n')
        .filter(|l| {
            !l.to_ascii_lowercase().starts_with("connection:")
                && !l.to_ascii_lowercase().starts_with("keep-alive:")
        })
        .collect();
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn serve(
    client: TcpStream,
    backend: &str,
    lose: Lose,
    lost: &AtomicUsize,
    budget: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    assert!(
        header(&head, "transfer-encoding").is_none(),
        "the proxy forwards requests with a Content-Length only: {head}"
    );
    let len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let mut up = TcpStream::connect(backend)?;
    up.write_all(closing(&head).as_bytes())?;
    up.write_all(&body)?;
    // The server closes after its answer (Connection: close): read it whole, so the
    // change is applied before the client's connection is dropped.
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    let picked = lose(&head, &body)
        && budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let mut client = client;
    if picked {
        lost.fetch_add(1, Ordering::SeqCst);
        return client.shutdown(Shutdown::Both);
    }
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(answer.len());
    let answer_head = String::from_utf8_lossy(&answer[..split]);
    let answer_head = answer_head.trim_end_matches("\r\n\r\n").to_string() + "\r\n";
    client.write_all(closing(&answer_head).as_bytes())?;
    client.write_all(&answer[split..])?;
    client.flush()?;
    client.shutdown(Shutdown::Both)
}
