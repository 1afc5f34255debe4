//! Event names: every format's spelling normalized to the S3 one, without vendor prefix.

/// Normalizes a native event name: drops the `s3:` / `cos:` / `oss:` prefix and spells COS's
/// `ObjectRemove` as `ObjectRemoved`.
///
/// `s3:ObjectCreated:Put` → `ObjectCreated:Put`; `cos:ObjectRemove:Delete` →
/// `ObjectRemoved:Delete`; `ObjectCreated:Put` stays.
pub fn normalize(native: &str) -> String {
    let trimmed = native.trim();
    let unprefixed = ["s3:", "cos:", "oss:", "ceph:"]
        .iter()
        .find_map(|p| strip_prefix_ci(trimmed, p))
        .unwrap_or(trimmed);
    match unprefixed.split_once(':') {
        Some(("ObjectRemove", rest)) => format!("ObjectRemoved:{rest}"),
        _ if unprefixed == "ObjectRemove" => "ObjectRemoved".to_owned(),
        _ => unprefixed.to_owned(),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // `get` (not indexing): the name may hold multi-byte characters at any position.
    match s.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => s.get(prefix.len()..),
        _ => None,
    }
}

/// Event names under `ObjectCreated` that change only metadata (MinIO), not the content a
/// cache holds. The `created` group leaves them out; a native `s3:ObjectCreated:*` selects them.
pub const METADATA_ONLY_CREATED: &[&str] = &[
    "ObjectCreated:PutRetention",
    "ObjectCreated:PutLegalHold",
    "ObjectCreated:PutTagging",
    "ObjectCreated:DeleteTagging",
];

/// Event-name categories a rule may name natively (after [`normalize`]).
pub const KNOWN_CATEGORIES: &[&str] = &[
    "ObjectCreated",
    "ObjectRemoved",
    "ObjectRestore",
    "LifecycleExpiration",
    "LifecycleTransition",
    "ObjectLifecycle",
    "ObjectSynced",
    "ObjectTagging",
    "ObjectAcl",
    "ObjectTransition",
    "IntelligentTiering",
    "Replication",
];

/// Whether a normalized name is a removal: explicit deletes, delete markers, and lifecycle
/// expirations (the object is gone either way).
pub fn is_removal(name: &str) -> bool {
    name.starts_with("ObjectRemoved:")
        || name == "ObjectRemoved"
        || name.starts_with("LifecycleExpiration:")
        || name.starts_with("ObjectLifecycle:Expiration:")
}

/// Whether a normalized name creates or overwrites content.
pub fn is_creation(name: &str) -> bool {
    (name.starts_with("ObjectCreated:") || name == "ObjectCreated")
        && !METADATA_ONLY_CREATED.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_prefixes_and_cos_spelling_normalize() {
        assert_eq!(normalize("s3:ObjectCreated:Put"), "ObjectCreated:Put");
        assert_eq!(normalize("ObjectCreated:Put"), "ObjectCreated:Put");
        assert_eq!(normalize("cos:ObjectRemove:Delete"), "ObjectRemoved:Delete");
        assert_eq!(normalize("cos:ObjectRemove:*"), "ObjectRemoved:*");
        assert_eq!(
            normalize("cos:ObjectCreated:CompleteMultipartUpload"),
            "ObjectCreated:CompleteMultipartUpload"
        );
    }

    #[test]
    fn non_ascii_event_names_do_not_panic() {
        assert_eq!(normalize("ééé"), "ééé");
        assert_eq!(normalize("s3é"), "s3é");
        assert_eq!(normalize("猫:ObjectCreated"), "猫:ObjectCreated");
    }

    #[test]
    fn lifecycle_expiration_is_a_removal_and_tagging_is_not_a_creation() {
        assert!(is_removal("LifecycleExpiration:Delete"));
        assert!(is_removal("ObjectLifecycle:Expiration:Current"));
        assert!(!is_creation("ObjectCreated:PutTagging"));
        assert!(is_creation("ObjectCreated:Origin"));
    }
}
