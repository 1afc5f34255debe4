//! Lanes woken by work other processes queue (a shared store's announcements), so an idle
//! lane sends at once instead of at its next poll.

use crate::store::WorkNotice;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

/// What wakes one lane: its notifier and its count of jobs announced.
pub(super) type Wakers = BTreeMap<String, (Arc<Notify>, Arc<AtomicU64>)>;

pub(super) async fn run(
    mut notices: broadcast::Receiver<WorkNotice>,
    lanes: Wakers,
    shutdown: CancellationToken,
) {
    loop {
        let notice = tokio::select! {
            n = notices.recv() => n,
            _ = shutdown.cancelled() => return,
        };
        match notice {
            Ok(n) => {
                if let Some((notify, added)) = lanes.get(&n.lane) {
                    added.fetch_add(n.jobs.max(1), Ordering::SeqCst);
                    notify.notify_one();
                }
            }
            // Too many at once: wake every lane (each asks the store what there is).
            Err(broadcast::error::RecvError::Lagged(_)) => {
                for (notify, added) in lanes.values() {
                    added.fetch_add(u64::from(u32::MAX), Ordering::SeqCst);
                    notify.notify_one();
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
