use super::*;
use crate::purgers::http_purge::HttpPurgeSettings;
use crate::purgers::tencent::TencentSettings;
use edgepurge_core::TargetKind;

/// The checked settings of a provider account of a known type.
fn settings<T: Clone + 'static>(cfg: &Config, name: &str) -> T {
    let any: &dyn std::any::Any = cfg.providers[name].as_any();
    any.downcast_ref::<T>()
        .unwrap_or_else(|| panic!("provider {name} has another kind"))
        .clone()
}

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../edgepurge.example.toml"
    ))
    .unwrap()
}

#[test]
fn the_annotated_example_is_valid() {
    let cfg = parse(&example()).unwrap().validate().unwrap();
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:8470");
    assert_eq!(cfg.rules.len(), 1);
    let t: TencentSettings = settings(&cfg, "tencent");
    assert_eq!(t.limits.kind(TargetKind::Url).unwrap().max_batch, 1000);
    assert_eq!(t.limits.rate_per_s, 20.0);
    assert_eq!(cfg.dispatch.linger_ms, 200);
    assert_eq!(cfg.dispatch.retry.max_attempts, 12);
}

#[test]
fn an_empty_config_gives_the_documented_defaults() {
    let cfg = RawConfig::default().validate().unwrap();
    assert_eq!(cfg.server.listen.to_string(), DEFAULT_LISTEN);
    assert!(cfg.server.listen.ip().is_loopback());
    assert_eq!(cfg.store.path, PathBuf::from("edgepurge.db"));
    assert_eq!(cfg.server.max_body_bytes, 10 * 1024 * 1024);
    assert!(cfg.server.webhook_token.is_none());
    assert!(cfg.providers.is_empty() && cfg.rules.is_empty());
}

#[test]
fn unknown_keys_are_refused() {
    let err = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n").unwrap_err();
    assert!(err.contains("unknown field `lisen`"), "{err}");
    // Provider sections are checked by their kind, with the section named.
    let err = parse("[providers.x]\nkind = \"tencent-cdn\"\nsecret_key = \"inline!\"\n")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("providers.x: unknown field `secret_key`"),
        "{err}"
    );
    let err = parse("[providers.x]\nkind = \"akamai-ish\"\n")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "providers.x.kind: unknown provider kind \"akamai-ish\"; use tencent-cdn, http-purge"
        ),
        "{err}"
    );
    let err = parse("[providers.x]\npreset = \"varnish\"\n")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("providers.x.kind: required"), "{err}");
}

#[test]
fn every_problem_is_reported_with_its_place() {
    let text = r#"
        [server]
        listen = "nowhere"
        webhook_token_env = "A"
        webhook_token_file = "/b"
        [dispatch]
        max_attempts = 0
        [providers.tencent]
        kind = "tencent-cdn"
        endpoint = "http://cdn.tencentcloudapi.com"
        area = "moon"
        rate_per_s = 50
        max_urls_per_request = 5000
        [[rules]]
        name = "a"
        bucket = "b"
        events = ["created"]
        domains = ["https://cdn.example.com"]
        provider = "missing"
        [[rules]]
        name = "a"
        bucket = "b"
        events = ["created"]
        domains = ["https://cdn.example.com"]
        provider = "tencent"
        [[rules]]
        name = "bad"
        bucket = "b"
        events = ["sometimes"]
        domains = ["https://cdn.example.com"]
        provider = "tencent"
    "#;
    let err = parse(text).unwrap().validate().unwrap_err();
    let all = err.to_string();
    for want in [
        "server.listen: \"nowhere\" is not IP:PORT",
        "server: set either webhook_token_env or webhook_token_file, not both",
        "dispatch.max_attempts: must be at least 1",
        "providers.tencent.endpoint: \"http://cdn.tencentcloudapi.com\": plain http",
        "providers.tencent.area: \"moon\"",
        "providers.tencent.rate_per_s: must be from 0.001 to 20 requests per second",
        "providers.tencent.max_urls_per_request: must be 1 to 1000",
        "rules[0]: rule \"a\": provider \"missing\" is not defined; add [providers.missing]",
        "rules[1]: rule name \"a\" is used twice",
        "rules[2]: rule \"bad\": events: unknown event type \"sometimes\"",
        // Every problem of a rule, not only its first.
        "rules[2]: rule \"bad\": provider \"tencent\" has problems (listed above)",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert_eq!(err.problems.len(), 11, "{all}");
}

#[test]
fn loopback_http_endpoints_are_allowed_for_tests() {
    let text = "[providers.t]\nkind = \"tencent-cdn\"\nendpoint = \"http://127.0.0.1:9\"\n";
    let cfg = parse(text).unwrap().validate().unwrap();
    let t: TencentSettings = settings(&cfg, "t");
    assert_eq!(t.endpoint.as_str(), "http://127.0.0.1:9/");
    assert_eq!(
        t.secret_id,
        SecretSource::Env("TENCENTCLOUD_SECRETID".into())
    );
    assert_eq!(cfg.providers["t"].lanes(), vec!["t".to_owned()]);
}

#[test]
fn load_names_the_file_in_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[dispatch]\npoll_ms = 0\n").unwrap();
    let err = load(&path).unwrap_err();
    assert!(err
        .to_string()
        .starts_with(&format!("{}: dispatch.poll_ms", path.display())));
    let err = load(&dir.path().join("missing.toml")).unwrap_err();
    assert!(err.to_string().contains("cannot read config"));
}

