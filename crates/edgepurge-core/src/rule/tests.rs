use super::*;
use crate::event::{Event, Format};
use proptest::prelude::*;

fn spec(name: &str) -> RuleSpec {
    RuleSpec {
        name: name.to_owned(),
        bucket: "assets".to_owned(),
        events: vec!["created".to_owned(), "removed".to_owned()],
        prefix: None,
        suffix: None,
        domains: vec!["https://cdn.example.com".to_owned()],
        provider: "tencent".to_owned(),
        providers: Vec::new(),
        mode: Mode::Url,
        index_document: None,
        strip_prefix: None,
        tags: Vec::new(),
        allow_host_purge: false,
        verify: false,
        warm: false,
        min_interval_ms: 0,
        enabled: true,
    }
}

fn event(name: &str, key: &str) -> Event {
    Event {
        format: Format::Ceph,
        bucket: "assets".to_owned(),
        key: key.to_owned(),
        raw_key: key.to_owned(),
        name: name.to_owned(),
        native_name: name.to_owned(),
        size: None,
        etag: None,
        version_id: None,
        sequencer: None,
        time: None,
        id: None,
    }
}

fn urls(rule: &Rule, key: &str) -> Vec<String> {
    rule.targets_for_key(key)
        .into_iter()
        .map(|t| t.target)
        .collect()
}

#[test]
fn friendly_and_native_event_names_select_the_same_events() {
    let table: &[(&str, &str, bool)] = &[
        ("put", "ObjectCreated:Put", true),
        ("put", "ObjectCreated:Copy", false),
        ("post", "ObjectCreated:Post", true),
        ("copy", "ObjectCreated:Copy", true),
        (
            "complete-multipart-upload",
            "ObjectCreated:CompleteMultipartUpload",
            true,
        ),
        ("delete", "ObjectRemoved:Delete", true),
        ("delete", "ObjectRemoved:DeleteMarkerCreated", false),
        ("delete-marker", "ObjectRemoved:DeleteMarkerCreated", true),
        ("created", "ObjectCreated:Put", true),
        ("created", "ObjectCreated:Origin", true),
        ("created", "ObjectCreated:PutTagging", false),
        ("created", "ObjectRemoved:Delete", false),
        ("removed", "ObjectRemoved:Delete", true),
        ("removed", "LifecycleExpiration:Delete", true),
        ("removed", "ObjectLifecycle:Expiration:Current", true),
        ("removed", "ObjectCreated:Put", false),
        ("s3:ObjectCreated:*", "ObjectCreated:Put", true),
        ("s3:ObjectCreated:*", "ObjectCreated:PutTagging", true),
        ("s3:ObjectCreated:*", "ObjectRemoved:Delete", false),
        ("s3:ObjectCreated:Put", "ObjectCreated:Put", true),
        ("cos:ObjectCreated:Put", "ObjectCreated:Put", true),
        ("cos:ObjectRemove:*", "ObjectRemoved:Delete", true),
        (
            "cos:ObjectRemove:*",
            "ObjectRemoved:DeleteMarkerCreated",
            true,
        ),
        ("ObjectRemoved:Delete", "ObjectRemoved:Delete", true),
        (
            "s3:LifecycleExpiration:*",
            "LifecycleExpiration:Delete",
            true,
        ),
    ];
    for &(selector, name, want) in table {
        let sel = EventSelector::parse(selector).unwrap();
        assert_eq!(sel.matches(name), want, "{selector} vs {name}");
    }
}

#[test]
fn unknown_event_names_are_refused_with_the_choices() {
    for bad in [
        "puts",
        "s3:Object*",
        "s3:ObjectCreated:*:Put",
        "*",
        "s3:Bogus:*",
        "",
    ] {
        let err = EventSelector::parse(bad).unwrap_err();
        assert!(err.contains("use put, post"), "{bad}: {err}");
    }
}

