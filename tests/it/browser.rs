//! The applicant's journey in a real browser: headless Chromium driven through chromedriver
//! (WebDriver) by fantoccini. Register, confirm the email, sign out and in, file a 一企一策
//! application with every kind of form control and the file inputs, submit, and switch the
//! language of the confirmation page.
//!
//! It runs on SQLite only: what the browser does does not depend on the database, and the
//! same journey runs on both databases over plain HTTP in `filing.rs`.
//!
//! Needs the Debian packages `chromium` and `chromium-driver`. Without them the test is
//! skipped (with a notice on stderr) outside CI and fails in CI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use entity::{outbox, user};
use fantoccini::elements::Element;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use zhigang::startup::Application;

use crate::helpers::{Backend, TestDb, free_port};
use crate::web::{fresh_uscc, settings_for};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long one page may take to show what the test waits for.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

const PASSWORD: &str = "violet-harbour-tractor-58";

/// A tiny but real PDF (magic bytes are what the store checks).
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

const MATERIALS: [&str; 3] = ["business_licence", "financial_statements", "plan_document"];

/// Whether this is a CI run (where nothing may be skipped).
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// chromedriver, started in its own process group so that the Chromium it launches can be
/// ended with it. Dropping the guard (also while unwinding from a failed assertion) kills
/// the whole group and removes the browser profile.
struct Chromedriver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Chromedriver {
    async fn start() -> Self {
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let profile = tempfile::tempdir().expect("a browser profile directory");
            let child = {
                use std::os::unix::process::CommandExt;
                Command::new(CHROMEDRIVER)
                    .arg(format!("--port={port}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .expect("start chromedriver")
            };
            let mut driver = Self {
                child,
                url: format!("http://127.0.0.1:{port}"),
                profile,
            };
            match driver.wait_until_ready().await {
                Ok(()) => return driver,
                Err(e) => last_error = e,
            }
        }
        panic!("chromedriver did not start: {last_error}");
    }

    /// Polls `/status` until chromedriver says it is ready (or has exited).
    async fn wait_until_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("chromedriver exited early: {status}"));
            }
            if let Ok(resp) = http.get(format!("{}/status", self.url)).send().await
                && let Ok(body) = resp.json::<serde_json::Value>().await
                && body["value"]["ready"] == json!(true)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no answer on {} within 20 s", self.url));
            }
            // Waiting for a process to listen, not for a page: a short poll is the only way.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A WebDriver session with headless Chromium in a fresh profile, asking for Chinese.
    async fn session(&self) -> Client {
        let mut caps = Capabilities::new();
        caps.insert(
            "goog:chromeOptions".to_string(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", self.profile.path().display()),
                    "--lang=zh-CN",
                ],
                // The portal picks its language from Accept-Language: start in Chinese
                // whatever the machine's locale is.
                "prefs": { "intl.accept_languages": "zh-CN,zh" },
            }),
        );
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        builder
            .connect(&self.url)
            .await
            .expect("a WebDriver session with headless Chromium")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The group id is chromedriver's pid; it cannot be reused before the child is reaped.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The portal on a real port, with `base_url` pointing at it (links in mail must open in
/// the browser).
async fn spawn_portal(t: &TestDb) -> String {
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut settings = settings_for(t, &base);
        settings.listen = format!("127.0.0.1:{port}");
        match Application::with_database(&settings, t.db.clone()).await {
            Ok(app) => {
                tokio::spawn(app.run());
                return base;
            }
            // Someone took the port in between: pick another.
            Err(e) => last_error = e.to_string(),
        }
    }
    panic!("the portal could not listen: {last_error}");
}

/// Waits until `loc` is on the page; on time-out, fails with the URL and the page source.
async fn wait_for(c: &Client, loc: Locator<'_>) -> Element {
    match c.wait().at_most(PAGE_TIMEOUT).for_element(loc).await {
        Ok(e) => e,
        Err(e) => {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let source = c.source().await.unwrap_or_default();
            panic!("waiting for {loc:?}: {e}\nat {url}\npage:\n{source}");
        }
    }
}

async fn click(c: &Client, loc: Locator<'_>) {
    wait_for(c, loc)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {loc:?}: {e}"));
}

