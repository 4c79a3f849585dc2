//! The security sweep: every kind of response carries the security headers and every
//! cookie its flags; the server's own log (the real binary, at trace level) never shows a
//! password, token, CSRF token or session id that a realistic run used, nor the database's
//! or the SMTP server's password.

use std::collections::BTreeSet;

use entity::enums::OrgRole;
use reqwest::{StatusCode, header};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::access::{ROLES, Role, rows, world};
use crate::db_test;
use crate::helpers::*;
use crate::review::{REVIEWER_PASSWORD, login_user};
use crate::web::{TestApp, client, csrf_of, settings_for};

/// The Content-Security-Policy `src/web/mod.rs` sets, word for word.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; object-src 'none'";

/// What a response must carry, by name and exact value.
const HEADERS: [(&str, &str); 6] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
];

const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The problems with one response's headers and cookies (empty when it is fine).
fn problems(what: &str, resp: &reqwest::Response, https: bool) -> Vec<String> {
    let h = resp.headers();
    let mut out = Vec::new();
    for (name, want) in HEADERS {
        let got: Vec<_> = h.get_all(name).iter().collect();
        if got.len() != 1 || got[0].as_bytes() != want.as_bytes() {
            out.push(format!("{what}: {name} is {got:?}, not {want:?}"));
        }
    }
    let hsts = h.get("strict-transport-security").map(|v| v.as_bytes());
    match (https, hsts) {
        (true, Some(v)) if v == HSTS.as_bytes() => {}
        (false, None) => {}
        (_, got) => out.push(format!(
            "{what}: strict-transport-security is {got:?} with an {} base URL",
            if https { "https" } else { "http" }
        )),
    }
    // Pages rendered for a session are private: no shared or browser cache may keep them.
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let has_session_cookie = h.get(header::SET_COOKIE).is_some();
    if html && resp.status() == StatusCode::OK && has_session_cookie {
        let cc = h.get(header::CACHE_CONTROL).map(|v| v.as_bytes());
        if cc != Some(b"no-store") {
            out.push(format!(
                "{what}: a page that sets a session cookie has cache-control {cc:?}"
            ));
        }
    }
    for c in h.get_all(header::SET_COOKIE) {
        let c = c.to_str().unwrap_or_default();
        let attrs: BTreeSet<String> = c
            .split(';')
            .skip(1)
            .map(|a| a.trim().to_ascii_lowercase())
            .collect();
        let has = |a: &str| attrs.contains(a);
        let same_site = has("samesite=lax") || has("samesite=strict");
        if !has("httponly") || !same_site || !has("path=/") || has("secure") != https {
            out.push(format!(
                "{what}: cookie {c:?} lacks HttpOnly, SameSite, Path=/ or has Secure \
                 {} (base URL {})",
                has("secure"),
                if https { "https" } else { "http" }
            ));
        }
    }
    out
}