#[test]
fn validation_names_rule_field_and_reason() {
    let cases: Vec<(RuleSpec, &str)> = vec![
        (
            RuleSpec {
                name: "bad name".into(),
                ..spec("x")
            },
            "name",
        ),
        (
            RuleSpec {
                name: "".into(),
                ..spec("x")
            },
            "name",
        ),
        (
            RuleSpec {
                bucket: "".into(),
                ..spec("r")
            },
            "bucket",
        ),
        (
            RuleSpec {
                bucket: "a/b".into(),
                ..spec("r")
            },
            "bucket",
        ),
        (
            RuleSpec {
                events: vec![],
                ..spec("r")
            },
            "events",
        ),
        (
            RuleSpec {
                events: vec!["nope".into()],
                ..spec("r")
            },
            "events",
        ),
        (
            RuleSpec {
                domains: vec![],
                ..spec("r")
            },
            "domains",
        ),
        (
            RuleSpec {
                domains: vec!["cdn.example.com".into()],
                ..spec("r")
            },
            "domains",
        ),
        (
            RuleSpec {
                domains: vec!["ftp://cdn.example.com".into()],
                ..spec("r")
            },
            "domains",
        ),
        (
            RuleSpec {
                domains: vec!["https://*.example.com".into()],
                ..spec("r")
            },
            "domains",
        ),
        (
            RuleSpec {
                domains: vec!["https://u:p@cdn.example.com".into()],
                ..spec("r")
            },
            "domains",
        ),
        (
            RuleSpec {
                domains: vec!["https://cdn.example.com/?x=1".into()],
                ..spec("r")
            },
            "domains",
        ),
        (
            RuleSpec {
                provider: "".into(),
                ..spec("r")
            },
            "provider",
        ),
        (
            RuleSpec {
                index_document: Some("a/index.html".into()),
                ..spec("r")
            },
            "index_document",
        ),
        (
            RuleSpec {
                prefix: Some("img/".into()),
                strip_prefix: Some("css/".into()),
                ..spec("r")
            },
            "strip_prefix",
        ),
    ];
    for (spec, field) in cases {
        let err = spec.clone().validate().unwrap_err();
        assert_eq!(err.field, field, "{spec:?}: {err}");
        assert!(err
            .to_string()
            .starts_with(&format!("rule {:?}: {field}: ", spec.name)));
    }
}

#[test]
fn every_problem_of_a_rule_is_listed_and_validate_names_the_first() {
    let mut s = spec("several");
    s.bucket = "a/b".into();
    s.events = vec!["created".into(), "sometimes".into()];
    s.domains = vec!["cdn.example.com".into(), "https://ok.example.com".into()];
    s.index_document = Some("a/index.html".into());
    let fields: Vec<&str> = s.problems().iter().map(|p| p.field).collect();
    assert_eq!(fields, ["bucket", "events", "domains", "index_document"]);
    assert_eq!(s.clone().validate().unwrap_err().field, "bucket");
    assert!(spec("fine").problems().is_empty());
}

#[test]
fn domains_normalize_to_a_base_without_trailing_slash() {
    let d = Domain::parse("HTTPS://CDN.Example.com:8443/static/").unwrap();
    assert_eq!(d.base(), "https://cdn.example.com:8443/static");
    assert_eq!(
        Domain::parse("http://cdn.example.com/").unwrap().base(),
        "http://cdn.example.com"
    );
    assert_eq!(
        Domain::parse("https://cdn.example.com:443").unwrap().base(),
        "https://cdn.example.com"
    );
}

#[test]
fn matching_checks_enabled_bucket_events_prefix_and_suffix() {
    let rule = RuleSpec {
        prefix: Some("img/".into()),
        suffix: Some(".png".into()),
        events: vec!["put".into()],
        ..spec("r")
    }
    .validate()
    .unwrap();
    assert!(rule.matches(&event("ObjectCreated:Put", "img/a.png")));
    assert!(!rule.matches(&event("ObjectCreated:Put", "css/a.png")));
    assert!(!rule.matches(&event("ObjectCreated:Put", "img/a.jpg")));
    assert!(!rule.matches(&event("ObjectRemoved:Delete", "img/a.png")));
    let mut other_bucket = event("ObjectCreated:Put", "img/a.png");
    other_bucket.bucket = "other".into();
    assert!(!rule.matches(&other_bucket));
    let disabled = RuleSpec {
        enabled: false,
        ..rule.spec.clone()
    }
    .validate()
    .unwrap();
    assert!(!disabled.matches(&event("ObjectCreated:Put", "img/a.png")));
}

