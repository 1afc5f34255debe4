//! Lane leases: one process at a time sends for a lane. Decided on the store's clock (so the
//! processes' own clocks may disagree), with a fencing token that grows at every hand-over:
//! a batch carries the token it was claimed with, and an answer under an older token cannot
//! change it.

use super::Ms;

/// The lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// Empty when released.
    pub owner: String,
    pub until: Ms,
    pub token: i64,
}

/// A lease held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub token: i64,
    /// Store time at which it lapses unless renewed.
    pub until: Ms,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// The caller holds it already: extend it, same token.
    Renew(Lease),
    /// The caller takes it (first use, released, or lapsed): new token; batches left in
    /// flight under older tokens are to be resent.
    Take(Lease),
    /// Another owner holds it until `until`.
    Refuse { holder: String, until: Ms },
}

/// Decides a lease request by `owner` at store time `now`.
pub fn decide(current: Option<&LeaseRow>, owner: &str, now: Ms, ttl_ms: i64) -> LeaseDecision {
    let until = now.saturating_add(ttl_ms.max(1));
    match current {
        None => LeaseDecision::Take(Lease { token: 1, until }),
        Some(row) if row.owner == owner => LeaseDecision::Renew(Lease {
            token: row.token,
            until,
        }),
        Some(row) if !row.owner.is_empty() && row.until >= now => LeaseDecision::Refuse {
            holder: row.owner.clone(),
            until: row.until,
        },
        Some(row) => LeaseDecision::Take(Lease {
            token: row.token.saturating_add(1),
            until,
        }),
    }
}

/// Whether `owner` with `token` holds the lease at store time `now`.
pub fn holds(current: Option<&LeaseRow>, owner: &str, token: i64, now: Ms) -> bool {
    current.is_some_and(|r| r.owner == owner && r.token == token && r.until >= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(owner: &str, until: Ms, token: i64) -> LeaseRow {
        LeaseRow {
            owner: owner.into(),
            until,
            token,
        }
    }

    #[test]
    fn a_held_lease_excludes_others_until_it_lapses() {
        assert_eq!(
            decide(None, "A", 0, 100),
            LeaseDecision::Take(Lease {
                token: 1,
                until: 100
            })
        );
        let a = row("A", 100, 1);
        assert!(matches!(
            decide(Some(&a), "B", 100, 100),
            LeaseDecision::Refuse { .. }
        ));
        assert_eq!(
            decide(Some(&a), "B", 101, 100),
            LeaseDecision::Take(Lease {
                token: 2,
                until: 201
            })
        );
        assert_eq!(
            decide(Some(&a), "A", 150, 100),
            LeaseDecision::Renew(Lease {
                token: 1,
                until: 250
            })
        );
    }

    #[test]
    fn a_released_lease_is_taken_at_once_with_a_new_token() {
        let released = row("", 0, 7);
        assert_eq!(
            decide(Some(&released), "B", 5, 10),
            LeaseDecision::Take(Lease {
                token: 8,
                until: 15
            })
        );
    }

    #[test]
    fn holding_needs_the_owner_the_token_and_time() {
        let a = row("A", 100, 4);
        assert!(holds(Some(&a), "A", 4, 100));
        assert!(!holds(Some(&a), "A", 3, 50));
        assert!(!holds(Some(&a), "B", 4, 50));
        assert!(!holds(Some(&a), "A", 4, 101));
        assert!(!holds(None, "A", 4, 0));
    }
}
