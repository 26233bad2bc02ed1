//! Live announcements from the team store: one connection per workstation that
//! `LISTEN`s on channel `keyaudit` (the tables' triggers announce every decision, claim,
//! release and journal entry there) and that carries the workstation's presence in its
//! application name (`decisions::presence_name`). It checks every [`PING`] that the
//! server still answers, says when it is lost, and reconnects by itself with a growing
//! pause (at most [`MAX_PAUSE`]).

use super::{decisions, detail, TeamStore};
use crate::store::shared::SharedError;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// How often the connection checks the server answers (and members are re-read).
pub const PING: Duration = Duration::from_secs(3);

/// The longest pause between two attempts to reconnect.
pub const MAX_PAUSE: Duration = Duration::from_secs(5);

/// What the team store says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Connected, first or again: anything may have changed meanwhile.
    Online,
    /// The connection failed or was lost (why); reconnecting.
    Offline(String),
    /// A table changed (`decisions`, `claims`, `journal`), or `presence`: a member came,
    /// or the periodic check found the server answering (members may have gone).
    Changed(String),
}

impl TeamStore {
    /// Starts listening; signals arrive on the receiver until it is dropped.
    pub fn watch(self: &Arc<Self>) -> UnboundedReceiver<Signal> {
        let (tx, rx) = unbounded_channel();
        tokio::spawn(watch(self.clone(), tx));
        rx
    }
}

async fn watch(store: Arc<TeamStore>, tx: UnboundedSender<Signal>) {
    let mut pause = Duration::from_millis(250);
    loop {
        let (was_online, why) = listen(&store, &tx).await;
        // The workstation names the store itself.
        let why = match why {
            SharedError::Team { message, .. } => message,
            other => other.to_string(),
        };
        if tx.is_closed() || tx.send(Signal::Offline(why)).is_err() {
            return;
        }
        if was_online {
            pause = Duration::from_millis(250);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One connection's life: connects, listens and forwards until it fails (or nobody
/// listens any more). Returns whether it got online, and why it ended.
async fn listen(store: &TeamStore, tx: &UnboundedSender<Signal>) -> (bool, SharedError) {
    // The schema first: a new database gets its tables (and triggers) before anyone
    // listens for them.
    if let Err(e) = store.pool().await {
        return (false, e);
    }
    let (mut pg, tls) = match store.pg_config() {
        Ok(c) => c,
        Err(e) => return (false, e),
    };
    pg.application_name(decisions::presence_name());
    let (ntx, mut nrx) = unbounded_channel::<Result<String, String>>();
    let connected = match tls {
        Some(tls) => pg
            .connect(tls)
            .await
            .map(|(client, conn)| (client, tokio::spawn(drive(conn, ntx)))),
        None => pg
            .connect(tokio_postgres::NoTls)
            .await
            .map(|(client, conn)| (client, tokio::spawn(drive(conn, ntx)))),
    };
    let (client, driver) = match connected {
        Ok(c) => c,
        Err(e) => return (false, store.fail(format!("cannot connect: {}", detail(&e)))),
    };
    let _stop = AbortOnDrop(driver);
    if let Err(e) = client
        .batch_execute("LISTEN keyaudit; NOTIFY keyaudit, 'presence'")
        .await
    {
        return (false, store.db_fail("listening for changes", &e));
    }
    if tx.send(Signal::Online).is_err() {
        return (true, store.fail("closed"));
    }
    let mut ping = tokio::time::interval(PING);
    ping.reset();
    loop {
        let signal = tokio::select! {
            n = nrx.recv() => match n {
                Some(Ok(payload)) => Signal::Changed(payload),
                Some(Err(why)) => return (true, store.fail(why)),
                None => return (true, store.fail("the connection closed")),
            },
            _ = ping.tick() => {
                match tokio::time::timeout(PING, client.simple_query("SELECT 1")).await {
                    Ok(Ok(_)) => Signal::Changed("presence".into()),
                    Ok(Err(e)) => return (true, store.db_fail("checking the server", &e)),
                    Err(_) => {
                        return (
                            true,
                            store.fail(format!("the server did not answer within {} s", PING.as_secs())),
                        )
                    }
                }
            }
        };
        if tx.send(signal).is_err() {
            return (true, store.fail("closed"));
        }
    }
}

/// Drives the connection, forwarding each notification's payload, and the error that
/// ends it.
async fn drive<S, T>(
    mut conn: tokio_postgres::Connection<S, T>,
    tx: UnboundedSender<Result<String, String>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let msg = std::future::poll_fn(|cx| conn.poll_message(cx)).await;
        let forward = match msg {
            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => Ok(n.payload().to_string()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => Err(detail(&e)),
            None => Err("the server closed the connection".to_string()),
        };
        let last = forward.is_err();
        if tx.send(forward).is_err() || last {
            return;
        }
    }
}

/// Stops the connection's task when the listener ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