#[test]
fn url_mode_purges_each_domain() {
    let rule = RuleSpec {
        domains: vec![
            "https://cdn.example.com".into(),
            "http://static.example.com/base/".into(),
        ],
        ..spec("r")
    }
    .validate()
    .unwrap();
    assert_eq!(
        urls(&rule, "img/猫 1.jpg"),
        vec![
            "https://cdn.example.com/img/%E7%8C%AB%201.jpg",
            "http://static.example.com/base/img/%E7%8C%AB%201.jpg",
        ]
    );
}

#[test]
fn keys_with_dot_segments_purge_nothing() {
    let dir = RuleSpec {
        mode: Mode::Dir,
        prefix: Some("img/".into()),
        ..spec("r")
    }
    .validate()
    .unwrap();
    let url = RuleSpec {
        prefix: Some("img/".into()),
        ..spec("r")
    }
    .validate()
    .unwrap();
    for key in [
        "img/../admin/x.html",
        "img/./a.png",
        "img/..",
        "img/a/../../b.png",
    ] {
        assert!(dir.targets_for_key(key).is_empty(), "{key}");
        assert!(url.targets_for_key(key).is_empty(), "{key}");
    }
    // Dots inside names are fine.
    assert_eq!(
        urls(&url, "img/..a/b..png"),
        vec!["https://cdn.example.com/img/..a/b..png"]
    );
}

#[test]
fn folder_markers_purge_nothing() {
    let rule = spec("r").validate().unwrap();
    assert!(rule.targets_for_key("img/").is_empty());
    assert!(rule.targets_for_key("").is_empty());
}

#[test]
fn dir_mode_purges_the_parent_directory() {
    let rule = RuleSpec {
        mode: Mode::Dir,
        allow_host_purge: true,
        ..spec("r")
    }
    .validate()
    .unwrap();
    let t = rule.targets_for_key("img/icons/a b.png");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].kind, TargetKind::Dir);
    assert_eq!(t[0].target, "https://cdn.example.com/img/icons/");
    assert_eq!(urls(&rule, "top.png"), vec!["https://cdn.example.com/"]);
}

#[test]
fn index_document_also_purges_its_directory() {
    let rule = RuleSpec {
        index_document: Some("index.html".into()),
        ..spec("r")
    }
    .validate()
    .unwrap();
    assert_eq!(
        urls(&rule, "docs/index.html"),
        vec![
            "https://cdn.example.com/docs/index.html",
            "https://cdn.example.com/docs/"
        ]
    );
    assert_eq!(
        urls(&rule, "index.html"),
        vec![
            "https://cdn.example.com/index.html",
            "https://cdn.example.com/"
        ]
    );
    assert_eq!(
        urls(&rule, "docs/other.html"),
        vec!["https://cdn.example.com/docs/other.html"]
    );
}

#[test]
fn strip_prefix_maps_keys_to_the_cdn_origin_path() {
    let rule = RuleSpec {
        strip_prefix: Some("static/".into()),
        prefix: Some("static/".into()),
        ..spec("r")
    }
    .validate()
    .unwrap();
    assert_eq!(
        urls(&rule, "static/css/a.css"),
        vec!["https://cdn.example.com/css/a.css"]
    );
    assert!(urls(&rule, "other/a.css").is_empty());
}

#[test]
fn a_strip_prefix_without_its_slash_is_refused_and_nothing_stripped_climbs_out() {
    // strip_prefix = "static" with key `static../x.png` once purged `<domain>/../` (a
    // whole-host BAN on caches).
    for strip in ["static", "", "static/../", "./"] {
        let e = RuleSpec {
            strip_prefix: Some(strip.into()),
            ..spec("r")
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "strip_prefix", "{strip:?}: {e}");
        assert!(e.to_string().contains("ending in '/'"), "{e}");
    }
    let rule = RuleSpec {
        strip_prefix: Some("static/".into()),
        ..spec("r")
    }
    .validate()
    .unwrap();
    for key in [
        "static../x.png",
        "static/../x.png",
        "static/a/../../x.png",
        "static/",
    ] {
        assert!(urls(&rule, key).is_empty(), "{key}");
    }
    assert_eq!(
        urls(&rule, "static/..x.png"),
        vec!["https://cdn.example.com/..x.png"]
    );
}

