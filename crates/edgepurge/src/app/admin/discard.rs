//! Work no provider account serves any more (its account removed from the config or renamed):
//! found, and moved to the dead letters on request (`edgepurge discard`, `POST /v1/discard`),
//! through the [`Store`] trait only, so every backend behaves alike.

use super::{Admin, AdminError, AdminResult};
use crate::limits::KindLimits;
use crate::purgers::Providers;
use crate::queue::{Claim, ClaimRequest, Finish, FinishOutcome};
use crate::store::{FanoutDepth, LaneDepth, Ms, Store, StoreError, StoreResult};
use edgepurge_core::TargetKind;
use std::sync::Arc;

/// How long a discard holds a lane (renewed before each batch, released when done).
const LEASE_MS: i64 = 60_000;
/// Targets per dead batch a discard makes.
const BATCH: usize = 1000;

/// What to discard: one lane, or everything a removed provider account left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscardTarget {
    Lane(String),
    Provider(String),
}

/// What a discard did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Discarded {
    /// The lanes whose work was moved (at least one batch each).
    pub lanes: Vec<String>,
    /// Batches moved to the dead letters, and the targets in them.
    pub batches: u64,
    pub targets: u64,
    /// Dead batches the lanes held before (dead letters already, left as they are).
    pub dead_before: u64,
    /// Targets of the account stored once for its nodes and never fanned out to them: left
    /// where they are (they go to the nodes the account has when it is back).
    pub fanout_left: u64,
    /// Work left because it waits for a quota day or a rule's `min_interval_ms`: discard
    /// again after this time.
    pub waiting_until: Option<Ms>,
}

impl Admin {
    /// Whether a provider account of the config serves `lane` (`None`: no config file at
    /// hand, so it cannot be told).
    pub fn serves(&self, lane: &str) -> Option<bool> {
        let providers = self.providers.as_ref()?;
        Some(serving_account(providers, lane).is_some())
    }

    /// Whether provider account `name` is in the config (`None`: no config file at hand).
    pub fn has_account(&self, name: &str) -> Option<bool> {
        Some(self.providers.as_ref()?.contains_key(name))
    }

    /// Lanes holding work (pending, waiting or in flight) that no provider account of the
    /// config serves: nothing will ever send it. Empty without a config at hand.
    pub async fn unserved_lanes(&self) -> AdminResult<Vec<LaneDepth>> {
        let (Some(providers), Some(store)) = (&self.providers, &self.store) else {
            return Ok(Vec::new());
        };
        Ok(store
            .depths()
            .await?
            .into_iter()
            .filter(LaneDepth::has_live_work)
            .filter(|d| serving_account(providers, &d.lane).is_none())
            .collect())
    }

    /// Accounts not in the config with targets stored once for their nodes and never fanned
    /// out to them (an `http-purge` account of several nodes, removed). Empty without a config.
    pub async fn unserved_fanout(&self) -> AdminResult<Vec<FanoutDepth>> {
        let (Some(providers), Some(store)) = (&self.providers, &self.store) else {
            return Ok(Vec::new());
        };
        Ok(store
            .fanout_depths()
            .await?
            .into_iter()
            .filter(|f| f.targets > 0 && !providers.contains_key(&f.account))
            .collect())
    }

