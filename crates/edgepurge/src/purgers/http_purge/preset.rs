//! Cache software with known purge conventions, and the limits a node lane starts from.

use crate::limits::KindLimits;
use crate::purgers::Limits;
use edgepurge_core::TargetKind;

/// Cache software with known purge conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// `return(purge)` answers 200 whether or not the object was cached; BAN and xkey
    /// PURGEKEY need the VCL shown in docs/providers/http-purge.md.
    Varnish,
    /// 200 purged, 404 not cached.
    Squid,
    /// 200 purged, 404 not cached.
    Trafficserver,
    /// 200 purged; 404 or 412 not cached (ngx_cache_purge); 204 (NGINX Plus).
    Nginx,
    /// Nothing preset: set `purge_method`, `ok_status`, and the dir/tag methods yourself.
    Custom,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Methods {
    pub purge_method: String,
    /// Answers that mean "purged" or "was not cached".
    pub ok_status: Vec<u16>,
    /// Directory purges: method, and the header carrying the path regex (`None`: wildcard
    /// style, the method is sent to `<dir>*`).
    pub dir: Option<(String, Option<String>)>,
    /// Tag purges: method and the header carrying space-separated tags.
    pub tag: Option<(String, String)>,
}

impl Preset {
    pub fn methods(self) -> Methods {
        let purge = "PURGE".to_owned();
        match self {
            Preset::Varnish => Methods {
                purge_method: purge,
                ok_status: vec![200],
                dir: Some(("BAN".into(), Some("X-Ban-Url".into()))),
                tag: Some(("PURGEKEY".into(), "xkey-purge".into())),
            },
            Preset::Squid | Preset::Trafficserver => Methods {
                purge_method: purge,
                ok_status: vec![200, 404],
                dir: None,
                tag: None,
            },
            Preset::Nginx => Methods {
                purge_method: purge,
                ok_status: vec![200, 204, 404, 412],
                dir: None,
                tag: None,
            },
            Preset::Custom => Methods {
                purge_method: purge,
                ok_status: vec![200],
                dir: None,
                tag: None,
            },
        }
    }
}

/// Default limits for a node lane.
pub fn default_limits(methods: &Methods) -> Limits {
    let mut kinds = vec![(
        TargetKind::Url,
        KindLimits {
            max_batch: 100,
            daily_quota: None,
        },
    )];
    if methods.dir.is_some() {
        kinds.push((
            TargetKind::Dir,
            KindLimits {
                max_batch: 20,
                daily_quota: None,
            },
        ));
    }
    if methods.tag.is_some() {
        kinds.push((
            TargetKind::Tag,
            KindLimits {
                max_batch: 100,
                daily_quota: None,
            },
        ));
    }
    Limits {
        kinds,
        rate_per_s: 50.0,
        concurrency: 2,
        quota_utc_offset_s: 0,
        collapse_to_dir_over: None,
    }
}