/// Types `text` into the text input or textarea with this id, replacing what was there.
async fn type_into(c: &Client, id: &str, text: &str) {
    let field = wait_for(c, Locator::Id(id)).await;
    field
        .clear()
        .await
        .unwrap_or_else(|e| panic!("clear #{id}: {e}"));
    field
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into #{id}: {e}"));
    let value = field.prop("value").await.expect("read the value back");
    assert_eq!(value.as_deref(), Some(text), "#{id} holds what was typed");
}

async fn text_of(c: &Client, loc: Locator<'_>) -> String {
    wait_for(c, loc)
        .await
        .text()
        .await
        .unwrap_or_else(|e| panic!("text of {loc:?}: {e}"))
}

async fn h1_count(c: &Client) -> usize {
    c.find_all(Locator::Css("h1"))
        .await
        .expect("find the headings")
        .len()
}

/// Opens a section from the application page, lets `fill` (not started before) complete
/// its form, saves it, and waits for the application page with the section marked.
async fn section(c: &Client, app: &str, id: &str, fill: impl Future<Output = ()>) {
    let href = format!("/applications/{app}/sections/{id}");
    click(c, Locator::Css(&format!("a[href='{href}']"))).await;
    wait_for(c, Locator::Css(&format!("main form[action='{href}']"))).await;
    fill.await;
    click(
        c,
        Locator::Css(&format!("main form[action='{href}'] button[type='submit']")),
    )
    .await;
    wait_for(c, Locator::Id(&format!("section-{id}-status"))).await;
}