#[test]
fn tag_mode_purges_surrogate_keys_rendered_from_the_key() {
    let rule = RuleSpec {
        mode: Mode::Tag,
        tags: vec!["{seg1}".into(), "file-{stem}".into(), "{seg5}".into()],
        ..spec("r")
    }
    .validate()
    .unwrap();
    let t = rule.targets_for_key("img/a b.png");
    assert!(t.iter().all(|t| t.kind == TargetKind::Tag));
    let tags: Vec<&str> = t.iter().map(|t| t.target.as_str()).collect();
    assert_eq!(tags, vec!["img", "file-a%20b"]);
    let no_tags = RuleSpec {
        mode: Mode::Tag,
        ..spec("r")
    }
    .validate()
    .unwrap_err();
    assert_eq!(no_tags.field, "tags");
    let stray = RuleSpec {
        tags: vec!["{seg1}".into()],
        ..spec("r")
    }
    .validate()
    .unwrap_err();
    assert_eq!(stray.field, "tags");
    let bad = RuleSpec {
        mode: Mode::Tag,
        tags: vec!["{nope}".into()],
        ..spec("r")
    }
    .validate()
    .unwrap_err();
    assert!(bad.reason.contains("unknown placeholder"));
}

#[test]
fn plan_returns_every_matching_rule_even_without_targets() {
    let rules = vec![
        spec("a").validate().unwrap(),
        RuleSpec {
            prefix: Some("img/".into()),
            ..spec("b")
        }
        .validate()
        .unwrap(),
        RuleSpec {
            bucket: "other".into(),
            ..spec("c")
        }
        .validate()
        .unwrap(),
    ];
    let m = plan(&rules, &event("ObjectCreated:Put", "img/x.png"));
    assert_eq!(
        m.iter().map(|m| m.rule.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    let folder = plan(&rules, &event("ObjectCreated:Put", "img/"));
    assert_eq!(folder.len(), 2);
    assert!(folder.iter().all(|m| m.targets.is_empty()));
}

#[test]
fn a_rule_with_several_providers_plans_one_match_per_account() {
    let rule = RuleSpec {
        provider: String::new(),
        providers: vec!["tencent".into(), "cloudflare".into()],
        domains: vec![
            "https://cdn.example.com".into(),
            "https://img.example.com".into(),
        ],
        ..spec("both")
    }
    .validate()
    .unwrap();
    let m = plan(
        std::slice::from_ref(&rule),
        &event("ObjectCreated:Put", "img/a b.png"),
    );
    assert_eq!(
        m.iter().map(|m| m.provider.as_str()).collect::<Vec<_>>(),
        vec!["tencent", "cloudflare"]
    );
    for m in &m {
        assert_eq!(m.rule, "both");
        assert_eq!(
            m.targets
                .iter()
                .map(|t| t.target.as_str())
                .collect::<Vec<_>>(),
            vec![
                "https://cdn.example.com/img/a%20b.png",
                "https://img.example.com/img/a%20b.png"
            ]
        );
        assert!(m.targets.iter().all(|t| t.provider == m.provider));
    }
    // Every target of every account, in the order written.
    let all = rule.targets_for_key("img/x.png");
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].provider, "tencent");
    assert_eq!(all[3].provider, "cloudflare");
}

