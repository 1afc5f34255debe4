use super::*;
use crate::store::conformance::{self, Backend};
use edgepurge_testkit::postgres::Postgres;

/// Small pools: many tests share one server.
fn opts() -> PgOptions {
    PgOptions {
        pool_size: 4,
        ..Default::default()
    }
}

/// A fresh database on the test binary's server; every handle opened on it is another node.
fn pg_backend() -> Backend {
    let url = Postgres::shared().create_database();
    Backend {
        guard: Box::new(()),
        open: Box::new(move || {
            let url = url.clone();
            Box::pin(async move {
                Arc::new(PgStore::open(&url, opts()).await.unwrap()) as Arc<dyn Store>
            })
        }),
    }
}

/// The store conformance suite, on PostgreSQL.
mod conformance_suite {
    use super::pg_backend;
    crate::store::conformance::suite!(pg_backend);
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_advice() {
    let pg = Postgres::shared();
    let url = pg.create_database();
    PgStore::open(&url, opts()).await.unwrap();
    let db = url.rsplit('/').next().unwrap();
    pg.psql(db, "INSERT INTO edgepurge_schema VALUES (99, now())");
    let err = PgStore::open(&url, opts()).await.err().unwrap();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade edgepurge"), "{err}");
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_at_once_with_the_password_masked() {
    let port = edgepurge_testkit::free_port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/edgepurge");
    let t0 = std::time::Instant::now();
    let err = PgStore::open(&url, opts()).await.err().unwrap();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("app:***@127.0.0.1"), "{text}");
    assert!(text.to_lowercase().contains("refused"), "{text}");
}

#[tokio::test]
async fn a_url_that_does_not_parse_is_refused_without_showing_it() {
    let err = PgStore::open("postgres://app:hunter2@db:notaport/x", opts())
        .await
        .err()
        .unwrap();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn nodes_starting_at_once_create_the_schema_once() {
    let url = Postgres::shared().create_database();
    let mut opens = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        opens.push(tokio::spawn(
            async move { PgStore::open(&url, opts()).await },
        ));
    }
    for o in opens {
        o.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn an_event_with_a_nul_character_is_refused_alone() {
    let url = Postgres::shared().create_database();
    let store = Arc::new(PgStore::open(&url, opts()).await.unwrap());
    let mut bad = conformance::record("r", &[("p", "https://c/a")]);
    bad.event.key = "a\0b".into();
    let good = conformance::record("r", &[("p", "https://c/b")]);
    let (b, g) = tokio::join!(store.ingest(vec![bad], 0), store.ingest(vec![good], 0));
    let err = b.unwrap_err();
    assert!(err.to_string().contains("NUL"), "{err}");
    assert_eq!(g.unwrap().purge_ids.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_are_group_committed_and_all_acknowledged() {
    let url = Postgres::shared().create_database();
    let store = Arc::new(PgStore::open(&url, opts()).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let rec = conformance::record("r", &[("p", &format!("https://c/{i}"))]);
            store.ingest(vec![rec], 1).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let depth = store.depths().await.unwrap();
    assert_eq!(depth[0].pending, 200);
    let seqs: std::collections::BTreeSet<i64> = store
        .log(LogQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert!(
        seqs.len() < 200,
        "200 concurrent ingests took {} transactions: no group commit",
        seqs.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queued_by_one_node_wakes_the_others() {
    let url = Postgres::shared().create_database();
    let a = PgStore::open(&url, opts()).await.unwrap();
    let b = PgStore::open(&url, opts()).await.unwrap();
    let mut heard = a.work_notices().unwrap();
    // The listener connects in the background: announce until it hears.
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut i = 0;
        loop {
            i += 1;
            b.ingest(
                vec![conformance::record(
                    "r",
                    &[("p", &format!("https://c/{i}"))],
                )],
                0,
            )
            .await
            .unwrap();
            if let Ok(Ok(n)) =
                tokio::time::timeout(std::time::Duration::from_millis(200), heard.recv()).await
            {
                return n;
            }
        }
    })
    .await
    .expect("node a hears of node b's work");
    assert_eq!(
        got,
        WorkNotice {
            lane: "p".into(),
            jobs: 1
        }
    );
    // Its own work is not announced back to itself.
    while heard.try_recv().is_ok() {}
    a.ingest(vec![conformance::record("r", &[("p", "https://c/own")])], 0)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(heard.try_recv().is_err());
}

#[tokio::test]
async fn an_answer_with_a_nul_character_is_kept_not_failed_forever() {
    let url = Postgres::shared().create_database();
    let s = PgStore::open(&url, opts()).await.unwrap();
    let tok = conformance::lease(&s).await;
    s.ingest(vec![conformance::record("r", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    let mut req = conformance::claim_req(tok, 1000);
    req.linger_ms = 0;
    let b = conformance::claim_batch(&s, req).await;
    let mut f = conformance::finish(tok, &b, 1001, FinishOutcome::RetryAt(5000));
    f.error = Some("cache said: bad\0page".into());
    s.finish(f).await.unwrap();
    let rec = &conformance::all_records(&s).await[0];
    assert_eq!(rec.error.as_deref(), Some("cache said: bad\u{fffd}page"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_used_and_the_server_certificate_checked_when_the_url_asks() {
    let pg = Postgres::start_with(edgepurge_testkit::postgres::Options {
        tls: true,
        ..Default::default()
    });
    let url = format!("{}?sslmode=require", pg.create_database());
    let db = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let with_ca = PgOptions {
        ca_file: Some(pg.ca_file()),
        ..opts()
    };
    let store = PgStore::open(&url, with_ca.clone()).await.unwrap();
    store
        .ingest(vec![conformance::record("r", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    let mut heard = store.work_notices().unwrap();
    let other = PgStore::open(&url, with_ca.clone()).await.unwrap();
    // The announcement listener connects over TLS too.
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            other
                .ingest(vec![conformance::record("r", &[("p", "https://c/b")])], 0)
                .await
                .unwrap();
            if let Ok(Ok(_)) =
                tokio::time::timeout(std::time::Duration::from_millis(200), heard.recv()).await
            {
                return;
            }
        }
    })
    .await
    .expect("an announcement over TLS");
    let ssl = pg.psql(
        &db,
        "SELECT bool_and(ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'edgepurge'",
    );
    assert_eq!(ssl.trim(), "t", "every edgepurge connection uses TLS");
    // Without the CA that signed it, the certificate is refused.
    let err = PgStore::open(&url, opts()).await.err().unwrap();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // A CA file with a URL that does not ask for TLS is a mistake, said so.
    let plain = url.replace("?sslmode=require", "");
    let err = PgStore::open(&plain, with_ca).await.err().unwrap();
    assert!(err.to_string().contains("sslmode=require"), "{err}");
}

/// Every writing transaction leaves a change position; the ones no record refers to must all
/// go, however many, by stepping until nothing is left (as the server's retention pass does).
#[tokio::test]
async fn prune_steps_until_no_unneeded_change_position_is_left() {
    let pg = Postgres::shared();
    let url = pg.create_database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let s = PgStore::open(&url, opts()).await.unwrap();
    let tok = conformance::lease(&s).await;
    s.ingest(vec![conformance::record("a", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    // 150 failed attempts: each claim and each answer moves the one record to a new
    // position, leaving the old one unneeded.
    let mut now = 100;
    for _ in 0..150 {
        let b = conformance::claim_batch(&s, conformance::claim_req(tok, now)).await;
        let f = conformance::finish(tok, &b, now + 1, FinishOutcome::RetryAt(now + 2));
        s.finish(f).await.unwrap();
        now += 2;
    }
    let count = |sql: &str| pg.psql(&db, sql).trim().parse::<i64>().unwrap();
    let before = count("SELECT count(*) FROM changes");
    assert!(before >= 150, "{before} change positions");
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 1000, "prune never says it is done");
        if s.prune_bookkeeping(50).await.unwrap() == 0 {
            break;
        }
    }
    let left = count("SELECT count(*) FROM changes");
    let needed = count("SELECT count(DISTINCT xid) FROM purges");
    assert!(left <= needed + 1, "{left} positions left, {needed} needed");
    assert!(steps > 150 / 50, "taken in slices: {steps} steps");
    // Nothing of the log went.
    let rec = &conformance::all_records(&s).await[0];
    assert_eq!(rec.attempts, 150);
}

/// Under sustained writes every step finds a few positions the writes just left unneeded: a
/// pass that stepped until a step found none never ended (a review found 430 steps in 10 s at
/// ~740 transactions/s), and the hourly log retention never ran again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bookkeeping_pass_ends_under_sustained_writes() {
    let pg = Postgres::shared();
    let url = pg.create_database();
    let s = Arc::new(PgStore::open(&url, opts()).await.unwrap());
    let tok = conformance::lease(s.as_ref()).await;
    let stop = tokio_util::sync::CancellationToken::new();
    s.ingest(vec![conformance::record("a", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    // One record retried again and again: each claim and each answer is a writing
    // transaction that leaves the record's previous position unneeded.
    let writer = {
        let (s, stop) = (Arc::clone(&s), stop.clone());
        tokio::spawn(async move {
            let mut now = 100;
            let mut n = 0u64;
            while !stop.is_cancelled() {
                let b =
                    conformance::claim_batch(s.as_ref(), conformance::claim_req(tok, now)).await;
                let f = conformance::finish(tok, &b, now + 1, FinishOutcome::RetryAt(now + 2));
                s.finish(f).await.unwrap();
                now += 2;
                n += 2;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The server's own pass.
    let started = std::time::Instant::now();
    let never = tokio_util::sync::CancellationToken::new();
    let pass = crate::service::prune_bookkeeping(s.as_ref(), 2_000, &never);
    let ended = tokio::time::timeout(Duration::from_secs(10), pass)
        .await
        .is_ok();
    stop.cancel();
    let writes = writer.await.unwrap();
    assert!(
        ended,
        "the bookkeeping pass did not end in {:?} ({writes} writing transactions)",
        started.elapsed()
    );
}
