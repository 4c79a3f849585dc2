//! The web portal over real HTTP with a cookie-keeping client, on SQLite and PostgreSQL.

use entity::{outbox, user};
use reqwest::{Client, StatusCode, header};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use secrecy::SecretString;
use zhigang::settings::Settings;
use zhigang::startup::Application;

use crate::db_test;
use crate::helpers::*;

/// The application on a random port, on the test's database.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client that keeps cookies.
    pub client: Client,
}

pub fn settings_for(t: &TestDb, base_url: &str) -> Settings {
    Settings {
        database_url: Some(SecretString::from(t.url.clone())),
        listen: "127.0.0.1:0".into(),
        data_dir: t.data_dir(),
        base_url: base_url.into(),
        smtp_url: None,
        db_max_connections: 5,
        mail_from: "智港 <noreply@zhigang.test>".into(),
        mail_max_attempts: 3,
        mail_retry_base_seconds: 1,
        mail_lease_seconds: 60,
        smtp_timeout_seconds: 5,
        run_worker: false,
        escalate_after_working_days: 3,
        digest_hour: 8,
        stuck_after_working_days: 3,
        api_requests_per_minute: 1200,
        trust_forwarded_for: false,
        login_account_free_failures: 5,
        login_address_free_failures: 20,
        session_idle_minutes: 30,
        session_absolute_hours: 12,
        attachment_max_mb: 1,
        store: zhigang::settings::StoreSettings::default(),
    }
}

pub async fn spawn_app(t: &TestDb) -> TestApp {
    spawn_app_in(t, &t.data_dir()).await
}

/// The application with its data (attachments, mail files) under `data_dir`.
pub async fn spawn_app_in(t: &TestDb, data_dir: &std::path::Path) -> TestApp {
    let mut settings = settings_for(t, "http://portal.test");
    settings.data_dir = data_dir.to_path_buf();
    let app = Application::with_database(&settings, t.db.clone())
        .await
        .expect("build app");
    let base = format!("http://{}", app.addr());
    tokio::spawn(app.run());
    TestApp {
        base,
        client: client(),
    }
}

pub fn client() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    /// GETs `page`, takes its CSRF token, and POSTs `fields` to `action` with it.
    pub async fn submit(
        &self,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let html = self.get(page).await.text().await.expect("body");
        let token = csrf_of(&html);
        let mut form: Vec<(&str, &str)> = vec![("_csrf", token.as_str())];
        form.extend_from_slice(fields);
        self.client
            .post(format!("{}{action}", self.base))
            .form(&form)
            .send()
            .await
            .expect("POST")
    }
}

pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).expect("page has a CSRF field") + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("zg_session="))
        .map(str::to_string)
}

/// The path (under the test base URL) of the link in the `kind` account email queued for
/// `user`.
pub async fn mail_link(t: &TestDb, user: uuid::Uuid, kind: &str) -> String {
    let mail = outbox::Entity::find()
        .filter(outbox::Column::RecipientUserId.eq(user))
        .filter(outbox::Column::Kind.eq(kind))
        .one(&t.db)
        .await
        .expect("query")
        .unwrap_or_else(|| panic!("a {kind} mail is queued"));
    let link = mail.payload["data"]["link"].as_str().expect("link");
    link.strip_prefix("http://portal.test")
        .expect("link under base_url")
        .to_string()
}

const GOOD_PASSWORD: &str = "violet-harbour-tractor-58";

/// A valid, unused USCC.
pub fn fresh_uscc() -> String {
    let first17 = format!("91120116MA{:07}", rand::random_range(0..10_000_000u32));
    let check = zhigang::uscc::check_char(&first17).expect("valid prefix");
    format!("{first17}{check}")
}

pub async fn register(app: &TestApp, uscc: &str, email: &str) -> reqwest::Response {
    app.submit(
        "/register",
        "/register",
        &[
            ("company_name", "天津智能机器人有限公司"),
            ("uscc", uscc),
            ("district", "D-120116"),
            ("contact_name", "王经理"),
            ("email", email),
            ("password", GOOD_PASSWORD),
            ("password_confirm", GOOD_PASSWORD),
        ],
    )
    .await
}