async fn every_response_carries_the_security_headers_and_every_cookie_its_flags(t: &TestDb) {
    let w = world(t).await;
    let o = &w.objects;
    let base = w.sessions[&Role::Anonymous].base.clone();
    let mut found = Vec::new();
    let mut statuses = BTreeSet::new();
    let mut cookies = 0;

    // Every page of the access matrix, as every role: home, login, registration, the
    // applicant's pages, the inbox and tasks, reports, administration, static assets,
    // health checks, redirects to the login page, 404s for what a role may not see.
    for row in rows(o).iter().filter(|r| r.method == "GET") {
        for role in ROLES {
            let resp = w.sessions[&role].get(&row.path).await;
            statuses.insert(resp.status().as_u16());
            cookies += resp.headers().get_all(header::SET_COOKIE).iter().count();
            found.extend(problems(
                &format!("GET {} as {role:?}", row.path),
                &resp,
                false,
            ));
        }
    }

    // A 403 the application decides: 催办 of one's own task.
    let holder = &w.sessions[&Role::HolderReviewer];
    let resp = holder
        .submit(
            &format!("/tasks/{}", o.task),
            &format!("/tasks/{}/remind", o.task),
            &[],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "remind one's own task"
    );
    found.extend(problems("POST remind (403)", &resp, false));
    // A 403 from the CSRF check, before any handler.
    let resp = client()
        .post(format!("{base}/login"))
        .form(&[("email", "a@example.cn"), ("password", "x")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "no CSRF token");
    found.extend(problems("POST /login without CSRF (403)", &resp, false));

    // Signing in (a new session id) and out (the cookie cleared): both set cookies.
    let who = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let email = entity::user::Entity::find_by_id(who.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user")
        .email;
    let fresh = TestApp {
        base: base.clone(),
        client: client(),
    };
    let resp = fresh
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", "not-the-password-1")],
        )
        .await;
    found.extend(problems("POST /login, wrong password", &resp, false));
    let resp = fresh
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", REVIEWER_PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "login");
    assert!(resp.headers().get(header::SET_COOKIE).is_some(), "renewed");
    found.extend(problems("POST /login", &resp, false));
    let resp = fresh.submit("/inbox", "/logout", &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "logout");
    assert!(resp.headers().get(header::SET_COOKIE).is_some(), "cleared");
    found.extend(problems("POST /logout", &resp, false));
    let resp = fresh
        .submit("/", "/locale", &[("lang", "en"), ("next", "/")])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "language switch");
    found.extend(problems("POST /locale", &resp, false));

    // The JSON API and its documentation: problems, data, the spec, Swagger UI's files.
    let token = zhigang::api::tokens::create(&t.db, who.0, "headers", Some(30))
        .await
        .expect("query")
        .expect("valid")
        .secret;
    let api = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for (path, bearer, status) in [
        ("/api/v1/organizations", true, StatusCode::OK),
        ("/api/v1/tasks", true, StatusCode::OK),
        ("/api/v1/applications", false, StatusCode::UNAUTHORIZED),
        ("/api/v1/no-such-thing", true, StatusCode::NOT_FOUND),
        ("/api/openapi.json", false, StatusCode::OK),
        ("/api/docs/", false, StatusCode::OK),
        ("/api/docs/swagger-ui.css", false, StatusCode::OK),
        ("/api/docs/swagger-ui-bundle.js", false, StatusCode::OK),
        ("/api/docs/start.js", false, StatusCode::OK),
    ] {
        let mut req = api.get(format!("{base}{path}"));
        if bearer {
            req = req.bearer_auth(&token);
        }
        let resp = req.send().await.expect("GET");
        assert_eq!(resp.status(), status, "{path}");
        found.extend(problems(&format!("GET {path}"), &resp, false));
    }
    let resp = api
        .post(format!("{base}/api/v1/applications"))
        .bearer_auth(&token)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "malformed JSON");
    found.extend(problems("POST /api/v1/applications (400)", &resp, false));

    // The sweep reached every kind of outcome, and cookies were set along the way.
    for s in [200, 303, 400, 404] {
        assert!(statuses.contains(&s), "no {s} among {statuses:?}");
    }
    assert!(cookies > 0, "no page set a cookie");
    assert!(found.is_empty(), "{}", found.join("\n"));
}
db_test!(
    headers_and_cookies,
    every_response_carries_the_security_headers_and_every_cookie_its_flags
);

