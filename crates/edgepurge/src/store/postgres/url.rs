//! PostgreSQL URLs: which select this backend, and how they are shown (never with their
//! password).

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `url` with its password (and any `password=` parameter) replaced by `***`, for logs and
/// errors. Text that does not parse as a URL is not shown at all.
pub fn mask_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url.trim()) else {
        return "(a PostgreSQL URL that does not parse)".to_owned();
    };
    if parsed.password().is_some() {
        // Cannot fail on a URL that has a host (it has a password, so it has one).
        let _ = parsed.set_password(Some("***"));
    }
    let query: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let secret =
                k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
            (
                k.into_owned(),
                if secret {
                    "***".to_owned()
                } else {
                    v.into_owned()
                },
            )
        })
        .collect();
    if !query.is_empty() {
        parsed.query_pairs_mut().clear().extend_pairs(query);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            mask_url("postgres://app:s3cr%40t@db.internal:5432/edgepurge"),
            "postgres://app:***@db.internal:5432/edgepurge"
        );
        assert_eq!(
            mask_url("postgresql://db/edgepurge?user=app&password=hunter2&sslmode=require"),
            "postgresql://db/edgepurge?user=app&password=***&sslmode=require"
        );
        assert_eq!(mask_url("postgres://db/x"), "postgres://db/x");
        let garbled = mask_url("postgres://app:pw@[::1/x");
        assert!(!garbled.contains("pw"), "{garbled}");
    }

    #[test]
    fn only_postgres_schemes_select_the_backend() {
        assert!(is_postgres_url("postgres://h/d"));
        assert!(is_postgres_url("PostgreSQL://h/d"));
        assert!(!is_postgres_url("/var/lib/edgepurge/edgepurge.db"));
        assert!(!is_postgres_url("mysql://h/d"));
    }
}