/// Whether `s` looks like `YQYC-YYYY-NNNNNN`.
fn is_yqyc_reference(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3
        && parts[0] == "YQYC"
        && parts[1].len() == 4
        && parts[2].len() == 6
        && parts[1..]
            .iter()
            .all(|p| p.chars().all(|ch| ch.is_ascii_digit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_company_registers_and_files_yqyc_in_headless_chromium() {
    if !(Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()) {
        let message = "browser test — /usr/bin/chromium or /usr/bin/chromedriver not installed \
                       (apt-get install chromium chromium-driver)";
        if ci() {
            panic!("FAILED: {message}; CI never skips");
        }
        // Straight to the process's stderr: `eprintln!` would be captured by the test
        // harness and hidden for a passing test.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
        return;
    }
    // SQLite only: the browser's behaviour does not depend on the database.
    let t = TestDb::new(Backend::Sqlite)
        .await
        .expect("sqlite is always available");
    let base = spawn_portal(&t).await;
    let driver = Chromedriver::start().await;
    let c = driver.session().await;

    // Register the company through the form.
    c.goto(&format!("{base}/register"))
        .await
        .expect("open /register");
    wait_for(&c, Locator::Css("main form[action='/register']")).await;
    wait_for(&c, Locator::Css("html[lang='zh-CN']")).await;
    let email = format!(
        "browser-{}@example.cn",
        rand::random_range(0..1_000_000_000u32)
    );
    type_into(&c, "company_name", "天津智能机器人有限公司").await;
    type_into(&c, "uscc", &fresh_uscc()).await;
    wait_for(&c, Locator::Id("district"))
        .await
        .select_by_value("D-120116")
        .await
        .expect("choose the district");
    type_into(&c, "contact_name", "王经理").await;
    type_into(&c, "email", &email).await;
    type_into(&c, "password", PASSWORD).await;
    type_into(&c, "password_confirm", PASSWORD).await;
    click(
        &c,
        Locator::Css("main form[action='/register'] button[type='submit']"),
    )
    .await;
    // Signed in on the account page, not verified yet.
    wait_for(&c, Locator::Css("header form[action='/logout']")).await;
    let warning = text_of(&c, Locator::Css("main .notice-warning")).await;
    assert!(warning.contains("邮箱尚未验证"), "{warning}");

    // The verification link from the outbox, opened in the browser.
    let u = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&t.db)
        .await
        .expect("query users")
        .expect("the user was created");
    let mail = outbox::Entity::find()
        .filter(outbox::Column::RecipientUserId.eq(u.id))
        .filter(outbox::Column::Kind.eq("verification"))
        .one(&t.db)
        .await
        .expect("query the outbox")
        .expect("a verification mail is queued");
    let link = mail.payload["data"]["link"]
        .as_str()
        .expect("the mail has a link")
        .to_string();
    assert!(link.starts_with(&base), "{link} is under {base}");
    c.goto(&link).await.expect("open the verification link");
    wait_for(&c, Locator::XPath("//main//p[contains(., '邮箱已验证')]")).await;

    // Sign out with the header button, and back in through the login form.
    click(
        &c,
        Locator::Css("header form[action='/logout'] button[type='submit']"),
    )
    .await;
    click(&c, Locator::Css("header nav a[href='/login']")).await;
    wait_for(&c, Locator::Css("main form[action='/login']")).await;
    type_into(&c, "email", &email).await;
    type_into(&c, "password", PASSWORD).await;
    click(
        &c,
        Locator::Css("main form[action='/login'] button[type='submit']"),
    )
    .await;
    wait_for(&c, Locator::Css("header form[action='/logout']")).await;
    let heading = text_of(&c, Locator::Css("main h1")).await;
    assert_eq!(heading, "我的账户");
    assert!(
        c.find_all(Locator::Css("main .notice-warning"))
            .await
            .expect("find notices")
            .is_empty(),
        "the email is verified now"
    );

    // Start a 一企一策 application.
    click(&c, Locator::Css("header nav a[href='/applications']")).await;
    click(&c, Locator::Css("main a[href='/applications/new']")).await;
    click(
        &c,
        Locator::XPath(
            "//main//form[input[@name='app_type' and @value='yqyc']]//button[@type='submit']",
        ),
    )
    .await;
    wait_for(&c, Locator::Id("section-company-status")).await;
    let url = c.current_url().await.expect("current URL");
    let app = url
        .path()
        .strip_prefix("/applications/")
        .expect("on the draft's page")
        .to_string();
    assert!(app.parse::<uuid::Uuid>().is_ok(), "a draft id: {url}");

    // Every section: radios, checkboxes, text inputs, a textarea.
    section(&c, &app, "company", async {
        click(&c, Locator::Id("ai_field-robots")).await;
        type_into(&c, "revenue", "120000000").await;
        type_into(&c, "rd_spend", "18000000").await;
        type_into(&c, "headcount", "320").await;
        type_into(&c, "patents", "41").await;
    })
    .await;
    section(&c, &app, "request", async {
        click(&c, Locator::Id("support_requested-rd_funding")).await;
        click(&c, Locator::Id("support_requested-fund_investment")).await;
        type_into(&c, "amount_requested", "5000000").await;
    })
    .await;
    section(&c, &app, "plan", async {
        type_into(
            &c,
            "plan_description",
            "扩大服务机器人产线,建设智能制造示范车间。",
        )
        .await;
    })
    .await;

    // The three materials through the file inputs.
    let files = tempfile::tempdir().expect("a directory for the uploads");
    for m in MATERIALS {
        let path: PathBuf = files.path().join(format!("{m}.pdf"));
        std::fs::write(&path, PDF).expect("write the PDF");
        wait_for(&c, Locator::Id(&format!("file-{m}")))
            .await
            .send_keys(&path.display().to_string())
            .await
            .unwrap_or_else(|e| panic!("choose the file for {m}: {e}"));
        click(
            &c,
            Locator::Css(&format!(
                "main form[action^='/applications/{app}/materials/{m}?'] button[type='submit']"
            )),
        )
        .await;
        // Back on the application page, the file is listed under its material.
        wait_for(
            &c,
            Locator::XPath(&format!(
                "//main//a[contains(@href, '/attachments/') and normalize-space() = '{m}.pdf']"
            )),
        )
        .await;
    }

    // Check the answers, then submit.
    click(
        &c,
        Locator::Css(&format!("main a[href='/applications/{app}/check']")),
    )
    .await;
    let submit_form = format!("main form[action='/applications/{app}/submit']");
    wait_for(&c, Locator::Css(&submit_form)).await;
    let answers = text_of(&c, Locator::Css("main")).await;
    for expected in [
        "智能机器人",
        "研发资金支持",
        "产业基金投资",
        "扩大服务机器人产线",
        "business_licence.pdf",
        "financial_statements.pdf",
        "plan_document.pdf",
    ] {
        assert!(
            answers.contains(expected),
            "the check page shows {expected}: {answers}"
        );
    }
    click(
        &c,
        Locator::Css(&format!("{submit_form} button[type='submit']")),
    )
    .await;

    // The confirmation.
    let reference = text_of(&c, Locator::Css("main strong.reference")).await;
    assert!(
        is_yqyc_reference(&reference),
        "a reference YQYC-YYYY-NNNNNN: {reference:?}"
    );
    let url = c.current_url().await.expect("current URL");
    assert_eq!(url.path(), format!("/applications/{app}/submitted"));
    assert_eq!(h1_count(&c).await, 1, "exactly one h1");
    assert_eq!(text_of(&c, Locator::Css("h1")).await, "申请已提交");

    // The language button in the header shows the same page in English.
    click(
        &c,
        Locator::Css("header form[action='/locale'] button[type='submit']"),
    )
    .await;
    wait_for(&c, Locator::Css("html[lang='en']")).await;
    let url = c.current_url().await.expect("current URL");
    assert_eq!(
        url.path(),
        format!("/applications/{app}/submitted"),
        "back on the same page"
    );
    assert_eq!(h1_count(&c).await, 1, "exactly one h1 in English too");
    assert_eq!(
        text_of(&c, Locator::Css("h1")).await,
        "Application submitted"
    );
    assert_eq!(
        text_of(&c, Locator::Css("main strong.reference")).await,
        reference
    );

    c.close().await.expect("end the browser session");
    drop(driver);
}

/// Logs in through the form as `email`.
async fn log_in(c: &Client, base: &str, email: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.expect("open /login");
    type_into(c, "email", email).await;
    type_into(c, "password", password).await;
    click(
        c,
        Locator::Css("main form[action='/login'] button[type='submit']"),
    )
    .await;
    wait_for(c, Locator::Css("form[action='/logout']")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reviewer_claims_and_approves_while_the_applicant_watches() {
    use entity::enums::OrgRole;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};

    if !(Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()) {
        let message = "reviewer browser test — /usr/bin/chromium or /usr/bin/chromedriver not \
                       installed (apt-get install chromium chromium-driver)";
        if ci() {
            panic!("FAILED: {message}; CI never skips");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
        return;
    }
    let t = TestDb::new(Backend::Sqlite)
        .await
        .expect("sqlite is always available");
    let base = spawn_portal(&t).await;

    // A submitted application, and an applicant who can log in.
    let (company, applicant) = crate::helpers::company(&t.db).await;
    let app = crate::helpers::submitted_yqyc(&t.db, company, applicant, &["talent"]).await;
    let row = user::Entity::find_by_id(applicant.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("applicant");
    let applicant_email = row.email.clone();
    let mut am: user::ActiveModel = row.into();
    am.password_hash = Set(zhigang::passwords::hash_blocking(PASSWORD).expect("hash"));
    am.update(&t.db).await.expect("set the password");
    let reviewer = crate::review::login_user(&t, "D-120116", OrgRole::Reviewer).await;
    let reviewer_email = user::Entity::find_by_id(reviewer.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("reviewer")
        .email;

    // Two browsers, two people.
    let applicant_driver = Chromedriver::start().await;
    let a = applicant_driver.session().await;
    let reviewer_driver = Chromedriver::start().await;
    let r = reviewer_driver.session().await;

    log_in(&a, &base, &applicant_email, PASSWORD).await;
    a.goto(&format!("{base}/applications/{}", app.0))
        .await
        .expect("open the application");
    assert_eq!(text_of(&a, Locator::Css("main .tag")).await, "已提交");

    log_in(&r, &base, &reviewer_email, crate::review::REVIEWER_PASSWORD).await;
    click(&r, Locator::Css("a[href='/inbox']")).await;
    wait_for(&r, Locator::Css("table.inbox")).await;
    click(&r, Locator::Css("table.inbox a[href^='/tasks/']")).await;
    wait_for(&r, Locator::Id("actions-title")).await;
    assert_eq!(h1_count(&r).await, 1);
    click(&r, Locator::Css("form[action$='/claim'] button")).await;
    wait_for(&r, Locator::Css("form[action$='/release']")).await;
    type_into(&r, "opinion", "材料齐全,同意报市工业和信息化委").await;
    click(&r, Locator::Css("form[action$='/approve'] button")).await;
    wait_for(&r, Locator::Css("table.inbox, main p.lead")).await;
    let flash = text_of(&r, Locator::Css("main .notice")).await;
    assert!(flash.contains("已同意"), "the reviewer is told: {flash}");

    // The applicant, logged in elsewhere, sees the new status on reload.
    a.refresh().await.expect("reload");
    wait_for(&a, Locator::Css("main .tag")).await;
    assert_eq!(text_of(&a, Locator::Css("main .tag")).await, "审核中");
    let timeline = text_of(&a, Locator::Css("ol.timeline")).await;
    assert!(
        timeline.contains("已完成"),
        "the district step is done: {timeline}"
    );

    a.close().await.expect("close the applicant's browser");
    r.close().await.expect("close the reviewer's browser");
}
