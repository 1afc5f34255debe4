//! Event names: every format's spelling normalized to the S3 one, without vendor prefix.

/// Normalizes a native event name: drops the `s3:` / `cos:` / `oss:` prefix, spells COS's
/// `ObjectRemove` as `ObjectRemoved`, and OSS's operation names as S3 names them (see
/// `oss_spelling`).
///
/// `s3:ObjectCreated:Put` → `ObjectCreated:Put`; `cos:ObjectRemove:Delete` →
/// `ObjectRemoved:Delete`; `oss:ObjectCreated:PutObject` → `ObjectCreated:Put`;
/// `ObjectCreated:Put` stays.
///
/// Rules' native event names go through this too, so a rule written with OSS's own names
/// (`oss:ObjectRemoved:DeleteObject`) matches the OSS events it means.
pub fn normalize(native: &str) -> String {
    let trimmed = native.trim();
    let unprefixed = ["s3:", "cos:", "oss:", "ceph:"]
        .iter()
        .find_map(|p| strip_prefix_ci(trimmed, p))
        .unwrap_or(trimmed);
    if let Some(s3) = oss_spelling(unprefixed) {
        return s3.to_owned();
    }
    match unprefixed.split_once(':') {
        Some(("ObjectRemove", rest)) => format!("ObjectRemoved:{rest}"),
        _ if unprefixed == "ObjectRemove" => "ObjectRemoved".to_owned(),
        _ => unprefixed.to_owned(),
    }
}

/// OSS names an event by its API operation (`ObjectCreated:PutObject`, events sent without
/// the `oss:` of the trigger configuration): the S3 name of the same change, where S3 has
/// one. No other sender uses these spellings. OSS-only operations keep their name
/// (`ObjectCreated:AppendObject`, `ObjectCreated:PutSymlink`, the multipart steps).
fn oss_spelling(name: &str) -> Option<&'static str> {
    Some(match name {
        "ObjectCreated:PutObject" => "ObjectCreated:Put",
        "ObjectCreated:PostObject" => "ObjectCreated:Post",
        "ObjectCreated:CopyObject" => "ObjectCreated:Copy",
        // One event per deleted object, for DeleteObject and DeleteObjects alike.
        "ObjectRemoved:DeleteObject" | "ObjectRemoved:DeleteObjects" => "ObjectRemoved:Delete",
        // Cross-region replication writing into this bucket (COS calls it
        // `cos:ObjectCreated:Replication`): the content here changed all the same.
        "ObjectReplication:ObjectCreated" | "ObjectReplication:ObjectModified" => {
            "ObjectCreated:Replication"
        }
        "ObjectReplication:ObjectRemoved" => "ObjectRemoved:Replication",
        "ObjectModified:UpdateObjectMeta" => METADATA_UPDATE,
        _ => return None,
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // `get` (not indexing): the name may hold multi-byte characters at any position.
    match s.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => s.get(prefix.len()..),
        _ => None,
    }
}

/// A change to an object's metadata only: Cloud Storage `OBJECT_METADATA_UPDATE`, OSS
/// `ObjectModified:UpdateObjectMeta`. One of [`METADATA_ONLY_CREATED`].
pub const METADATA_UPDATE: &str = "ObjectCreated:MetadataUpdate";

/// Event names under `ObjectCreated` that change only metadata (MinIO, Cloud Storage, OSS),
/// not the content a cache holds. The `created` group leaves them out; a native
/// `s3:ObjectCreated:*` selects them, and so does their own name.
pub const METADATA_ONLY_CREATED: &[&str] = &[
    "ObjectCreated:PutRetention",
    "ObjectCreated:PutLegalHold",
    "ObjectCreated:PutTagging",
    "ObjectCreated:DeleteTagging",
    METADATA_UPDATE,
];

/// Event names under `ObjectCreated` for a multipart upload still under way (OSS): the object
/// is neither created nor changed until `ObjectCreated:CompleteMultipartUpload`, so the
/// `created` group leaves them out (a purge now would only fetch the old content again).
pub const UPLOAD_IN_PROGRESS: &[&str] = &[
    "ObjectCreated:InitiateMultipartUpload",
    "ObjectCreated:UploadPart",
    "ObjectCreated:UploadPartCopy",
];

/// Event names under `ObjectRemoved` that remove nothing a cache holds: an aborted multipart
/// upload (OSS) never became an object. The `removed` group leaves them out.
pub const NOTHING_REMOVED: &[&str] = &["ObjectRemoved:AbortMultipartUpload"];

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
    (name.starts_with("ObjectRemoved:")
        || name == "ObjectRemoved"
        || name.starts_with("LifecycleExpiration:")
        || name.starts_with("ObjectLifecycle:Expiration:"))
        && !NOTHING_REMOVED.contains(&name)
}

/// Whether a normalized name creates or overwrites content.
pub fn is_creation(name: &str) -> bool {
    (name.starts_with("ObjectCreated:") || name == "ObjectCreated")
        && !METADATA_ONLY_CREATED.contains(&name)
        && !UPLOAD_IN_PROGRESS.contains(&name)
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
    fn oss_operation_names_take_the_s3_spelling_with_or_without_prefix() {
        for (oss, s3) in [
            ("ObjectCreated:PutObject", "ObjectCreated:Put"),
            ("oss:ObjectCreated:PutObject", "ObjectCreated:Put"),
            ("ObjectCreated:PostObject", "ObjectCreated:Post"),
            ("ObjectCreated:CopyObject", "ObjectCreated:Copy"),
            (
                "ObjectCreated:CompleteMultipartUpload",
                "ObjectCreated:CompleteMultipartUpload",
            ),
            ("oss:ObjectRemoved:DeleteObject", "ObjectRemoved:Delete"),
            ("ObjectRemoved:DeleteObjects", "ObjectRemoved:Delete"),
            ("ObjectModified:UpdateObjectMeta", METADATA_UPDATE),
            (
                "ObjectReplication:ObjectCreated",
                "ObjectCreated:Replication",
            ),
            (
                "ObjectReplication:ObjectRemoved",
                "ObjectRemoved:Replication",
            ),
            // OSS-only operations keep their names; wildcards stay wildcards.
            ("ObjectCreated:AppendObject", "ObjectCreated:AppendObject"),
            ("oss:ObjectCreated:*", "ObjectCreated:*"),
        ] {
            assert_eq!(normalize(oss), s3, "{oss}");
        }
    }

    #[test]
    fn unfinished_uploads_metadata_and_aborts_neither_create_nor_remove() {
        assert!(is_creation("ObjectCreated:AppendObject"));
        assert!(is_creation("ObjectCreated:PutSymlink"));
        assert!(is_creation("ObjectCreated:Replication"));
        for name in [
            "ObjectCreated:InitiateMultipartUpload",
            "ObjectCreated:UploadPart",
            "ObjectCreated:UploadPartCopy",
            METADATA_UPDATE,
        ] {
            assert!(!is_creation(name), "{name}");
            assert!(!is_removal(name), "{name}");
        }
        assert!(!is_removal("ObjectRemoved:AbortMultipartUpload"));
        assert!(is_removal("ObjectRemoved:Replication"));
    }

    #[test]
    fn lifecycle_expiration_is_a_removal_and_tagging_is_not_a_creation() {
        assert!(is_removal("LifecycleExpiration:Delete"));
        assert!(is_removal("ObjectLifecycle:Expiration:Current"));
        assert!(!is_creation("ObjectCreated:PutTagging"));
        assert!(is_creation("ObjectCreated:Origin"));
    }
}
