//! The per-process configuration cache (`zhigang::store::config`): every change to the
//! organizations, the calendar or the definitions is seen at the next read, whoever made
//! it; a rolled-back change is never remembered; two databases never share an entry.

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

use crate::db_test;
use crate::helpers::{Backend, TestDb};

async fn exec(db: &impl ConnectionTrait, sql: &str) {
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("statement");
}

fn name_of(c: &zhigang::store::config::Config, code: &str) -> String {
    c.orgs.by_code(code).expect("organization").name_zh.clone()
}

async fn a_change_made_in_sql_by_anyone_is_seen_at_the_next_read(t: &TestDb) {
    let before = zhigang::store::config::current(&t.db)
        .await
        .expect("config");
    let again = zhigang::store::config::current(&t.db)
        .await
        .expect("config");
    assert!(
        std::sync::Arc::ptr_eq(&before, &again),
        "nothing changed: the cached copy is reused"
    );
    // Another connection (as another instance would), plain SQL, no help from the portal.
    let other = zhigang::db::connect(&t.url, 1).await.expect("connect");
    exec(
        &other,
        "UPDATE organizations SET name_zh = '改名后的区' WHERE code = 'D-120116'",
    )
    .await;
    let after = zhigang::store::config::current(&t.db)
        .await
        .expect("config");
    assert_eq!(name_of(&after, "D-120116"), "改名后的区");

    // The calendar and the definitions are watched too.
    let g = |c: &std::sync::Arc<zhigang::store::config::Config>| std::sync::Arc::as_ptr(c);
    {
        use sea_orm::{ActiveModelTrait, ActiveValue::Set};
        entity::calendar_day::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            day: Set(chrono::NaiveDate::from_ymd_opt(2031, 1, 2).expect("date")),
            kind: Set("holiday".into()),
            name: Set("测试".into()),
            created_at: Set(zhigang::store::now()),
        }
        .insert(&other)
        .await
        .expect("insert a holiday");
    }
    let with_day = zhigang::store::config::current(&t.db)
        .await
        .expect("config");
    assert_ne!(
        g(&after),
        g(&with_day),
        "a calendar change is a new generation"
    );
    assert!(
        !with_day
            .calendar
            .is_working_day(chrono::NaiveDate::from_ymd_opt(2031, 1, 2).expect("date")),
        "the new holiday is in the cached calendar"
    );
    exec(&other, "UPDATE workflow_definitions SET active = active").await;
    let with_def = zhigang::store::config::current(&t.db)
        .await
        .expect("config");
    assert_ne!(
        g(&with_day),
        g(&with_def),
        "a definition change is a new generation"
    );
}
db_test!(
    a_change_made_in_sql_by_anyone_is_seen_at_the_next_read,
    a_change_made_in_sql_by_anyone_is_seen_at_the_next_read
);

async fn a_change_rolled_back_is_never_remembered(t: &TestDb) {
    let original = name_of(
        &zhigang::store::config::current(&t.db)
            .await
            .expect("config"),
        "D-120116",
    );
    let txn = t.db.begin().await.expect("begin");
    exec(
        &txn,
        "UPDATE organizations SET name_zh = '不会提交' WHERE code = 'D-120116'",
    )
    .await;
    // Read through the cache while the change is pending, then roll it back.
    let during = zhigang::store::config::current(&t.db)
        .await
        .expect("config");
    assert_eq!(
        name_of(&during, "D-120116"),
        original,
        "uncommitted: not seen"
    );
    txn.rollback().await.expect("rollback");
    // A later committed change to something else reuses no generation the cache holds
    // with the rolled-back content.
    exec(
        &t.db,
        "UPDATE organizations SET name_en = name_en WHERE code = 'D-120116'",
    )
    .await;
    let after = zhigang::store::config::current(&t.db)
        .await
        .expect("config");
    assert_eq!(name_of(&after, "D-120116"), original);
}
db_test!(
    a_change_rolled_back_is_never_remembered,
    a_change_rolled_back_is_never_remembered
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_databases_in_one_process_never_share_an_entry() {
    let a = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let b = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    assert_eq!(a.db.get_database_backend(), DbBackend::Sqlite);
    exec(
        &a.db,
        "UPDATE organizations SET name_zh = '甲库' WHERE code = 'D-120116'",
    )
    .await;
    exec(
        &b.db,
        "UPDATE organizations SET name_zh = '乙库' WHERE code = 'D-120116'",
    )
    .await;
    for _ in 0..2 {
        let ca = zhigang::store::config::current(&a.db)
            .await
            .expect("config");
        let cb = zhigang::store::config::current(&b.db)
            .await
            .expect("config");
        assert_eq!(name_of(&ca, "D-120116"), "甲库");
        assert_eq!(name_of(&cb, "D-120116"), "乙库");
    }
}
