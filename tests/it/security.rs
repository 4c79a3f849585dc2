//! The security sweep: every kind of response carries the security headers and every
//! cookie its flags; the server's own log (the real binary, at debug level) never shows a
//! password, token or session id that a realistic run used.

use std::collections::BTreeSet;

use entity::enums::OrgRole;
use reqwest::{StatusCode, header};
use sea_orm::EntityTrait;

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
