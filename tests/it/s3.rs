//! Attachments in S3-compatible storage, against a real S3 server: moto's (`moto_server`,
//! from PyPI). Two portal instances share one bucket; an upload through one downloads
//! identical through the other; the object sits in the bucket under its content hash; and a
//! store that goes away gives the user a clear message and records nothing.
//!
//! The server is found through `ZHIGANG_TEST_MOTO_SERVER` (the `moto_server` executable;
//! `.ci/run` installs it), else `target/moto-venv/bin/moto_server`. Without it the test says
//! `SKIPPED` and passes locally, and fails under `CI=true`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use reqwest::{StatusCode, header};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zhigang::settings::{Settings, StoreSettings};
use zhigang::startup::Application;

use crate::db_test;
use crate::filing::upload;
use crate::helpers::*;
use crate::web::{TestApp, client, settings_for};

/// A tiny but real PDF (magic bytes are what the store checks).
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

/// A `moto_server` process on a free port, stopped when dropped.
struct Moto {
    child: Child,
    base: String,
}

impl Moto {
    /// Starts moto, or says why it cannot (`Err` carries the reason).
    async fn start() -> Result<Self, String> {
        let exe = std::env::var("ZHIGANG_TEST_MOTO_SERVER").unwrap_or_else(|_| {
            format!(
                "{}/target/moto-venv/bin/moto_server",
                env!("CARGO_MANIFEST_DIR")
            )
        });
        if !std::path::Path::new(&exe).is_file() {
            return Err(format!("no executable at {exe}"));
        }
        let port = free_port();
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{exe} does not start: {e}"))?;
        let moto = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(format!("{}/moto-api/", moto.base))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "moto did not answer on port {port} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(moto)
    }

    /// Creates a bucket (path-style, as MinIO and moto serve it).
    async fn create_bucket(&self, bucket: &str) {
        let resp = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.base))
            .send()
            .await
            .expect("create bucket");
        assert!(resp.status().is_success(), "create bucket: {resp:?}");
    }

    /// The keys in `bucket`, straight from the server's ListObjectsV2.
    async fn keys(&self, bucket: &str) -> Vec<String> {
        let xml = reqwest::get(format!("{}/{bucket}?list-type=2", self.base))
            .await
            .expect("list")
            .text()
            .await
            .expect("list body");
        xml.split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// Stops the server (the store becomes unreachable).
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Moto, or `None` after saying why the test is skipped (a failure under `CI=true`).
async fn moto_or_skip() -> Option<Moto> {
    match Moto::start().await {
        Ok(m) => Some(m),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "moto is required in CI: {why}"
            );
            println!("SKIPPED: s3 test (moto not installed: {why})");
            None
        }
    }
}

/// The portal's settings with attachments in `s3://bucket/portal` on moto.
fn s3_settings(t: &TestDb, moto: &Moto, bucket: &str, data_dir: &std::path::Path) -> Settings {
    let mut s = settings_for(t, "http://portal.test");
    s.data_dir = data_dir.to_path_buf();
    s.store = StoreSettings {
        attachment_store: format!("s3://{bucket}/portal"),
        s3_endpoint: Some(moto.base.clone()),
        s3_region: Some("us-east-1".into()),
        s3_allow_http: true,
        s3_access_key_id: Some("testing".into()),
        s3_secret_access_key: Some("testing".to_string().into()),
    };
    s
}

async fn spawn(t: &TestDb, settings: &Settings, client: reqwest::Client) -> TestApp {
    let app = Application::with_database(settings, t.db.clone())
        .await
        .expect("build app");
    let base = format!("http://{}", app.addr());
    tokio::spawn(app.run());
    TestApp { base, client }
}

async fn attachment_rows(t: &TestDb, id: Uuid) -> Vec<entity::attachment::Model> {
    entity::attachment::Entity::find()
        .filter(entity::attachment::Column::ApplicationId.eq(id))
        .all(&t.db)
        .await
        .expect("query")
}

async fn two_instances_share_attachments_through_s3_and_a_lost_store_records_nothing(t: &TestDb) {
    let Some(mut moto) = moto_or_skip().await else {
        return;
    };
    let bucket = format!("zhigang-{}", Uuid::new_v4().simple());
    moto.create_bucket(&bucket).await;
    let data = tempfile::tempdir().expect("tmp");
    let settings = s3_settings(t, &moto, &bucket, data.path());

    // Instance one: a verified company files a draft and uploads a document.
    let one = spawn(t, &settings, client()).await;
    crate::filing::register_verified(t, &one).await;
    let resp = one
        .submit(
            "/applications/new",
            "/applications/new",
            &[("app_type", "yqyc")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let id: Uuid = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("/applications/")
        .parse()
        .expect("draft id");
    assert_eq!(
        upload(&one, id, "plan_document", PDF, "plan.pdf")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let rows = attachment_rows(t, id).await;
    assert_eq!(rows.len(), 1, "the upload is recorded");

    // The object is in the bucket, under the prefix and the content's hash; nothing was
    // written to the local disk.
    let sha = hex::encode(Sha256::digest(PDF));
    let key = format!("sha256/{}/{sha}", &sha[..2]);
    assert_eq!(rows[0].storage_key, key);
    assert_eq!(moto.keys(&bucket).await, vec![format!("portal/{key}")]);
    assert!(
        !data.path().join("attachments").exists(),
        "no local attachment folder with an S3 store"
    );

    // Instance two, same bucket and database, same session: the download is identical.
    let two = spawn(t, &settings, one.client.clone()).await;
    let path = format!("/applications/{id}/attachments/{}", rows[0].id);
    for instance in [&one, &two] {
        let resp = instance.get(&path).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "download via {}",
            instance.base
        );
        assert_eq!(resp.bytes().await.expect("bytes").as_ref(), PDF);
    }

    // S3 refuses a second create of the same key (the conditional put the store makes,
    // `If-None-Match: *`); object_store reports it as AlreadyExists, which the store takes
    // as "already stored".
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&moto.base)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_allow_http(true)
        .build()
        .expect("S3 client");
    let again = s3
        .put_opts(
            &object_store::path::Path::from(format!("portal/{key}")),
            bytes::Bytes::from_static(PDF).into(),
            object_store::PutOptions {
                mode: object_store::PutMode::Create,
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{again:?}"
    );
    // Through the portal, the same content uploaded again is fine and stored once.
    assert_eq!(
        upload(&two, id, "plan_document", PDF, "plan.pdf")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(attachment_rows(t, id).await.len(), 2);
    assert_eq!(moto.keys(&bucket).await, vec![format!("portal/{key}")]);

    // The store goes away: a clear message within seconds, and no attachment row.
    moto.stop();
    let other = b"%PDF-1.4\n% another document\n%%EOF\n";
    let started = Instant::now();
    assert_eq!(
        upload(&one, id, "plan_document", other, "plan.pdf")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let waited = started.elapsed();
    let page = one
        .get(&format!("/applications/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("文件保存失败"), "a clear message: {page}");
    assert_eq!(attachment_rows(t, id).await.len(), 2, "nothing recorded");
    assert!(
        waited < Duration::from_secs(30),
        "the user waited {waited:?} for the error"
    );
}
db_test!(
    s3_attachments,
    two_instances_share_attachments_through_s3_and_a_lost_store_records_nothing
);
