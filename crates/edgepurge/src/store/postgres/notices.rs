//! Wake-ups across nodes with `LISTEN` / `NOTIFY`: a transaction that queues work announces
//! each lane it touched (delivered at commit, so a listener never hears of uncommitted
//! work); every node listens on one connection of its own and passes what other nodes
//! announce to its idle lanes. Lost announcements (during a reconnect) only delay work until
//! the lane's next poll.

use super::sql;
use super::tx::Tx;
use crate::store::{StoreResult, WorkNotice};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;

pub(super) const CHANNEL: &str = "edgepurge_work";

/// Announces work on `lanes` (`(lane, jobs)`) at this transaction's commit, from `instance`.
pub(super) async fn announce(
    t: &Tx<'_>,
    instance: &str,
    lanes: &[(String, u64)],
) -> StoreResult<()> {
    if lanes.is_empty() {
        return Ok(());
    }
    let payloads: Vec<String> = lanes
        .iter()
        .map(|(lane, jobs)| format!("{instance} {jobs} {lane}"))
        .collect();
    t.execute(sql::NOTIFY_WORK, &[&CHANNEL, &payloads], "announce work")
        .await
        .map(drop)
}

/// `instance jobs lane`, unless it came from `own`.
fn parse(payload: &str, own: &str) -> Option<WorkNotice> {
    let mut parts = payload.splitn(3, ' ');
    let (from, jobs, lane) = (parts.next()?, parts.next()?, parts.next()?);
    (from != own).then(|| WorkNotice {
        lane: lane.to_owned(),
        jobs: jobs.parse().unwrap_or(1),
    })
}

/// Listens until nobody receives any more, reconnecting after failures.
pub(super) async fn listen(
    cfg: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    shown: Arc<str>,
    own: Arc<str>,
    out: broadcast::Sender<WorkNotice>,
) {
    let mut backoff = Duration::from_millis(250);
    while out.receiver_count() > 0 {
        let result = match &tls {
            Some(tls) => session(&cfg, tls.clone(), &own, &out).await,
            None => session(&cfg, tokio_postgres::NoTls, &own, &out).await,
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(store = %shown, error = %e, "work announcements: listening again in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One connection's worth of listening; `Ok` when nobody listens any more.
async fn session<T>(
    cfg: &tokio_postgres::Config,
    tls: T,
    own: &str,
    out: &broadcast::Sender<WorkNotice>,
) -> Result<(), String>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = cfg
        .connect(tls)
        .await
        .map_err(|e| super::tx::describe(&e))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(super::tx::describe(&e)),
                None => return Err("the connection closed".to_owned()),
            }
        }
    });
    let listening = client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| super::tx::describe(&e));
    if let Err(e) = listening {
        driver.abort();
        return Err(e);
    }
    loop {
        tokio::select! {
            payload = rx.recv() => {
                let Some(payload) = payload else { break };
                if let Some(n) = parse(&payload, own) {
                    // No receiver left: the node is stopping.
                    if out.send(n).is_err() {
                        driver.abort();
                        return Ok(());
                    }
                }
            }
            // Nobody listens any more (checked now and then; a quiet store sends nothing).
            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                if out.receiver_count() == 0 {
                    driver.abort();
                    return Ok(());
                }
            }
        }
    }
    match driver.await {
        Ok(Err(e)) => Err(e),
        _ => Err("the connection closed".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_name_the_lane_and_skip_our_own() {
        assert_eq!(
            parse("n1 3 tencent:acct a", "n2"),
            Some(WorkNotice {
                lane: "tencent:acct a".into(),
                jobs: 3
            })
        );
        assert_eq!(parse("n2 3 lane", "n2"), None);
        assert_eq!(parse("garbage", "n2"), None);
    }
}
