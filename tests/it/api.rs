//! The JSON API and its personal tokens, on SQLite and PostgreSQL.

use entity::api_token;
use entity::enums::OrgRole;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use zhigang::api::tokens;

use crate::db_test;
use crate::helpers::*;
use crate::review::{login_user, session_for};
use crate::web::{csrf_of, spawn_app};

/// The secret shown on a page (`zg_` + 64 hex digits), if any.
fn secret_in(html: &str) -> Option<String> {
    let start = html.find("zg_")?;
    let s: String = html[start..].chars().take(67).collect();
    (s.len() == 67 && s[3..].chars().all(|c| c.is_ascii_hexdigit())).then_some(s)
}

async fn tokens_are_created_on_the_web_shown_once_and_revocable(t: &TestDb) {
    let web = spawn_app(t).await;
    let me = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let browser = session_for(t, &web.base, me).await;
    let account = browser.get("/account").await.text().await.expect("body");
    assert!(
        account.contains("href=\"/account/tokens\""),
        "account links the tokens"
    );

    // Mistakes come back with a message.
    let bad = browser
        .submit(
            "/account/tokens",
            "/account/tokens",
            &[("name", ""), ("expires_days", "90")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad = browser
        .submit(
            "/account/tokens",
            "/account/tokens",
            &[("name", "ERP"), ("expires_days", "99999")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let created = browser
        .submit(
            "/account/tokens",
            "/account/tokens",
            &[("name", "ERP 接口"), ("expires_days", "90")],
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let html = created.text().await.expect("body");
    let secret = secret_in(&html).expect("the secret is shown");
    let row = api_token::Entity::find()
        .filter(api_token::Column::UserId.eq(me.0))
        .one(&t.db)
        .await
        .expect("query")
        .expect("a token row");
    assert_eq!(
        row.token_hash,
        tokens::hash(&secret),
        "only the hash is stored"
    );
    assert!(!row.token_hash.contains(&secret[3..]));
    assert!(row.expires_at.is_some());
    assert!(row.last_used_at.is_none());

    // Shown once: the list names the token but never shows the secret again.
    let list = browser
        .get("/account/tokens")
        .await
        .text()
        .await
        .expect("body");
    assert!(list.contains("ERP 接口"));
    assert!(secret_in(&list).is_none(), "the secret is not shown again");

    let user = tokens::authenticate(&t.db, &secret)
        .await
        .expect("query")
        .expect("the token works");
    assert_eq!(user.id, me.0);
    let used = api_token::Entity::find_by_id(row.id)
        .one(&t.db)
        .await
        .expect("query")
        .expect("row");
    assert!(used.last_used_at.is_some(), "the use is recorded");
    assert!(
        tokens::authenticate(&t.db, "zg_0000")
            .await
            .expect("query")
            .is_none()
    );

    // Another user cannot revoke it: 404.
    let other = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let theirs = session_for(t, &web.base, other).await;
    let page = theirs
        .get("/account/tokens")
        .await
        .text()
        .await
        .expect("body");
    let resp = theirs
        .client
        .post(format!("{}/account/tokens/{}/revoke", web.base, row.id))
        .form(&[("_csrf", csrf_of(&page))])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        tokens::authenticate(&t.db, &secret)
            .await
            .expect("query")
            .is_some()
    );

    // Its owner revokes it; it stops working at once.
    let page = browser
        .get("/account/tokens")
        .await
        .text()
        .await
        .expect("body");
    let resp = browser
        .client
        .post(format!("{}/account/tokens/{}/revoke", web.base, row.id))
        .form(&[("_csrf", csrf_of(&page))])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        tokens::authenticate(&t.db, &secret)
            .await
            .expect("query")
            .is_none(),
        "a revoked token is refused"
    );
}
db_test!(
    tokens_are_created_on_the_web_shown_once_and_revocable,
    tokens_are_created_on_the_web_shown_once_and_revocable
);

async fn the_cli_creates_a_token_and_prints_it_once(t: &TestDb) {
    let me = user(&t.db, "integrator").await;
    let email = entity::user::Entity::find_by_id(me.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user")
        .email;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zhigang"))
        .env("ZHIGANG_DATABASE_URL", &t.url)
        .env("ZHIGANG_DATA_DIR", t.data_dir())
        .env("ZHIGANG_LOG", "warn")
        .args([
            "admin",
            "create-token",
            "--email",
            &email,
            "--name",
            "provisioning",
            "--expires-days",
            "30",
        ])
        .output()
        .expect("run zhigang");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).expect("utf-8");
    let secret = secret.trim();
    assert!(secret.starts_with("zg_") && secret.len() == 67, "{secret}");
    let user = tokens::authenticate(&t.db, secret)
        .await
        .expect("query")
        .expect("the token works");
    assert_eq!(user.id, me.0);

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_zhigang"))
        .env("ZHIGANG_DATABASE_URL", &t.url)
        .env("ZHIGANG_DATA_DIR", t.data_dir())
        .env("ZHIGANG_LOG", "warn")
        .args([
            "admin",
            "create-token",
            "--email",
            "nobody@x.test",
            "--name",
            "x",
        ])
        .output()
        .expect("run zhigang");
    assert!(!bad.status.success());
}
db_test!(
    the_cli_creates_a_token_and_prints_it_once,
    the_cli_creates_a_token_and_prints_it_once
);