    /// Moves queued work that no provider account of the config serves to the dead letters:
    /// its log records show `dead` with the reason, and `edgepurge retry` queues them again
    /// once the account is back. One lane (an account's, or a removed node's of an account
    /// still configured), or every lane of a removed account with queued work. Targets a
    /// removed `http-purge` account never fanned out to its nodes stay queued
    /// (`fanout_left`): they go to the nodes the account has if it comes back. What waits for
    /// a quota day or a rule's `min_interval_ms` is left and said (`waiting_until`); a lane
    /// another process holds is refused.
    pub async fn discard(&self, target: &DiscardTarget) -> AdminResult<Discarded> {
        let Some(providers) = &self.providers else {
            return Err(AdminError::Conflict(
                "discard needs the config file (--config or EDGEPURGE_CONFIG) to tell which \
                 lanes its provider accounts serve"
                    .to_owned(),
            ));
        };
        let store = self.store()?;
        match target {
            DiscardTarget::Lane(lane) => {
                check_name(lane, "lane")?;
                if let Some(account) = serving_account(providers, lane) {
                    return Err(AdminError::Conflict(format!(
                        "lane {lane:?} is served by provider account {account:?} of the config: \
                         its work is being purged (only a lane no account serves any more can be \
                         discarded)"
                    )));
                }
                let depths = store.depths().await?;
                let Some(depth) = depths.iter().find(|d| d.lane == *lane && d.has_live_work())
                else {
                    return Err(nothing_to_discard(
                        &format!("lane {lane:?}"),
                        lane,
                        &depths,
                        providers,
                    ));
                };
                let mut out = Discarded {
                    dead_before: depth.dead_batches,
                    ..Discarded::default()
                };
                self.discard_lane(store, lane, &mut out).await?;
                Ok(out)
            }
            DiscardTarget::Provider(account) => {
                check_name(account, "provider")?;
                if providers.contains_key(account) {
                    return Err(AdminError::Conflict(format!(
                        "provider account {account:?} is in the config: its work is being purged \
                         (only an account removed from the config can be discarded)"
                    )));
                }
                let depths = store.depths().await?;
                let lanes: Vec<String> = depths
                    .iter()
                    .filter(|d| lane_account(&d.lane) == account && d.has_live_work())
                    .map(|d| d.lane.clone())
                    .collect();
                let fanout_left = store
                    .fanout_depths()
                    .await?
                    .into_iter()
                    .find(|f| f.account == *account)
                    .map_or(0, |f| f.targets);
                if lanes.is_empty() {
                    if fanout_left > 0 {
                        return Err(AdminError::NotFound(fanout_stays(account, fanout_left)));
                    }
                    return Err(nothing_to_discard(
                        &format!("provider account {account:?}"),
                        account,
                        &depths,
                        providers,
                    ));
                }
                let mut out = Discarded {
                    dead_before: depths
                        .iter()
                        .filter(|d| lane_account(&d.lane) == account)
                        .map(|d| d.dead_batches)
                        .sum(),
                    fanout_left,
                    ..Discarded::default()
                };
                for lane in &lanes {
                    self.discard_lane(store, lane, &mut out).await?;
                }
                Ok(out)
            }
        }
    }

