//! Fault test: the file system under the SQLite database fills up while Stackgate writes. Writes
//! must fail as "unavailable" (a 503 at the edges), reads go on, and once there is room again
//! every connection writes again and the database is intact. Needs root, to mount a small tmpfs;
//! elsewhere it says so and checks nothing.

use crate::{Store, StoreOptions};
use stackgate_identity::{Actor, SystemClock, Target};
use std::{path::Path, process::Command, sync::Arc};

struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

async fn write(store: &Store, i: usize) -> Result<(), crate::StoreError> {
    let entry = Actor::system("disk-full-test")
        .entry("test.write", Target::System)
        .with_detail(serde_json::json!({ "i": i, "padding": "x".repeat(2000) }));
    store.record(&entry).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_cleanly_and_they_recover() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(dir.path())
        .output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _mount = Mounted(dir.path());
    let db = dir.path().join("stackgate.db");
    let options = StoreOptions {
        max_connections: 4,
        ..StoreOptions::new(format!("sqlite://{}", db.display()))
    };
    let store = Store::connect(&options, Arc::new(SystemClock))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    for i in 0..20 {
        write(&store, i).await.unwrap();
    }
    // Fill what is left of the file system.
    let filler = dir.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "status=none"])
        .arg(format!("of={}", filler.display()))
        .status();

    let mut failures = 0;
    for i in 0..200 {
        if let Err(err) = write(&store, 100 + i).await {
            assert!(
                err.is_unavailable(),
                "a full disk is unavailable, not a bug: {err}"
            );
            failures += 1;
        }
    }
    assert!(failures > 0, "the disk was full");
    store.ping().await.unwrap();

    std::fs::remove_file(&filler).unwrap();
    // Every connection of the pool writes again (more writes than connections, several times).
    for i in 0..40 {
        write(&store, 1000 + i)
            .await
            .unwrap_or_else(|e| panic!("write {i} after the disk has room again: {e}"));
    }
    let check: String = crate::pool::on_pool!(store, |pool| {
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(check, "ok");
    store.close().await;
}