#[test]
fn http_purge_presets_nodes_and_overrides() {
    let text = r#"
        [providers.edge]
        kind = "http-purge"
        preset = "varnish"
        nodes = ["127.0.0.1:6081", "http://10.0.0.2:6081"]
        [providers.squids]
        kind = "http-purge"
        preset = "squid"
        nodes = ["127.0.0.1:3128"]
        ok_status = [200, 404, 410]
        [providers.ngx]
        kind = "http-purge"
        preset = "nginx"
        nodes = ["127.0.0.1:8080"]
        dir_method = "PURGE"
        [[rules]]
        name = "dirs"
        bucket = "b"
        events = ["created"]
        domains = ["https://cdn.example.com"]
        provider = "edge"
        mode = "dir"
        prefix = "docs/"
    "#;
    let cfg = parse(text).unwrap().validate().unwrap();
    assert_eq!(
        cfg.providers["edge"].lanes(),
        vec!["edge@127.0.0.1:6081", "edge@10.0.0.2:6081"]
    );
    assert!(cfg.providers["edge"].supports(TargetKind::Dir));
    assert!(cfg.providers["edge"].supports(TargetKind::Tag));
    assert!(!cfg.providers["squids"].supports(TargetKind::Dir));
    let s: HttpPurgeSettings = settings(&cfg, "squids");
    assert_eq!(s.methods.ok_status, vec![200, 404, 410]);
    let n: HttpPurgeSettings = settings(&cfg, "ngx");
    assert_eq!(
        n.methods.dir,
        Some(("PURGE".to_owned(), None)),
        "wildcard-style dir purge"
    );
}

#[test]
fn rules_must_fit_what_their_provider_can_purge() {
    let text = r#"
        [providers.sq]
        kind = "http-purge"
        preset = "squid"
        nodes = ["127.0.0.1:3128", "127.0.0.1:3128"]
        [providers.bad]
        kind = "http-purge"
        nodes = ["/just/a/path"]
        [[rules]]
        name = "dirs"
        bucket = "b"
        events = ["created"]
        domains = ["https://cdn.example.com"]
        provider = "sq"
        mode = "dir"
        prefix = "docs/"
    "#;
    let err = parse(text).unwrap().validate().unwrap_err().to_string();
    for want in [
        "providers.sq.nodes: \"127.0.0.1:3128\" is listed twice",
        "providers.bad.preset: required",
        "rules[0]: rule \"dirs\": provider \"sq\" (http-purge) cannot purge with mode = \"dir\"",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn a_tag_rule_on_a_provider_without_tags_is_refused_in_the_file() {
    let text = r#"
        [providers.tencent]
        kind = "tencent-cdn"
        [[rules]]
        name = "tags"
        bucket = "b"
        events = ["created"]
        domains = ["https://cdn.example.com"]
        provider = "tencent"
        mode = "tag"
        tags = ["{seg1}"]
    "#;
    let err = parse(text).unwrap().validate().unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(
        err.to_string(),
        "rules[0]: rule \"tags\": provider \"tencent\" (tencent-cdn) cannot purge with mode = \
         \"tag\"; it purges url, dir"
    );
}

#[test]
fn a_rule_naming_a_provider_with_problems_is_not_told_it_is_missing() {
    let text = r#"
        [providers.tencent]
        kind = "tencent-cdn"
        endpoint = "http://cdn.tencentcloudapi.com"
        [[rules]]
        name = "r"
        bucket = "b"
        events = ["created"]
        domains = ["https://cdn.example.com"]
        provider = "tencent"
    "#;
    let err = parse(text).unwrap().validate().unwrap_err().to_string();
    assert!(err.contains("providers.tencent.endpoint"), "{err}");
    assert!(
        err.contains("rules[0]: rule \"r\": provider \"tencent\" has problems (listed above)"),
        "{err}"
    );
    assert!(!err.contains("is not defined"), "{err}");
}

#[test]
fn the_write_queue_must_hold_at_least_one_event() {
    assert_eq!(
        RawConfig::default().validate().unwrap().store.write_queue,
        DEFAULT_WRITE_QUEUE
    );
    let err = parse("[store]\nwrite_queue = 0\n")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("store.write_queue: must be greater than 0"),
        "{err}"
    );
    let err = parse("[store]\nwrite_queue = -5\n").unwrap_err();
    assert!(err.contains("write_queue"), "{err}");
    let err = parse("[store]\nwrite_queue = \"lots\"\n").unwrap_err();
    assert!(err.contains("write_queue"), "{err}");
}

#[test]
fn connection_limits_and_deadlines_have_sane_defaults_and_ranges() {
    let server = RawConfig::default().validate().unwrap().server;
    assert_eq!(server.max_connections, 1024);
    assert_eq!(server.header_timeout, Duration::from_secs(10));
    assert_eq!(server.body_timeout, Duration::from_secs(60));
    let err = parse(
        "[server]\nmax_connections = 0\nheader_timeout_s = 0\nbody_timeout_s = 1000000000000\n",
    )
    .unwrap()
    .validate()
    .unwrap_err()
    .to_string();
    for want in [
        "server.max_connections: must be 1 to 1000000",
        "server.header_timeout_s: must be 1 to 86400 seconds",
        "server.body_timeout_s: must be 1 to 86400 seconds",
    ] {
        assert!(err.contains(want), "{want} in {err}");
    }
}

#[test]
fn a_busy_timeout_that_once_made_serve_exit_101_is_refused() {
    let err = parse("[store]\nbusy_timeout_ms = 9223372036854775807\n")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("store.busy_timeout_ms: must be at most 3600000"),
        "{err}"
    );
}