async fn behind_an_https_base_url_cookies_are_secure_and_hsts_is_sent(t: &TestDb) {
    let settings = settings_for(t, "https://portal.test");
    let portal = zhigang::startup::Application::with_database(&settings, t.db.clone())
        .await
        .expect("build app");
    let base = format!("http://{}", portal.addr());
    tokio::spawn(portal.run());
    let who = login_user(t, "D-120116", OrgRole::Reviewer).await;
    let email = entity::user::Entity::find_by_id(who.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user")
        .email;
    let mut found = Vec::new();
    // The test speaks plain HTTP to the listener (TLS ends at the proxy in front of it), so
    // the client's cookie jar would withhold Secure cookies: carry the cookie by hand.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = plain
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("GET");
    found.extend(problems("GET /login", &form, true));
    let cookie = form
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("an anonymous session for the form")
        .to_string();
    let csrf = csrf_of(&form.text().await.expect("body"));
    let resp = plain
        .post(format!("{base}/login"))
        .header(header::COOKIE, &cookie)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", email.as_str()),
            ("password", REVIEWER_PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "login");
    assert!(resp.headers().get(header::SET_COOKIE).is_some(), "renewed");
    found.extend(problems("POST /login", &resp, true));
    for path in [
        "/",
        "/no-such-page",
        "/static/app.css",
        "/api/openapi.json",
        "/api/v1/tasks",
    ] {
        let resp = plain
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET");
        found.extend(problems(&format!("GET {path}"), &resp, true));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
db_test!(
    https_cookies_and_hsts,
    behind_an_https_base_url_cookies_are_secure_and_hsts_is_sent
);

/// `zhigang serve` as a child process with its real logger at `filter`, on the database at
/// `database_url`, mailing through `smtp_url`; stderr (the log) and stdout are collected while it runs.
struct Served {
    child: std::process::Child,
    base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// The object store's secret key the logged server is given.
const S3_SECRET: &str = "quartz-heron-maple-38-wJalrXUtnFEMI";

fn serve_logging(
    database_url: &str,
    smtp_url: &str,
    data_dir: &std::path::Path,
    filter: &str,
) -> Served {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    let mut child = Command::new(env!("CARGO_BIN_EXE_zhigang"))
        .env("ZHIGANG_DATABASE_URL", database_url)
        .env("ZHIGANG_DATA_DIR", data_dir)
        .env("ZHIGANG_LISTEN", "127.0.0.1:0")
        .env("ZHIGANG_BASE_URL", "http://portal.test")
        .env("ZHIGANG_RUN_WORKER", "true")
        .env("ZHIGANG_LOG", filter)
        .env("RUST_LOG", filter)
        .env("NO_COLOR", "1")
        .env("ZHIGANG_SMTP_URL", smtp_url)
        // Set, though the store here is the file system: the settings carry it all the same.
        .env("ZHIGANG_S3_SECRET_ACCESS_KEY", S3_SECRET)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let log = Arc::new(Mutex::new(String::new()));
    let stdout = Arc::new(Mutex::new(String::new()));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let mut readers = Vec::new();
    let err = child.stderr.take().expect("stderr");
    let sink = log.clone();
    readers.push(std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if line.contains("serving")
                && let Some(addr) = line.split("addr=").nth(1)
            {
                let _ = addr_tx.send(addr.trim().to_string());
            }
            let mut l = sink.lock().expect("log");
            l.push_str(&line);
            l.push('\n');
        }
    }));
    let out = child.stdout.take().expect("stdout");
    let sink = stdout.clone();
    readers.push(std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let mut l = sink.lock().expect("stdout");
            l.push_str(&line);
            l.push('\n');
        }
    }));
    let Ok(addr) = addr_rx.recv_timeout(std::time::Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!(
            "the server did not start: {}",
            log.lock().expect("log").as_str()
        );
    };
    Served {
        child,
        base: format!("http://{addr}"),
        log,
        stdout,
        readers,
    }
}

impl Served {
    /// Stops the server as a process manager does (SIGTERM) and returns its whole log.
    fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.log.lock().expect("log").clone()
    }
}

/// Session ids from every `Set-Cookie` of `resp`.
fn remember_cookies(resp: &reqwest::Response, secrets: &mut Vec<(String, String)>) {
    for c in resp.headers().get_all(header::SET_COOKIE) {
        let value = c
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        if !value.is_empty() {
            secrets.push(("session id".into(), value));
        }
    }
}

/// The API token shown on the tokens page (`zg_` + 64 hex digits).
fn token_on(html: &str) -> String {
    let start = html.find("zg_").expect("the new token is shown");
    html[start..].chars().take(67).collect()
}