async fn every_page_carries_the_security_headers(t: &TestDb) {
    let app = spawn_app(t).await;
    for path in [
        "/",
        "/login",
        "/register",
        "/no-such-page",
        "/static/app.css",
        "/healthz",
    ] {
        let resp = app.get(path).await;
        let h = resp.headers();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{path} has a CSP"));
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(
            h.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{path}"
        );
        assert!(h.get("referrer-policy").is_some(), "{path}");
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS over plain HTTP"
        );
    }
    let login = app.get("/login").await;
    assert_eq!(
        login
            .headers()
            .get(header::CACHE_CONTROL)
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    let missing = app.get("/no-such-page").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body = missing.text().await.expect("body");
    assert!(
        body.contains("<h1>") && body.contains("页面不存在"),
        "a friendly 404 page: {body}"
    );
}
db_test!(security_headers, every_page_carries_the_security_headers);

async fn a_post_without_a_valid_csrf_token_is_refused(t: &TestDb) {
    let app = spawn_app(t).await;
    let resp = app
        .client
        .post(format!("{}/login", app.base))
        .form(&[("email", "a@example.com"), ("password", "x")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A token from another session does not count either.
    let other = client();
    let html = other
        .get(format!("{}/login", app.base))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let foreign = csrf_of(&html);
    let _ = app.get("/login").await;
    let resp = app
        .client
        .post(format!("{}/login", app.base))
        .form(&[
            ("_csrf", foreign.as_str()),
            ("email", "a@example.com"),
            ("password", "x"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}
db_test!(csrf_refusal, a_post_without_a_valid_csrf_token_is_refused);

async fn a_company_registers_confirms_its_email_and_signs_in_and_out(t: &TestDb) {
    let app = spawn_app(t).await;
    let before = app.get("/login").await;
    let anon_cookie = session_cookie(&before).expect("an anonymous session for the form's token");
    let email = format!("wang-{}@example.cn", rand::random_range(0..1_000_000u32));
    let resp = register(&app, &fresh_uscc(), &email).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        resp.text().await
    );
    let renewed = session_cookie(&resp).expect("a new session id at login");
    assert_ne!(anon_cookie, renewed, "the session id is renewed at login");
    assert!(
        renewed.contains("HttpOnly") && renewed.contains("SameSite=Lax"),
        "{renewed}"
    );
    let account = app.get("/account").await.text().await.expect("body");
    assert!(
        account.contains(&email) && account.contains("邮箱尚未验证"),
        "{account}"
    );

    // The verification email waits in the outbox with its link.
    let u = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&t.db)
        .await
        .expect("query")
        .expect("user");
    assert!(u.email_verified_at.is_none());
    let path = mail_link(t, u.id, "verification").await;
    let path = path.as_str();
    let verified = app.get(path).await;
    assert_eq!(verified.status(), StatusCode::OK);
    assert!(verified.text().await.expect("body").contains("邮箱已验证"));
    let again = app.get(path).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "single use");
    let u = user::Entity::find_by_id(u.id)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user");
    assert!(u.email_verified_at.is_some());

    // Logout ends the session on the server: the old cookie no longer signs anyone in.
    let cookie_value = renewed.split(';').next().unwrap_or_default().to_string();
    let resp = app.submit("/account", "/logout", &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let replay = client()
        .get(format!("{}/account", app.base))
        .header(header::COOKIE, cookie_value)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        replay.status(),
        StatusCode::SEE_OTHER,
        "redirected to /login: the session is gone"
    );

    // And back in.
    let resp = app
        .submit(
            "/login",
            "/login",
            &[
                ("email", &email.to_uppercase()),
                ("password", GOOD_PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers().get(header::LOCATION).map(|v| v.as_bytes()),
        Some(&b"/account"[..])
    );
}
db_test!(
    registration_and_login,
    a_company_registers_confirms_its_email_and_signs_in_and_out
);

async fn a_registration_with_mistakes_comes_back_with_every_message_and_the_input(t: &TestDb) {
    let app = spawn_app(t).await;
    let resp = app
        .submit(
            "/register",
            "/register",
            &[
                ("company_name", "<script>alert(1)</script>公司"),
                ("uscc", "91120116MA05JX7X2M"),
                ("district", ""),
                ("contact_name", ""),
                ("email", "not-an-email"),
                ("password", "short"),
                ("password_confirm", "short"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("body");
    for anchor in ["#uscc", "#district", "#contact_name", "#email", "#password"] {
        assert!(
            html.contains(&format!("href=\"{anchor}\"")),
            "the summary links to {anchor}"
        );
    }
    assert!(
        html.contains("校验位不正确"),
        "the USCC check digit message"
    );
    assert!(
        html.contains("value=\"91120116MA05JX7X2M\""),
        "the input is kept"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;公司"),
        "escaped, not executed"
    );
    assert!(!html.contains("<script>alert(1)"), "never raw");
    assert!(
        !html.contains("value=\"short\""),
        "passwords are never echoed"
    );
    assert!(
        html.contains("aria-invalid=\"true\" aria-describedby=\"email-error"),
        "errors are tied to fields"
    );

    // A second registration of the same company gets a clear message.
    let uscc = fresh_uscc();
    let first = register(
        &app,
        &uscc,
        &format!("a-{}@example.cn", rand::random_range(0..1_000_000u32)),
    )
    .await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let other = spawn_app(t).await;
    let second = register(
        &other,
        &uscc,
        &format!("b-{}@example.cn", rand::random_range(0..1_000_000u32)),
    )
    .await;
    assert_eq!(second.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        second
            .text()
            .await
            .expect("body")
            .contains("该统一社会信用代码已注册")
    );
}
db_test!(
    registration_mistakes,
    a_registration_with_mistakes_comes_back_with_every_message_and_the_input
);

async fn failed_logins_slow_down_with_the_same_message_whether_the_account_exists_or_not(
    t: &TestDb,
) {
    let app = spawn_app(t).await;
    let email = format!("li-{}@example.cn", rand::random_range(0..1_000_000u32));
    assert_eq!(
        register(&app, &fresh_uscc(), &email).await.status(),
        StatusCode::SEE_OTHER
    );
    let _ = app.submit("/account", "/logout", &[]).await;

    let known = app
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", "wrong password here")],
        )
        .await;
    assert_eq!(known.status(), StatusCode::UNAUTHORIZED);
    let known = known.text().await.expect("body");
    let unknown = app
        .submit(
            "/login",
            "/login",
            &[
                ("email", "nobody@example.cn"),
                ("password", "wrong password here"),
            ],
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown = unknown.text().await.expect("body");
    assert!(known.contains("邮箱或密码不正确") && unknown.contains("邮箱或密码不正确"));

    let mut last = StatusCode::OK;
    for _ in 0..6 {
        last = app
            .submit(
                "/login",
                "/login",
                &[("email", &email), ("password", "wrong password here")],
            )
            .await
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let blocked = app
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", GOOD_PASSWORD)],
        )
        .await;
    assert_eq!(
        blocked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let retry: u64 = blocked
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    assert!(blocked.text().await.expect("body").contains("分钟后再试"));
}
db_test!(
    login_throttling,
    failed_logins_slow_down_with_the_same_message_whether_the_account_exists_or_not
);

async fn an_email_longer_than_any_account_fails_like_any_other_and_is_throttled(t: &TestDb) {
    let app = spawn_app(t).await;
    let email = format!("{}@example.cn", "x".repeat(400));
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let r = app
            .submit(
                "/login",
                "/login",
                &[("email", &email), ("password", "wrong password here")],
            )
            .await;
        statuses.push(r.status());
    }
    assert_eq!(
        statuses,
        [
            [StatusCode::UNAUTHORIZED; 6].as_slice(),
            &[StatusCode::TOO_MANY_REQUESTS]
        ]
        .concat()
    );
}
db_test!(
    long_email_login,
    an_email_longer_than_any_account_fails_like_any_other_and_is_throttled
);

async fn the_language_follows_the_browser_and_the_users_choice(t: &TestDb) {
    let app = spawn_app(t).await;
    let en = app
        .client
        .get(format!("{}/", app.base))
        .header(header::ACCEPT_LANGUAGE, "en-GB,en;q=0.9")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        en.contains("<html lang=\"en\">") && en.contains("Enterprise services for AI companies")
    );
    let zh = app.get("/").await.text().await.expect("body");
    assert!(zh.contains("<html lang=\"zh-CN\">") && zh.contains("人工智能企业服务平台"));
    let resp = app
        .submit("/", "/locale", &[("lang", "en"), ("next", "/login")])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers().get(header::LOCATION).map(|v| v.as_bytes()),
        Some(&b"/login"[..])
    );
    let page = app.get("/login").await.text().await.expect("body");
    assert!(
        page.contains("<html lang=\"en\">"),
        "remembered without Accept-Language"
    );
    let resp = app
        .submit(
            "/",
            "/locale",
            &[("lang", "zh-CN"), ("next", "https://evil.example/")],
        )
        .await;
    assert_eq!(
        resp.headers().get(header::LOCATION).map(|v| v.as_bytes()),
        Some(&b"/"[..]),
        "no open redirect"
    );
}
db_test!(
    language_choice,
    the_language_follows_the_browser_and_the_users_choice
);

async fn a_forgotten_password_is_reset_by_a_single_use_link_and_the_change_is_notified(t: &TestDb) {
    let app = spawn_app(t).await;
    let email = format!("reset-{}@example.cn", rand::random_range(0..1_000_000u32));
    assert_eq!(
        register(&app, &fresh_uscc(), &email).await.status(),
        StatusCode::SEE_OTHER
    );
    let other_browser = client();
    let html = other_browser
        .get(format!("{}/login", app.base))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let token = csrf_of(&html);
    let resp = other_browser
        .post(format!("{}/login", app.base))
        .form(&[
            ("_csrf", token.as_str()),
            ("email", email.as_str()),
            ("password", GOOD_PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "signed in on a second browser"
    );

    let unknown = app
        .submit(
            "/password/forgot",
            "/password/forgot",
            &[("email", "nobody@example.cn")],
        )
        .await;
    let known = app
        .submit("/password/forgot", "/password/forgot", &[("email", &email)])
        .await;
    assert_eq!(unknown.status(), known.status());
    let (unknown, known) = (
        unknown.text().await.expect("body"),
        known.text().await.expect("body"),
    );
    assert!(
        unknown.contains("如果该邮箱已注册") && known.contains("如果该邮箱已注册"),
        "the same answer either way"
    );

    let u = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&t.db)
        .await
        .expect("query")
        .expect("user");
    let path = mail_link(t, u.id, "password_reset").await;
    let form = app.get(&path).await.text().await.expect("body");
    let reset_token = path.split("token=").nth(1).expect("token").to_string();
    assert!(form.contains(&reset_token));

    // A weak password is refused and the link still works afterwards.
    let weak = app
        .submit(
            &path,
            "/password/reset",
            &[
                ("token", &reset_token),
                ("password", "password1234"),
                ("password_confirm", "password1234"),
            ],
        )
        .await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let new_password = "quiet-lantern-orchard-77";
    let done = app
        .submit(
            &path,
            "/password/reset",
            &[
                ("token", &reset_token),
                ("password", new_password),
                ("password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let again = app
        .submit(
            &path,
            "/password/reset",
            &[
                ("token", &reset_token),
                ("password", new_password),
                ("password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "single use");

    // Every session ended; the change is mailed; the new password works, the old does not.
    let stale = other_browser
        .get(format!("{}/account", app.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        stale.status(),
        StatusCode::SEE_OTHER,
        "the other browser was signed out"
    );
    let notified = outbox::Entity::find()
        .filter(outbox::Column::RecipientUserId.eq(u.id))
        .filter(outbox::Column::Kind.eq("password_changed"))
        .one(&t.db)
        .await
        .expect("query");
    assert!(notified.is_some(), "the password change is mailed");
    let old = app
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", GOOD_PASSWORD)],
        )
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = app
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", new_password)],
        )
        .await;
    assert_eq!(new.status(), StatusCode::SEE_OTHER);

    // Changing it while signed in needs the current one.
    let wrong = app
        .submit(
            "/account/password",
            "/account/password",
            &[
                ("current", "not it at all"),
                ("password", "amber-falcon-river-31"),
                ("password_confirm", "amber-falcon-river-31"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.text().await.expect("body").contains("当前密码不正确"));
    let changed = app
        .submit(
            "/account/password",
            "/account/password",
            &[
                ("current", new_password),
                ("password", "amber-falcon-river-31"),
                ("password_confirm", "amber-falcon-river-31"),
            ],
        )
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    let account = app.get("/account").await;
    assert_eq!(
        account.status(),
        StatusCode::OK,
        "this browser stays signed in"
    );
}
db_test!(
    password_reset_and_change,
    a_forgotten_password_is_reset_by_a_single_use_link_and_the_change_is_notified
);

async fn the_company_admin_invites_a_colleague_who_sees_the_applications_until_deactivated(
    t: &TestDb,
) {
    let admin = spawn_app(t).await;
    let email = format!("boss-{}@example.cn", rand::random_range(0..1_000_000u32));
    assert_eq!(
        register(&admin, &fresh_uscc(), &email).await.status(),
        StatusCode::SEE_OTHER
    );
    let draft = admin
        .submit(
            "/applications/new",
            "/applications/new",
            &[("app_type", "yqyc")],
        )
        .await;
    let draft_path = draft
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("draft")
        .to_string();

    let colleague_email = format!(
        "colleague-{}@example.cn",
        rand::random_range(0..1_000_000u32)
    );
    let members_page = admin.get("/company/members").await;
    assert_eq!(
        members_page.status(),
        StatusCode::OK,
        "{}",
        members_page.text().await.unwrap_or_default()
    );
    let bad = admin
        .submit(
            "/company/members",
            "/company/members/invite",
            &[("name", ""), ("email", "nope")],
        )
        .await;
    let bad_status = bad.status();
    assert_eq!(
        bad_status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad.text().await.unwrap_or_default()
    );
    let resp = admin
        .submit(
            "/company/members",
            "/company/members/invite",
            &[("name", "赵同事"), ("email", &colleague_email)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let page = admin
        .get("/company/members")
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains(&colleague_email) && page.contains("已邀请,待设置密码"));

    let colleague = user::Entity::find()
        .filter(user::Column::Email.eq(colleague_email.as_str()))
        .one(&t.db)
        .await
        .expect("query")
        .expect("invited user");
    let path = mail_link(t, colleague.id, "invitation").await;
    let token = path.split("token=").nth(1).expect("token").to_string();

    // Before accepting, nobody can sign in as the colleague.
    let guest = TestApp {
        base: admin.base.clone(),
        client: client(),
    };
    let nope = guest
        .submit(
            "/login",
            "/login",
            &[("email", &colleague_email), ("password", "")],
        )
        .await;
    assert_ne!(nope.status(), StatusCode::SEE_OTHER);
    let resp = guest
        .submit(
            &path,
            "/invitation",
            &[
                ("token", &token),
                ("password", "copper-meadow-signal-42"),
                ("password_confirm", "copper-meadow-signal-42"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        guest.get(&draft_path).await.status(),
        StatusCode::OK,
        "a colleague sees the company's applications"
    );

    // A member is not an admin.
    let resp = guest
        .submit(
            "/company/members",
            "/company/members/invite",
            &[("name", "x"), ("email", "x@example.cn")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Deactivation ends the colleague's sessions and access at once.
    let resp = admin
        .submit(
            "/company/members",
            &format!("/company/members/{}/deactivate", colleague.id),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        guest.get(&draft_path).await.status(),
        StatusCode::SEE_OTHER,
        "signed out: redirected to the login"
    );
    let again = guest
        .submit(
            "/login",
            "/login",
            &[
                ("email", &colleague_email),
                ("password", "copper-meadow-signal-42"),
            ],
        )
        .await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    let me = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&t.db)
        .await
        .expect("query")
        .expect("admin");
    let resp = admin
        .submit(
            "/company/members",
            &format!("/company/members/{}/deactivate", me.id),
            &[],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "the admin cannot lock themselves out"
    );
}
db_test!(
    company_members,
    the_company_admin_invites_a_colleague_who_sees_the_applications_until_deactivated
);

async fn a_nul_character_in_a_form_or_a_query_is_refused_with_a_page(t: &TestDb) {
    let app = spawn_app(t).await;
    // A registration form with a NUL in a field: 400 with the error page, nothing stored
    // (on PostgreSQL the value could not even be stored).
    let resp = register(&app, &fresh_uscc(), "nul\0@example.test").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let html = resp.text().await.expect("body");
    assert!(html.contains("<html"), "an error page: {html}");
    let users = user::Entity::find()
        .filter(user::Column::Email.contains("nul"))
        .all(&t.db)
        .await
        .expect("query");
    assert!(users.is_empty());
    let resp = app.get("/login?next=%00").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
db_test!(
    a_nul_character_in_a_form_or_a_query_is_refused_with_a_page,
    a_nul_character_in_a_form_or_a_query_is_refused_with_a_page
);
