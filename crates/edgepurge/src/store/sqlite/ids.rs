//! How lists of ids and stored names are written and read back.

use crate::queue::BatchState;
use crate::store::*;

/// `[1,2,3]`: how id lists are stored (JSON, so SQL can read them with `json_each`).
pub(super) fn ids_json(ids: &[i64]) -> String {
    let mut s = String::with_capacity(2 + ids.len() * 8);
    s.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&id.to_string());
    }
    s.push(']');
    s
}

pub(super) fn parse_ids(text: &str) -> StoreResult<Vec<i64>> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| StoreError::Corrupt(format!("id list {text:?}")))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse()
                .map_err(|_| StoreError::Corrupt(format!("id list {text:?}")))
        })
        .collect()
}

pub(super) fn parse_kind(s: &str) -> StoreResult<TargetKind> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("target kind: {e}")))
}

pub(super) fn parse_state(s: &str) -> StoreResult<BatchState> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("batch: {e}")))
}

pub(super) fn parse_status(s: &str) -> StoreResult<Status> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("status: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_round_trip_and_bad_ones_are_corrupt() {
        assert_eq!(ids_json(&[]), "[]");
        assert_eq!(ids_json(&[1, 22, 333]), "[1,22,333]");
        assert_eq!(parse_ids("[1,22,333]").unwrap(), vec![1, 22, 333]);
        assert_eq!(parse_ids("[ 4 , 5 ]").unwrap(), vec![4, 5]);
        assert_eq!(parse_ids("[]").unwrap(), Vec::<i64>::new());
        assert!(matches!(parse_ids("1,2"), Err(StoreError::Corrupt(_))));
        assert!(matches!(parse_ids("[1,x]"), Err(StoreError::Corrupt(_))));
    }
}
