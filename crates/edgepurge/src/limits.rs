//! Per-kind request limits, shared by the purgers (which know them) and the store (which
//! forms batches within them).

/// What one provider request of one target kind may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindLimits {
    /// Most targets in one provider request.
    pub max_batch: usize,
    /// Daily quota, `None` when the provider has none (or the local check is off).
    pub daily_quota: Option<u64>,
}
