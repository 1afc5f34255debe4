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