#[test]
fn admin_token_sources_and_loose_secret_files() {
    use std::os::unix::fs::PermissionsExt;
    let err = parse("[admin]\ntoken_env = \"A\"\ntoken_file = \"/b\"")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("admin: set either token_env or token_file, not both"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let loose = dir.path().join("webhook");
    let tight = dir.path().join("admin");
    for (p, mode) in [(&loose, 0o644), (&tight, 0o600)] {
        std::fs::write(p, "t").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let text = format!(
        "[server]\nwebhook_token_file = {:?}\n[admin]\ntoken_file = {:?}\n[store]\nmin_free_bytes = 0",
        loose.display().to_string(),
        tight.display().to_string()
    );
    let cfg = parse(&text).unwrap().validate().unwrap();
    assert_eq!(cfg.store.min_free_bytes, 0);
    assert!(cfg.admin.token.is_some());
    let warnings = cfg.secret_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(&loose.display().to_string()));
    assert_eq!(
        parse("").unwrap().validate().unwrap().store.min_free_bytes,
        crate::config::DEFAULT_MIN_FREE_BYTES
    );
}

#[test]
fn the_new_limits_are_checked_and_each_problem_named() {
    let err = parse(
        "[server]\nmax_body_bytes = 1000\nparse_budget_bytes = 999\n\
         [store]\nmax_jobs_per_body = 0\n\
         [dispatch]\ndown_after = 0\nprobe_interval_ms = 700000\nquota_warn_percent = 101",
    )
    .unwrap()
    .validate()
    .unwrap_err()
    .to_string();
    for want in [
        "server.parse_budget_bytes: must be from server.max_body_bytes (1000)",
        "store.max_jobs_per_body: must be 1 to",
        "dispatch.down_after: must be 1 to 1000",
        "dispatch.probe_interval_ms: must be 1 to 600000",
        "dispatch.quota_warn_percent: must be 1 to 100",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let ok = parse("[server]\nmax_body_bytes = 1000\nparse_budget_bytes = 1000")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(ok.server.parse_budget_bytes, 1000);
    assert_eq!(ok.dispatch.health.down_after, 3);
    assert_eq!(ok.dispatch.quota_warn_percent, 80);
}

#[test]
fn a_database_url_selects_the_postgresql_store() {
    let cfg = parse("[store]\nurl_env = \"EDGEPURGE_DATABASE_URL\"\npool_size = 8\n")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(
        cfg.store.url,
        Some(SecretSource::Env("EDGEPURGE_DATABASE_URL".into()))
    );
    assert_eq!(cfg.store.pool_size, 8);
    assert_eq!(
        cfg.store.describe(),
        "PostgreSQL (URL from environment variable EDGEPURGE_DATABASE_URL)"
    );
    let file = parse("[store]\nurl_file = \"/run/secrets/db-url\"\n")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(
        file.store.url,
        Some(SecretSource::File("/run/secrets/db-url".into()))
    );
}

#[test]
fn a_store_is_either_a_file_or_a_database() {
    let err = parse("[store]\npath = \"x.db\"\nurl_env = \"U\"\nsynchronous = \"normal\"\n")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("either path (SQLite) or url_env"), "{err}");
    assert!(
        err.contains("store.synchronous: applies to the SQLite store only"),
        "{err}"
    );
    let err = parse("[store]\nurl_env = \"U\"\nurl_file = \"f\"\n")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("either url_env or url_file"), "{err}");
    let err = parse("[store]\npool_size = 4\nca_file = \"ca.pem\"\n")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("store.pool_size: applies to the PostgreSQL store only"),
        "{err}"
    );
    assert!(
        err.contains("store.ca_file: applies to the PostgreSQL store only"),
        "{err}"
    );
}