    /// One lane, under its lease (refused while another process holds it).
    async fn discard_lane(
        &self,
        store: &Arc<dyn Store>,
        lane: &str,
        out: &mut Discarded,
    ) -> AdminResult<()> {
        // Unique: two discards never share (and release) one lease.
        let owner = format!("discard:{}:{}", std::process::id(), uuid::Uuid::new_v4());
        let Some(lease) = store.acquire_lane(lane, &owner, LEASE_MS).await? else {
            return Err(AdminError::Conflict(format!(
                "lane {lane:?} is held by another process (a node whose config still serves \
                 it?): stop it or remove the account from its config, then discard again{}",
                moved_so_far(out)
            )));
        };
        let result = self
            .empty_lane(store.as_ref(), lane, &owner, lease.token, out)
            .await;
        let _ = store.release_lane(lane, &owner).await;
        match result {
            Ok(()) => Ok(()),
            Err(StoreError::LeaseLost { why, .. }) => Err(AdminError::Conflict(format!(
                "lane {lane:?} was taken by another process while its work was being discarded \
                 ({why}){}",
                moved_so_far(out)
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn empty_lane(
        &self,
        store: &dyn Store,
        lane: &str,
        owner: &str,
        token: i64,
        out: &mut Discarded,
    ) -> StoreResult<()> {
        // Batches waiting after a failure are due now.
        store.release_held(lane, self.clock.now_ms()).await?;
        let limits = KindLimits {
            max_batch: BATCH,
            daily_quota: None,
        };
        loop {
            // Renewed before each batch: a large lane may take longer than one lease.
            if store
                .acquire_lane(lane, owner, LEASE_MS)
                .await?
                .is_none_or(|l| l.token != token)
            {
                return Err(StoreError::LeaseLost {
                    lane: lane.to_owned(),
                    why: "its lease went to another holder".to_owned(),
                });
            }
            let now = self.clock.now_ms();
            let claim = store
                .claim(ClaimRequest {
                    lane: lane.to_owned(),
                    owner: owner.to_owned(),
                    token,
                    now,
                    linger_ms: 0,
                    kinds: [TargetKind::Url, TargetKind::Dir, TargetKind::Tag]
                        .into_iter()
                        .map(|k| (k, limits))
                        .collect(),
                    quota_day: 0,
                    quota_reset_at: 0,
                    collapse_to_dir_over: None,
                    // An account's fan-out targets stay where they are: they go to the nodes
                    // the account has when it is back.
                    fanout: None,
                })
                .await?;
            let batch = match claim {
                Claim::Batch(b) => b,
                Claim::Wait { until, .. } => {
                    out.waiting_until = Some(out.waiting_until.map_or(until, |t| t.max(until)));
                    return Ok(());
                }
                Claim::Idle => return Ok(()),
            };
            store
                .finish(Finish {
                    batch_id: batch.id,
                    token,
                    started_at: now,
                    now,
                    outcome: FinishOutcome::Dead,
                    http_status: None,
                    request_id: None,
                    task_id: None,
                    error: Some(format!(
                        "not sent: discarded (`edgepurge discard`): no provider account of the \
                         config serves lane {lane:?}; `edgepurge retry` queues it again once \
                         the account is back"
                    )),
                    detached: Vec::new(),
                    follow_task_at: None,
                })
                .await?;
            out.batches += 1;
            out.targets += batch.targets.len() as u64;
            if !out.lanes.iter().any(|l| l == lane) {
                out.lanes.push(lane.to_owned());
            }
        }
    }
}

/// Why an account's fan-out targets are not discarded, and what happens to them.
pub fn fanout_stays(account: &str, targets: u64) -> String {
    format!(
        "provider account {account:?} has no queued work in its nodes' lanes; its {targets} \
         target(s) never fanned out to its nodes stay queued (they are not discarded: they go \
         to the nodes the account has if it comes back under that name)"
    )
}

/// The account a lane belongs to by its name (`ACCOUNT` or `ACCOUNT@NODE`).
fn lane_account(lane: &str) -> &str {
    lane.split_once('@').map_or(lane, |(account, _)| account)
}

/// The refusal for a lane or account without queued work: what is there instead.
fn nothing_to_discard(
    what: &str,
    name: &str,
    depths: &[LaneDepth],
    providers: &Providers,
) -> AdminError {
    let dead: u64 = depths
        .iter()
        .filter(|d| d.lane == name || lane_account(&d.lane) == name)
        .map(|d| d.dead_batches)
        .sum();
    let unserved: Vec<&str> = depths
        .iter()
        .filter(|d| d.has_live_work() && serving_account(providers, &d.lane).is_none())
        .map(|d| d.lane.as_str())
        .collect();
    // A name the store knows needs no suggestion.
    let known = depths
        .iter()
        .any(|d| d.lane == name || lane_account(&d.lane) == name);
    let suggest = if known {
        String::new()
    } else {
        let mut names: Vec<&str> = unserved.clone();
        names.extend(unserved.iter().map(|l| lane_account(l)));
        crate::rules::did_you_mean(name, names.into_iter())
    };
    AdminError::NotFound(format!(
        "{what} holds no queued work{}{} (lanes no account serves: {})",
        if dead > 0 {
            format!(" (its {dead} dead batch(es) are dead letters already)")
        } else {
            String::new()
        },
        suggest,
        if unserved.is_empty() {
            "none".to_owned()
        } else {
            unserved.join(", ")
        }
    ))
}

fn moved_so_far(out: &Discarded) -> String {
    if out.batches == 0 {
        return String::new();
    }
    format!(
        "; {} target(s) in {} batch(es) were moved to the dead letters before (see `edgepurge \
         status`)",
        out.targets, out.batches
    )
}

/// A lane or account name as the config makes them (`ACCOUNT` or `ACCOUNT@NODE`): printable
/// ASCII without spaces, at most 300 bytes; anything else is refused before any lookup.
fn check_name(name: &str, what: &str) -> AdminResult<()> {
    if name.is_empty() || name.len() > 300 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AdminError::NotFound(format!(
            "{:?} is not a {what} name (see `edgepurge status` for the lanes and accounts)",
            crate::purgers::snippet(name, 80)
        )));
    }
    Ok(())
}

/// The account of the config whose lanes include `lane`.
fn serving_account<'a>(providers: &'a Providers, lane: &str) -> Option<&'a str> {
    providers
        .iter()
        .find(|(_, p)| p.lanes().iter().any(|l| l == lane))
        .map(|(name, _)| name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_belongs_to_the_account_before_its_at_sign() {
        assert_eq!(lane_account("tencent"), "tencent");
        assert_eq!(lane_account("edge@10.0.0.1:6081"), "edge");
        assert_eq!(lane_account("edge@[::1]:80"), "edge");
    }

    #[test]
    fn names_that_no_config_makes_are_refused_printably() {
        assert!(check_name("edge@10.0.0.1:6081", "lane").is_ok());
        for bad in ["", "a b", "a\u{1b}[31m", &"x".repeat(301)] {
            let e = check_name(bad, "lane").unwrap_err().to_string();
            assert!(e.contains("is not a lane name"), "{e}");
            assert!(!e.contains('\u{1b}'), "{e}");
        }
    }
}