#[test]
fn provider_and_providers_are_exclusive_and_checked() {
    let refused = |s: RuleSpec| s.validate().unwrap_err();
    let none = refused(RuleSpec {
        provider: String::new(),
        ..spec("r")
    });
    assert_eq!(none.field, "provider");
    assert!(none.reason.contains("providers = ["), "{}", none.reason);
    let both = refused(RuleSpec {
        providers: vec!["cloudflare".into()],
        ..spec("r")
    });
    assert_eq!(both.field, "providers");
    assert!(both.reason.contains("not both"), "{}", both.reason);
    let twice = refused(RuleSpec {
        provider: String::new(),
        providers: vec!["a".into(), "b".into(), "a".into()],
        ..spec("r")
    });
    assert_eq!(twice.field, "providers");
    assert!(
        twice.reason.contains("\"a\" is listed twice"),
        "{}",
        twice.reason
    );
    let bad = refused(RuleSpec {
        provider: String::new(),
        providers: vec!["ok".into(), "no/slash".into()],
        ..spec("r")
    });
    assert_eq!(bad.field, "provider");
    assert!(bad.reason.contains("no/slash"), "{}", bad.reason);
    let many = refused(RuleSpec {
        provider: String::new(),
        providers: (0..=MAX_PROVIDERS).map(|i| format!("p{i}")).collect(),
        ..spec("r")
    });
    assert_eq!(many.field, "providers");
    // One account in a list is a valid rule too.
    RuleSpec {
        provider: String::new(),
        providers: vec!["tencent".into()],
        ..spec("r")
    }
    .validate()
    .unwrap();
}

#[test]
fn hard_keys_map_to_urls_on_the_rule_domain_only() {
    let rule = RuleSpec {
        domains: vec!["https://cdn.example.com/base".into()],
        ..spec("r")
    }
    .validate()
    .unwrap();
    for &key in crate::event::tests::HARD_KEYS {
        for t in rule.targets_for_key(key) {
            let parsed = url::Url::parse(&t.target).unwrap();
            assert_eq!(
                parsed.host_str(),
                Some("cdn.example.com"),
                "{key:?} → {}",
                t.target
            );
            assert!(
                parsed.query().is_none() && parsed.fragment().is_none(),
                "{}",
                t.target
            );
            assert!(t.target.starts_with("https://cdn.example.com/base/"));
            assert!(t.target.is_ascii());
        }
    }
}

#[test]
fn spec_round_trips_through_toml_field_names() {
    let text = r#"
        name = "site"
        bucket = "assets-1250000000"
        events = ["created", "cos:ObjectRemove:*"]
        prefix = "img/"
        domains = ["https://cdn.example.com"]
        provider = "tencent"
        mode = "dir"
        index_document = "index.html"
    "#;
    let spec: RuleSpec = serde_json::from_value(toml_like(text)).unwrap();
    assert_eq!(spec.mode, Mode::Dir);
    assert!(spec.enabled);
    spec.validate().unwrap();
}

/// Minimal `key = value` reader for the test above (the core does not depend on `toml`).
fn toml_like(text: &str) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(" = ").unwrap();
        map.insert(k.to_owned(), serde_json::from_str(v).unwrap());
    }
    serde_json::Value::Object(map)
}

proptest! {
    /// Whatever the key, every URL stays on the rule's domain, is ASCII, has no query or
    /// fragment, and decodes back to the key's path.
    #[test]
    fn any_key_stays_on_the_domain_and_round_trips(key in "\\PC{1,40}") {
        let rule = spec("r").validate().unwrap();
        for t in rule.targets_for_key(&key) {
            let parsed = url::Url::parse(&t.target).unwrap();
            prop_assert_eq!(parsed.host_str(), Some("cdn.example.com"));
            prop_assert!(parsed.query().is_none());
            prop_assert!(parsed.fragment().is_none());
            let path = t.target.strip_prefix("https://cdn.example.com/").unwrap();
            let decoded = percent_encoding::percent_decode_str(path).decode_utf8().unwrap();
            prop_assert_eq!(decoded.as_ref(), key.as_str());
        }
    }
}

