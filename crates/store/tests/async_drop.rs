//! A PostgreSQL store held by an async server (`haven serve` on PostgreSQL) is dropped on a
//! runtime worker when the server stops: that must close its connections without panicking.

#![cfg(feature = "postgres")]

use store::{SqlStore, Store};

#[test]
fn a_postgres_store_dropped_on_an_async_worker_closes_quietly() {
    let Some(database) = store::testing::database() else {
        eprintln!("skipped: HAVEN_SKIP_POSTGRES=1");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let url = database.url().to_owned();
    let dropped = runtime.block_on(async move {
        // The server uses the store from blocking threads, and drops it on a worker.
        let store = tokio::task::spawn_blocking(move || {
            let store: Box<dyn Store> = Box::new(SqlStore::connect_postgres(&url).unwrap());
            store
                .create(serde_json::json!({"resourceType": "Patient"}))
                .unwrap();
            store
        })
        .await
        .unwrap();
        tokio::spawn(async move { drop(store) }).await
    });
    assert!(dropped.is_ok(), "dropping the store panicked");
}
