use super::*;

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap();
    (dir, store)
}

#[tokio::test]
async fn sqlite_passes_the_store_conformance_suite() {
    crate::store::conformance::run_all(&|| {
        let (dir, store) = open();
        (
            Box::new(dir) as Box<dyn std::any::Any + Send>,
            Box::new(store) as Box<dyn Store>,
        )
    })
    .await;
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("upgrade edgepurge"), "{err}");
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let err = SqliteStore::open(
        Path::new("/nonexistent-dir/x/t.db"),
        SqliteOptions::default(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn open_existing_refuses_a_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open_existing(&dir.path().join("nope.db"), SqliteOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("edgepurge serve"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_are_group_committed_and_all_acknowledged() {
    let (_dir, store) = open();
    let store = std::sync::Arc::new(store);
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
}

#[tokio::test]
async fn two_handles_on_one_file_share_lanes_like_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let a = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let b = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert!(a.acquire_lane("p", "A", 0, 1000).await.unwrap());
    assert!(!b.acquire_lane("p", "B", 500, 1000).await.unwrap());
    a.ingest(vec![conformance::record("r", &[("p", "https://c/x")])], 0)
        .await
        .unwrap();
    let recs = b
        .log(LogQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        recs.len(),
        1,
        "a write by one handle is visible to the other"
    );
}