#[test]
fn why_a_rule_does_not_match_is_said_plainly() {
    let rule = RuleSpec {
        prefix: Some("img/".into()),
        suffix: Some(".png".into()),
        events: vec!["put".into()],
        ..spec("r")
    }
    .validate()
    .unwrap();
    let ok = event("ObjectCreated:Put", "img/a.png");
    assert!(rule.matches(&ok));
    assert_eq!(rule.why_not(&ok), None);
    let why = |e: &Event| rule.why_not(e).unwrap();
    assert!(why(&event("ObjectCreated:Copy", "img/a.png")).contains("is not among"));
    assert!(why(&event("ObjectCreated:Put", "css/a.png")).contains("does not start with \"img/\""));
    assert!(why(&event("ObjectCreated:Put", "img/a.gif")).contains("does not end with \".png\""));
    let other = Event {
        bucket: "other".into(),
        ..ok.clone()
    };
    assert!(why(&other).contains("bucket \"other\" is not the rule's \"assets\""));
    let off = RuleSpec {
        enabled: false,
        ..spec("r")
    }
    .validate()
    .unwrap();
    assert_eq!(off.why_not(&ok).as_deref(), Some("the rule is disabled"));
}

#[test]
fn dir_rules_purge_a_whole_domain_only_when_allowed() {
    let dir = |prefix: Option<&str>, strip: Option<&str>| RuleSpec {
        mode: Mode::Dir,
        prefix: prefix.map(str::to_owned),
        strip_prefix: strip.map(str::to_owned),
        ..spec("r")
    };
    // Keys at the root would purge the whole domain: refused without the opt-in.
    for (prefix, strip) in [
        (None, None),
        (Some("img"), None),
        (Some("static/"), Some("static/")),
        (Some("static/a"), Some("static/")),
        (Some("st"), Some("static/")),
        (Some("/"), None),
        (Some("//img"), None),
        (Some("static//"), Some("static/")),
    ] {
        let e = dir(prefix, strip).validate().unwrap_err();
        assert_eq!(e.field, "allow_host_purge", "{prefix:?} {strip:?}");
        assert!(e.reason.contains("whole domain"), "{}", e.reason);
        let allowed = RuleSpec {
            allow_host_purge: true,
            ..dir(prefix, strip)
        };
        assert!(allowed.validate().is_ok(), "{prefix:?} {strip:?}");
    }
    // A prefix naming a folder never reaches the root.
    for (prefix, strip) in [
        (Some("img/"), None),
        (Some("img/icons"), None),
        (Some("static/img/"), Some("static/")),
    ] {
        assert!(
            dir(prefix, strip).validate().is_ok(),
            "{prefix:?} {strip:?}"
        );
    }
    // A spec that skipped validation still purges no whole domain.
    let unchecked = Rule {
        spec: dir(None, None),
        selectors: vec![EventSelector::Created],
        domains: vec![Domain::parse("https://cdn.example.com").unwrap()],
    };
    assert!(unchecked.targets_for_key("top.png").is_empty());
    assert!(
        unchecked.targets_for_key("/top.png").is_empty(),
        "`//` is the root too"
    );
    assert_eq!(
        urls(&unchecked, "img/top.png"),
        vec!["https://cdn.example.com/img/"]
    );
    // The opt-in is kept in the stored form only when set.
    let json = serde_json::to_string(&spec("r")).unwrap();
    assert!(!json.contains("allow_host_purge"), "{json}");
}

#[test]
fn min_interval_over_a_day_is_refused_with_its_field() {
    let ok = RuleSpec {
        min_interval_ms: MAX_MIN_INTERVAL_MS,
        ..spec("hot")
    };
    assert!(ok.validate().is_ok());
    let e = RuleSpec {
        min_interval_ms: MAX_MIN_INTERVAL_MS + 1,
        ..spec("hot")
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.field, "min_interval_ms");
    assert!(e.reason.contains("one day"), "{}", e.reason);
    // Absent in TOML and JSON means 0, and 0 is not written back.
    let parsed: RuleSpec = serde_json::from_str(
        r#"{"name":"a","bucket":"b","events":["created"],"domains":["https://c"],"provider":"t"}"#,
    )
    .unwrap();
    assert_eq!(parsed.min_interval_ms, 0);
    assert!(!serde_json::to_string(&parsed)
        .unwrap()
        .contains("min_interval"));
}
