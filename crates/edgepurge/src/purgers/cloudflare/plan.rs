//! Cloudflare's purge limits per plan (apis.md §C: developers.cloudflare.com/cache/how-to/
//! purge-cache, "Availability and limits"). They are per account, counted in token buckets:
//! one for single-file (URL) purges, in URLs per second, and one for tag, hostname, prefix and
//! purge-everything requests, in requests. `invalidate_cache` draws from the same buckets
//! (apis.md §J.2).

use serde::Deserialize;

/// The zone's plan, which sets the defaults and the most each setting may be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    #[default]
    Free,
    Pro,
    Business,
    Enterprise,
}

/// Most items in one request of any kind but URLs, on every plan.
pub const MAX_ITEMS_PER_REQUEST: usize = 100;

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Business => "business",
            Plan::Enterprise => "enterprise",
        }
    }

    /// Most URLs in one single-file purge request.
    pub fn max_urls_per_request(self) -> usize {
        match self {
            Plan::Enterprise => 500,
            _ => 100,
        }
    }

    /// The single-file purge rate, in URLs per second (a moving average).
    pub fn urls_per_second(self) -> usize {
        match self {
            Plan::Free => 800,
            Plan::Pro | Plan::Business => 1500,
            Plan::Enterprise => 3000,
        }
    }

    /// The tag / hostname / prefix / everything bucket's refill, in requests per minute.
    pub fn tag_prefix_requests_per_minute(self) -> u32 {
        match self {
            Plan::Free => 5,
            Plan::Pro => 5 * 60,
            Plan::Business => 10 * 60,
            Plan::Enterprise => 50 * 60,
        }
    }

    /// That bucket's size (a burst this large may go at once when it is full).
    pub fn tag_prefix_bucket(self) -> u32 {
        match self {
            Plan::Free | Plan::Pro => 25,
            Plan::Business => 50,
            Plan::Enterprise => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_table() {
        let row = |p: Plan| {
            (
                p.max_urls_per_request(),
                p.urls_per_second(),
                p.tag_prefix_requests_per_minute(),
                p.tag_prefix_bucket(),
            )
        };
        assert_eq!(row(Plan::Free), (100, 800, 5, 25));
        assert_eq!(row(Plan::Pro), (100, 1500, 300, 25));
        assert_eq!(row(Plan::Business), (100, 1500, 600, 50));
        assert_eq!(row(Plan::Enterprise), (500, 3000, 3000, 500));
        assert_eq!(Plan::default(), Plan::Free);
    }
}
