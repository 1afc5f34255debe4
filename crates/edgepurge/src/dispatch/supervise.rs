//! Keeps a lane running: a lane whose task panics (a bug) is reported and started again,
//! under a new owner id so that the batches it left in flight are resent, after a pause that
//! grows while it keeps crashing.

use super::lane::Lane;
use super::LaneState;
use std::time::Duration;

/// First pause before a crashed lane starts again; doubled per crash in a row.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(30);
/// A lane that ran this long before crashing starts again after the first pause.
const STABLE: Duration = Duration::from_secs(60);

/// Runs `lane` until shutdown, starting it again whenever it panics.
pub(super) async fn run(lane: Lane) {
    let base_owner = lane.owner.clone();
    let name = lane.purger.lane().to_owned();
    let mut pause = FIRST_PAUSE;
    let mut restarts: u64 = 0;
    loop {
        let mut incarnation = lane.clone();
        if restarts > 0 {
            incarnation.owner = format!("{base_owner}/r{restarts}");
        }
        let owner = incarnation.owner.clone();
        let started = tokio::time::Instant::now();
        let crash = match tokio::spawn(incarnation.run()).await {
            Ok(()) => return,
            Err(e) if e.is_panic() => panic_message(e.into_panic()),
            // Cancelled: the runtime is shutting down.
            Err(_) => return,
        };
        if started.elapsed() >= STABLE {
            pause = FIRST_PAUSE;
        }
        restarts += 1;
        let at = lane.clock.now_ms() + i64::try_from(pause.as_millis()).unwrap_or(i64::MAX);
        tracing::error!(
            lane = %name,
            restarts,
            panic = %crash,
            "lane crashed (a bug: please report it with this line); starting it again in {:?}",
            pause
        );
        if let Ok(mut s) = lane.status.lock() {
            s.restarts = restarts;
            s.last_error = Some(format!("lane crashed and was restarted: {crash}"));
            s.state = LaneState::Restarting { at };
        }
        // Give the lane up so the next incarnation takes it with a new fencing token (and
        // resends what the crashed one left in flight). If this fails the lease lapses.
        if let Err(e) = lane.store.release_lane(&name, &owner).await {
            tracing::warn!(lane = %name, error = %e, "could not release the crashed lane's lease");
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = lane.shutdown.cancelled() => {
                if let Ok(mut s) = lane.status.lock() {
                    s.state = LaneState::Stopped;
                }
                return;
            }
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Keeps a task beside the lanes (a verifier) running: one that panics (a bug) is reported
/// and started again, after a pause that grows while it keeps crashing. Returns when the
/// task ends by itself or at shutdown.
pub(super) async fn keep_running<F, Fut>(
    what: String,
    shutdown: tokio_util::sync::CancellationToken,
    start: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut pause = FIRST_PAUSE;
    loop {
        let started = tokio::time::Instant::now();
        let crash = match tokio::spawn(start()).await {
            Ok(()) => return,
            Err(e) if e.is_panic() => panic_message(e.into_panic()),
            Err(_) => return,
        };
        if started.elapsed() >= STABLE {
            pause = FIRST_PAUSE;
        }
        tracing::error!(
            task = %what,
            panic = %crash,
            "{what} crashed (a bug: please report it with this line); starting it again in {:?}",
            pause
        );
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = shutdown.cancelled() => return,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// The text a panic was raised with.
pub(super) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(other) => match other.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "(no message)".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_started_again_after_a_growing_pause() {
        let starts = Arc::new(AtomicU32::new(0));
        let t0 = tokio::time::Instant::now();
        let counted = Arc::clone(&starts);
        keep_running(
            "test task".into(),
            tokio_util::sync::CancellationToken::new(),
            move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        panic!("crash {n}");
                    }
                }
            },
        )
        .await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        // Paused 1 s, then 2 s.
        assert_eq!(t0.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_pause() {
        let stop = tokio_util::sync::CancellationToken::new();
        let stopper = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                stop.cancel();
            })
        };
        keep_running("test task".into(), stop, || async { panic!("always") }).await;
        let _ = stopper.await;
    }
}