/// Standard base64, for the form an SMTP `AUTH PLAIN` sends credentials in.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn a_realistic_run_logs_no_password_token_or_session_id(t: &TestDb) {
    let mut secrets: Vec<(String, String)> = Vec::new();
    // Mail goes out through an SMTP server that wants a password.
    let smtp = crate::mail::SmtpServer::start_new().await;
    let smtp_password = "kestrel-vapour-orbit-14";
    smtp.require_auth("mailer", smtp_password);
    secrets.push(("SMTP password".into(), smtp_password.into()));
    secrets.push((
        "SMTP credentials as AUTH PLAIN sends them".into(),
        base64(format!("\0mailer\0{smtp_password}").as_bytes()),
    ));
    let smtp_url = smtp
        .url()
        .replace("smtp://", &format!("smtp://mailer:{smtp_password}@"));
    secrets.push(("object store secret key".into(), S3_SECRET.into()));
    // On PostgreSQL the database URL carries a password too (the test server trusts local
    // connections, so any password is accepted and none is needed).
    let mut database_url = t.url.clone();
    if t.backend == Backend::Postgres && database_url.contains("://postgres@") {
        let db_password = "granite-sparrow-lotus-70";
        database_url = database_url.replace("://postgres@", &format!("://postgres:{db_password}@"));
        secrets.push(("database password".into(), db_password.into()));
    }
    let data_dir = t.data_dir();
    // Everything the server and its libraries log, at the most verbose level there is.
    let filter = "trace";
    let served = tokio::task::spawn_blocking({
        let dir = data_dir.clone();
        move || serve_logging(&database_url, &smtp_url, &dir, filter)
    })
    .await
    .expect("join");
    // The first administrator's password, printed once on stdout.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let admin_password = loop {
        let out = served.stdout.lock().expect("stdout").clone();
        if let Some(p) = out
            .lines()
            .find_map(|l| l.split("password: ").nth(1))
            .map(str::trim)
        {
            break p.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first admin's password is printed: {out}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    secrets.push(("first admin's password".into(), admin_password.clone()));

    let app = TestApp {
        base: served.base.clone(),
        client: client(),
    };
    let note_csrf = |html: &str, secrets: &mut Vec<(String, String)>| {
        secrets.push(("CSRF token".into(), csrf_of(html)));
    };

    // A company registers on the web and confirms its address.
    let password = "cobalt-meadow-lantern-63";
    let email = format!("log-{}@example.cn", rand::random_range(0..1_000_000u32));
    secrets.push(("registration password".into(), password.into()));
    let page = app.get("/register").await;
    remember_cookies(&page, &mut secrets);
    note_csrf(&page.text().await.expect("body"), &mut secrets);
    let resp = app
        .submit(
            "/register",
            "/register",
            &[
                ("company_name", "天津日志审计科技有限公司"),
                ("uscc", &crate::web::fresh_uscc()),
                ("district", "D-120116"),
                ("contact_name", "李工"),
                ("email", &email),
                ("password", password),
                ("password_confirm", password),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "registered");
    remember_cookies(&resp, &mut secrets);
    let user_id = entity::user::Entity::find()
        .filter(entity::user::Column::Email.eq(email.as_str()))
        .one(&t.db)
        .await
        .expect("query")
        .expect("user")
        .id;
    let verify = crate::web::mail_link(t, user_id, "verification").await;
    secrets.push((
        "verification token".into(),
        verify.split("token=").nth(1).expect("token").to_string(),
    ));
    assert_eq!(app.get(&verify).await.status(), StatusCode::OK, "verified");

    // Out, a wrong password, back in.
    let resp = app.submit("/account", "/logout", &[]).await;
    remember_cookies(&resp, &mut secrets);
    let wrong = "saffron-quarry-nebula-41";
    secrets.push(("wrong password".into(), wrong.into()));
    let resp = app
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", wrong)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "wrong password");
    let resp = app
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", password)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "signed in");
    remember_cookies(&resp, &mut secrets);

    // A password reset by email.
    let resp = app
        .submit("/password/forgot", "/password/forgot", &[("email", &email)])
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "reset requested");
    let reset = crate::web::mail_link(t, user_id, "password_reset").await;
    let reset_token = reset.split("token=").nth(1).expect("token").to_string();
    secrets.push(("reset token".into(), reset_token.clone()));
    let new_password = "harbor-violet-compass-29";
    secrets.push(("new password".into(), new_password.into()));
    let resp = app
        .submit(
            &reset,
            "/password/reset",
            &[
                ("token", &reset_token),
                ("password", new_password),
                ("password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "password reset");
    remember_cookies(&resp, &mut secrets);
    let resp = app
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", new_password)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "signed in again");
    remember_cookies(&resp, &mut secrets);

    // A colleague invited by email sets a password with the link.
    let colleague = format!("colleague-{email}");
    let resp = app
        .submit(
            "/company/members",
            "/company/members/invite",
            &[("name", "周同事"), ("email", &colleague)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "invited");
    let colleague_id = entity::user::Entity::find()
        .filter(entity::user::Column::Email.eq(colleague.as_str()))
        .one(&t.db)
        .await
        .expect("query")
        .expect("invited user")
        .id;
    let invitation = crate::web::mail_link(t, colleague_id, "invitation").await;
    let invitation_token = invitation
        .split("token=")
        .nth(1)
        .expect("token")
        .to_string();
    secrets.push(("invitation token".into(), invitation_token.clone()));
    let colleague_password = "copper-meadow-signal-42";
    secrets.push((
        "invited colleague's password".into(),
        colleague_password.into(),
    ));
    let guest = TestApp {
        base: served.base.clone(),
        client: client(),
    };
    let resp = guest
        .submit(
            &invitation,
            "/invitation",
            &[
                ("token", &invitation_token),
                ("password", colleague_password),
                ("password_confirm", colleague_password),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "invitation accepted");
    remember_cookies(&resp, &mut secrets);

    // A personal API token, created on the web and used.
    let created = app
        .submit(
            "/account/tokens",
            "/account/tokens",
            &[("name", "ERP"), ("expires_days", "30")],
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK, "token created");
    let token = token_on(&created.text().await.expect("body"));
    secrets.push(("API token".into(), token.clone()));
    let api = reqwest::Client::new();
    let resp = api
        .get(format!("{}/api/v1/applications", served.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::OK, "the token works");
    let resp = api
        .post(format!("{}/api/v1/applications", served.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"type": "yqyc", "form": {"ai_field": "robots"}}))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "a draft through the API"
    );
    let forged = format!("zg_{}", "5a".repeat(32));
    secrets.push(("unknown API token".into(), forged.clone()));
    let resp = api
        .get(format!("{}/api/v1/applications", served.base))
        .bearer_auth(&forged)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "an unknown token");
    // A second company registers through the API, with its password in the JSON body.
    let api_password = "ember-glacier-willow-85";
    secrets.push(("API registration password".into(), api_password.into()));
    let resp = api
        .post(format!("{}/api/v1/companies", served.base))
        .json(&serde_json::json!({
            "company_name": "天津接口日志有限公司",
            "uscc": crate::web::fresh_uscc(),
            "district": "D-120116",
            "contact_name": "赵工",
            "email": format!("api-{email}"),
            "password": api_password,
        }))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "registered through the API"
    );

    // The first administrator signs in.
    let admin = TestApp {
        base: served.base.clone(),
        client: client(),
    };
    let resp = admin
        .submit(
            "/login",
            "/login",
            &[("email", "admin@localhost"), ("password", &admin_password)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "admin signed in");
    remember_cookies(&resp, &mut secrets);
    assert_eq!(admin.get("/admin").await.status(), StatusCode::OK);

    // The worker delivers the account mail: two verifications, the reset, the change, the
    // invitation.
    smtp.wait_for(5, std::time::Duration::from_secs(30)).await;

    let log = tokio::task::spawn_blocking(move || served.stop())
        .await
        .expect("join");
    // The log is the real one, at the level asked for: requests, mail and SQL-level detail.
    assert!(log.contains("serving"), "{log}");
    assert!(log.contains(" DEBUG "), "debug level is on: {log}");
    assert!(log.contains("company registered"), "{log}");
    assert!(log.contains("API token created"), "{log}");
    assert!(log.contains("mail sent"), "{log}");
    let sessions = secrets.iter().filter(|(k, _)| k == "session id").count();
    assert!(sessions >= 4, "session ids were issued: {secrets:?}");
    let leaks: Vec<String> = secrets
        .iter()
        .filter(|(_, v)| log.contains(v.as_str()))
        .map(|(what, v)| {
            let line = log.lines().find(|l| l.contains(v.as_str())).unwrap_or("");
            format!("the {what} appears in the log: {line}")
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "{}\n({} lines of log checked)",
        leaks.join("\n"),
        log.lines().count()
    );
}
db_test!(
    no_secrets_in_logs,
    a_realistic_run_logs_no_password_token_or_session_id
);
