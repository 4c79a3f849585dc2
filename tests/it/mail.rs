//! Mail delivery over real SMTP conversations: a small SMTP server on loopback (below)
//! receives what the worker sends, and can refuse (4xx, 5xx), hang after DATA, answer late, or be down.
//! Every test runs on SQLite and on PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use entity::enums::{CompanyRole, OutboxStatus};
use entity::{company_member, outbox, user};
use futures::future::join_all;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use uuid::Uuid;
use zhigang::ids::{ApplicationId, CompanyId, UserId};
use zhigang::mail::Worker;
use zhigang::settings::Settings;
use zhigang::store;
use zhigang::workflow::engine::{Action, ItemKind, ReturnItem};

use crate::db_test;
use crate::helpers::*;

// ---------------------------------------------------------------------------------------
// A real SMTP server, small enough to read: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET,
// NOOP, QUIT.

/// How the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Accepts every message.
    Accept,
    /// Answers the end of DATA with this reply (e.g. `451 4.3.0 try later`), keeping nothing.
    RefuseData(String),
    /// Keeps the message after DATA but never answers: the client is stuck until it gives
    /// up or dies — the moment a crash would lose the "sent" mark.
    HangAfterData,
    /// Keeps the message after DATA and accepts it after this long.
    DelayData(Duration),
}

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The user who authenticated, if any.
    pub auth_user: Option<String>,
    /// The message as transmitted (dot-unstuffed).
    pub raw: Vec<u8>,
}

impl Received {
    fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.raw)
            .expect("a parseable message")
    }

    /// The Message-ID without angle brackets.
    pub fn message_id(&self) -> String {
        self.parsed().message_id().expect("Message-ID").to_string()
    }

    /// The decoded subject.
    pub fn subject(&self) -> String {
        self.parsed().subject().expect("Subject").to_string()
    }

    /// The decoded plain-text part.
    pub fn text(&self) -> String {
        self.parsed().body_text(0).expect("text part").to_string()
    }

    /// The decoded HTML part.
    pub fn html(&self) -> String {
        self.parsed().body_html(0).expect("html part").to_string()
    }

    /// The links of the HTML part (`href="…"`, entities decoded).
    pub fn links(&self) -> Vec<String> {
        let html = self.html();
        html.split("href=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            // The entities handlebars writes (it escapes `=` too).
            .map(|s| {
                s.replace("&#x3D;", "=")
                    .replace("&#x27;", "'")
                    .replace("&quot;", "\"")
                    .replace("&amp;", "&")
            })
            .collect()
    }
}

#[derive(Default)]
struct ServerState {
    mode: Option<Mode>,
    received: Vec<Received>,
    /// `(user, password)` required when set.
    credentials: Option<(String, String)>,
    /// Connections accepted so far.
    connections: usize,
    /// A recipient whose messages are accepted only after this long.
    slow: Option<(String, Duration)>,
}

/// The server; `stop` takes it down (listener and connections closed), `start` brings it
/// back on the same port.
pub struct SmtpServer {
    addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpServer {
    /// A running server on a free loopback port.
    pub async fn start_new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = Self {
            addr,
            state: Arc::new(Mutex::new(ServerState {
                mode: Some(Mode::Accept),
                ..ServerState::default()
            })),
            task: Mutex::new(None),
        };
        server.serve(listener);
        server
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let handle = tokio::spawn(async move {
            // Owned here, so aborting this task closes every connection too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        state.lock().expect("lock").connections += 1;
                        conns.spawn(session(stream, state.clone()));
                    }
                    Err(_) => return,
                }
            }
        });
        *self.task.lock().expect("lock") = Some(handle);
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Takes the server down: the port refuses connections, open ones are cut.
    pub async fn stop(&self) {
        let task = self.task.lock().expect("lock").take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }

    /// Brings the server back on the same port.
    pub async fn start(&self) {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(self.addr).expect("rebind the same port");
        let listener = socket.listen(128).expect("listen");
        self.serve(listener);
    }

    /// Sets how the server answers from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().expect("lock").mode = Some(mode);
    }

    /// Requires AUTH PLAIN with these credentials.
    pub fn require_auth(&self, user: &str, password: &str) {
        self.state.lock().expect("lock").credentials = Some((user.into(), password.into()));
    }

    /// Answers messages to `recipient` only after `delay` (each kept on arrival).
    pub fn slow_down(&self, recipient: &str, delay: Duration) {
        self.state.lock().expect("lock").slow = Some((recipient.into(), delay));
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.lock().expect("lock").connections
    }

    /// What arrived so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("lock").received.clone()
    }

    /// Waits until at least `n` messages arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} messages arrived within {within:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

fn angle(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg[start..].find('>').map_or(arg.len(), |i| start + i);
    arg[start..end].to_string()
}

async fn session(stream: TcpStream, state: Arc<Mutex<ServerState>>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    macro_rules! reply {
        ($($arg:tt)*) => {
            if write.write_all(format!($($arg)*).as_bytes()).await.is_err() {
                return;
            }
        };
    }
    reply!("220 test.localhost ESMTP zhigang-test\r\n");
    let mut from = String::new();
    let mut to = Vec::new();
    let mut auth_user = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        match read.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        let needs_auth = state.lock().expect("lock").credentials.clone();
        if upper.starts_with("EHLO") {
            reply!("250-test.localhost\r\n250-8BITMIME\r\n250-AUTH PLAIN\r\n250 SMTPUTF8\r\n");
        } else if upper.starts_with("HELO") {
            reply!("250 test.localhost\r\n");
        } else if upper.starts_with("AUTH PLAIN") {
            let given = text.get(11..).unwrap_or_default().trim().to_string();
            match needs_auth {
                Some((u, p)) if given == base64(format!("\0{u}\0{p}").as_bytes()) => {
                    auth_user = Some(u);
                    reply!("235 2.7.0 authenticated\r\n");
                }
                _ => reply!("535 5.7.8 authentication credentials invalid\r\n"),
            }
        } else if upper.starts_with("MAIL FROM:") {
            if needs_auth.is_some() && auth_user.is_none() {
                reply!("530 5.7.0 authentication required\r\n");
                continue;
            }
            from = angle(&text);
            to.clear();
            reply!("250 2.1.0 ok\r\n");
        } else if upper.starts_with("RCPT TO:") {
            to.push(angle(&text));
            reply!("250 2.1.5 ok\r\n");
        } else if upper == "DATA" {
            reply!("354 end with <CRLF>.<CRLF>\r\n");
            let mut raw = Vec::new();
            loop {
                line.clear();
                match read.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line == b".\r\n" || line == b".\n" {
                    break;
                }
                // Dot-unstuffing (RFC 5321 4.5.2).
                let body: &[u8] = if line.starts_with(b"..") {
                    &line[1..]
                } else {
                    &line
                };
                raw.extend_from_slice(body);
            }
            let message = Received {
                from: from.clone(),
                to: std::mem::take(&mut to),
                auth_user: auth_user.clone(),
                raw,
            };
            let mode = state
                .lock()
                .expect("lock")
                .mode
                .clone()
                .unwrap_or(Mode::Accept);
            let slow = state.lock().expect("lock").slow.clone();
            if let Some((recipient, delay)) = slow
                && message.to.contains(&recipient)
            {
                state.lock().expect("lock").received.push(message);
                tokio::time::sleep(delay).await;
                reply!("250 2.0.0 queued\r\n");
                continue;
            }
            match mode {
                Mode::Accept => {
                    state.lock().expect("lock").received.push(message);
                    reply!("250 2.0.0 queued\r\n");
                }
                Mode::RefuseData(answer) => reply!("{answer}\r\n"),
                Mode::DelayData(delay) => {
                    state.lock().expect("lock").received.push(message);
                    tokio::time::sleep(delay).await;
                    reply!("250 2.0.0 queued\r\n");
                }
                Mode::HangAfterData => {
                    state.lock().expect("lock").received.push(message);
                    std::future::pending::<()>().await;
                }
            }
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            reply!("250 2.0.0 ok\r\n");
        } else if upper == "NOOP" {
            reply!("250 2.0.0 ok\r\n");
        } else if upper == "QUIT" {
            reply!("221 2.0.0 bye\r\n");
            return;
        } else {
            reply!("502 5.5.2 command not recognized\r\n");
        }
    }
}

fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Fixtures.

const BASE_URL: &str = "https://portal.zhigang.test";

/// Settings for a worker talking to `smtp` (or writing files when `None`).
pub(crate) fn settings(smtp: Option<String>, data_dir: &std::path::Path) -> Settings {
    let mut s = Settings::load(Some(std::path::Path::new("/dev/null"))).expect("default settings");
    s.smtp_url = smtp.map(SecretString::from);
    s.data_dir = data_dir.to_path_buf();
    s.base_url = format!("{BASE_URL}/");
    s.mail_from = "智港 <noreply@zhigang.test>".into();
    s.mail_max_attempts = 100;
    s.mail_retry_base_seconds = 1;
    s.mail_lease_seconds = 30;
    s.smtp_timeout_seconds = 10;
    s
}

pub(crate) fn worker(t: &TestDb, smtp: &SmtpServer) -> Worker {
    let dir = std::env::temp_dir();
    Worker::new(t.db.clone(), &settings(Some(smtp.url()), &dir)).expect("worker")
}

pub(crate) async fn set_locale(t: &TestDb, u: UserId, locale: &str) {
    user::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(u.0),
        locale: Set(locale.into()),
        ..Default::default()
    }
    .update(&t.db)
    .await
    .expect("locale");
}

async fn add_member(t: &TestDb, company: CompanyId, name: &str) -> UserId {
    let u = user(&t.db, name).await;
    company_member::ActiveModel {
        id: Set(Uuid::now_v7()),
        company_id: Set(company.0),
        user_id: Set(u.0),
        role: Set(CompanyRole::Member),
        active: Set(true),
        created_at: Set(Utc::now()),
    }
    .insert(&t.db)
    .await
    .expect("member");
    u
}

pub(crate) async fn email_of(t: &TestDb, u: UserId) -> String {
    user::Entity::find_by_id(u.0)
        .one(&t.db)
        .await
        .expect("query")
        .expect("user")
        .email
}

pub(crate) async fn rows(t: &TestDb) -> Vec<outbox::Model> {
    outbox::Entity::find()
        .order_by_asc(outbox::Column::Id)
        .all(&t.db)
        .await
        .expect("outbox")
}

pub(crate) async fn count_status(t: &TestDb, status: OutboxStatus) -> u64 {
    outbox::Entity::find()
        .filter(outbox::Column::Status.eq(status))
        .count(&t.db)
        .await
        .expect("count")
}

/// Runs batches until nothing is queued (waiting for retries that are due soon).
pub(crate) async fn drain(w: &Worker, t: &TestDb, within: Duration) {
    let deadline = Instant::now() + within;
    while count_status(t, OutboxStatus::Queued).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the outbox did not drain within {within:?}"
        );
        if w.run_once().await.expect("batch") == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Messages by the envelope recipient, each a subject and the message.
fn by_recipient(received: &[Received]) -> BTreeMap<String, Vec<Received>> {
    let mut out: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    for r in received {
        assert_eq!(r.to.len(), 1, "one recipient per message: {:?}", r.to);
        out.entry(r.to[0].clone()).or_default().push(r.clone());
    }
    out
}

// ---------------------------------------------------------------------------------------
// Content: recipients, subject, reference, language, links.

async fn each_event_mails_exactly_its_recipients_in_their_language_with_reference_and_link(
    t: &TestDb,
) {
    let smtp = SmtpServer::start_new().await;
    let w = worker(t, &smtp);
    let (company, zh_applicant) = company(&t.db).await;
    let en_applicant = add_member(t, company, "applicant-en").await;
    set_locale(t, en_applicant, "en").await;
    let zh_reviewer = reviewer(&t.db, "D-120116").await;
    let en_reviewer = reviewer(&t.db, "D-120116").await;
    set_locale(t, en_reviewer, "en").await;
    let miit = reviewer(&t.db, "TJ-MIIT").await;
    let applicants = BTreeSet::from([
        email_of(t, zh_applicant).await,
        email_of(t, en_applicant).await,
    ]);
    let district = BTreeSet::from([
        email_of(t, zh_reviewer).await,
        email_of(t, en_reviewer).await,
    ]);
    let miit_mail = email_of(t, miit).await;

    let app = submitted_yqyc(&t.db, company, zh_applicant, &["rd_funding"]).await;
    let reference = entity::application::Entity::find_by_id(app.0)
        .one(&t.db)
        .await
        .expect("query")
        .and_then(|a| a.reference)
        .expect("a reference number after submission");
    let link = format!("{BASE_URL}/applications/{}", app.0);
    drain(&w, t, Duration::from_secs(30)).await;
    let got = by_recipient(&smtp.received());
    // Submission: both company members, and every reviewer of the district.
    let expected: BTreeSet<String> = applicants.union(&district).cloned().collect();
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let zh = &got[&email_of(t, zh_applicant).await][0];
    assert_eq!(zh.subject(), format!("【智港】申请已提交 {reference}"));
    assert!(
        zh.text().contains(&format!(
            "贵企业(天津智能测试科技有限公司)的“一企一策”申请已成功提交,办件编号 {reference}。"
        )),
        "{}",
        zh.text()
    );
    assert_eq!(zh.links(), vec![link.clone()]);
    assert!(zh.text().contains(&link));
    let en = &got[&email_of(t, en_applicant).await][0];
    assert_eq!(
        en.subject(),
        format!("[Zhigang] Application submitted: {reference}")
    );
    assert!(
        en.text()
            .contains("\"One Enterprise, One Policy\" application"),
        "{}",
        en.text()
    );
    assert_eq!(en.links(), vec![link.clone()]);
    let rev_en = &got[&email_of(t, en_reviewer).await][0];
    assert_eq!(rev_en.subject(), format!("[Zhigang] New task: {reference}"));
    assert!(
        rev_en
            .text()
            .contains("has reached the step \"District pre-review\" of Binhai New Area"),
        "{}",
        rev_en.text()
    );
    let rev_zh = &got[&email_of(t, zh_reviewer).await][0];
    assert_eq!(
        rev_zh.subject(),
        format!("【智港】新的审核任务 {reference}")
    );
    assert!(rev_zh.text().contains("滨海新区"), "{}", rev_zh.text());
    for r in smtp.received() {
        assert_eq!(r.from, "noreply@zhigang.test");
    }

    // Return for revision: both applicants, with every item and the deadline.
    let before = smtp.received().len();
    let task = task_of(&t.db, app, "D-120116").await;
    store::execute(
        &t.db,
        app,
        en_reviewer,
        Action::Return {
            task,
            items: vec![
                ReturnItem {
                    kind: ItemKind::Material,
                    id: "financial_statements".into(),
                    note: "请提供2025年审计报告 <原件扫描>".into(),
                },
                ReturnItem {
                    kind: ItemKind::Section,
                    id: "plan".into(),
                    note: "补充产能 & 就业数据".into(),
                },
            ],
            comment: "请一次补齐".into(),
        },
    )
    .await
    .expect("return");
    drain(&w, t, Duration::from_secs(30)).await;
    let new: Vec<_> = smtp.received().into_iter().skip(before).collect();
    let got = by_recipient(&new);
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), applicants);
    let zh = &got[&email_of(t, zh_applicant).await][0];
    assert_eq!(zh.subject(), format!("【智港】申请需要补正 {reference}"));
    let text = zh.text();
    assert!(
        text.contains("1. 财务报表:请提供2025年审计报告 <原件扫描>"),
        "{text}"
    );
    assert!(text.contains("2. 发展计划:补充产能 & 就业数据"), "{text}");
    assert!(text.contains("补充产能 & 就业数据"), "{text}");
    assert!(text.contains("请一次补齐"), "{text}");
    assert!(
        text.contains("截止日期为 20"),
        "the revision deadline is stated: {text}"
    );
    // HTML escapes what the reviewer typed.
    assert!(zh.html().contains("&lt;原件扫描&gt;"), "{}", zh.html());
    assert!(!zh.html().contains("<原件扫描>"));
    let en = &got[&email_of(t, en_applicant).await][0];
    assert_eq!(
        en.subject(),
        format!("[Zhigang] Revision needed: {reference}")
    );
    assert!(
        en.text().contains("resubmit the application by "),
        "{}",
        en.text()
    );

    // Resubmission, then a rejection with its reason by the next bureau.
    store::execute(&t.db, app, zh_applicant, Action::Resubmit { note: None })
        .await
        .expect("resubmit");
    approve(&t.db, app, "D-120116", zh_reviewer).await;
    let task = task_of(&t.db, app, "TJ-MIIT").await;
    store::execute(
        &t.db,
        app,
        miit,
        Action::Reject {
            task,
            reason: "不符合支持条件".into(),
        },
    )
    .await
    .expect("reject");
    let before = smtp.received().len();
    drain(&w, t, Duration::from_secs(30)).await;
    let new: Vec<_> = smtp.received().into_iter().skip(before).collect();
    let subjects: BTreeSet<(String, String)> =
        new.iter().map(|r| (r.to[0].clone(), r.subject())).collect();
    let zh_mail = email_of(t, zh_applicant).await;
    let en_mail = email_of(t, en_applicant).await;
    let expected: BTreeSet<(String, String)> = [
        (
            zh_mail.clone(),
            format!("【智港】补正材料已收到 {reference}"),
        ),
        (
            en_mail.clone(),
            format!("[Zhigang] Revision received: {reference}"),
        ),
        (
            miit_mail.clone(),
            format!("【智港】新的审核任务 {reference}"),
        ),
        (zh_mail.clone(), format!("【智港】申请未通过 {reference}")),
        (
            en_mail.clone(),
            format!("[Zhigang] Application not approved: {reference}"),
        ),
    ]
    .into();
    let task_again: BTreeSet<_> = district.iter().map(|d| d.to_string()).collect();
    let without_district: BTreeSet<_> = subjects
        .iter()
        .filter(|(to, _)| !task_again.contains(to))
        .cloned()
        .collect();
    assert_eq!(without_district, expected);
    let rejected = new
        .iter()
        .find(|r| r.to[0] == zh_mail && r.subject().contains("未通过"))
        .expect("rejection");
    assert!(
        rejected.text().contains("理由:不符合支持条件"),
        "{}",
        rejected.text()
    );

    // Every row is sent, once, under its own Message-ID.
    let all = rows(t).await;
    assert!(
        all.iter()
            .all(|r| r.status == OutboxStatus::Sent && r.sent_at.is_some())
    );
    let ids: Vec<String> = smtp.received().iter().map(Received::message_id).collect();
    let row_ids: BTreeSet<String> = all.iter().map(|r| r.message_id.clone()).collect();
    assert_eq!(ids.len(), row_ids.len());
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), row_ids);
}
db_test!(
    event_mails,
    each_event_mails_exactly_its_recipients_in_their_language_with_reference_and_link
);

// ---------------------------------------------------------------------------------------
// Failures.

/// How many transitions the "server down" test makes (`ZHIGANG_TEST_MAIL_TRANSITIONS`).
fn transitions() -> usize {
    std::env::var("ZHIGANG_TEST_MAIL_TRANSITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

async fn with_the_server_down_during_many_transitions_every_message_arrives_once_after(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    let w = worker(t, &smtp);
    let (company, applicant) = company(&t.db).await;
    let district = reviewer(&t.db, "D-120116").await;
    let app = submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    smtp.stop().await;
    let n = transitions();
    let started = Instant::now();
    for i in 0..n {
        store::execute(
            &t.db,
            app,
            district,
            Action::Comment {
                text: format!("留言 {i}"),
                internal: false,
            },
        )
        .await
        .expect("comment");
        // The worker keeps trying while the server is down.
        if i % 50 == 0 {
            w.run_once().await.expect("batch");
        }
    }
    eprintln!("{n} transitions in {:?}", started.elapsed());
    while w.run_once().await.expect("batch") > 0 {}
    assert_eq!(smtp.received().len(), 0);
    let failed = outbox::Entity::find()
        .filter(outbox::Column::Attempts.gt(0))
        .all(&t.db)
        .await
        .expect("rows");
    assert!(!failed.is_empty());
    assert!(
        failed
            .iter()
            .all(|r| r.status == OutboxStatus::Queued && r.last_error.is_some())
    );
    smtp.start().await;
    drain(&w, t, Duration::from_secs(120)).await;
    let all = rows(t).await;
    assert_eq!(all.len(), n + 2, "n messages plus the submission's two");
    assert!(all.iter().all(|r| r.status == OutboxStatus::Sent));
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for r in smtp.received() {
        *per_id.entry(r.message_id()).or_default() += 1;
    }
    assert_eq!(per_id.len(), all.len(), "every row arrived");
    assert!(per_id.values().all(|c| *c == 1), "none twice");
    let texts: BTreeSet<String> = smtp
        .received()
        .iter()
        .filter(|r| r.subject().contains("审核人员留言"))
        .map(|r| {
            r.text()
                .lines()
                .find(|l| l.starts_with("> "))
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(texts.len(), n, "each message carries its own text");
}
db_test!(
    server_down_during_transitions,
    with_the_server_down_during_many_transitions_every_message_arrives_once_after
);

async fn a_permanent_refusal_makes_the_row_dead_at_once_with_the_error(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    smtp.set_mode(Mode::RefuseData("550 5.1.1 mailbox unavailable".into()));
    let w = worker(t, &smtp);
    let (company, applicant) = company(&t.db).await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    assert_eq!(w.run_once().await.expect("batch"), 1);
    let row = &rows(t).await[0];
    assert_eq!(row.status, OutboxStatus::Dead);
    assert_eq!(row.attempts, 1);
    assert!(row.lease_until.is_none());
    let err = row.last_error.as_deref().expect("last error");
    assert!(
        err.contains("550") && err.contains("mailbox unavailable"),
        "{err}"
    );
    // Nothing is due any more.
    smtp.set_mode(Mode::Accept);
    assert_eq!(w.run_once().await.expect("batch"), 0);
    // The administrator's retry puts it back, with a fresh count.
    assert!(
        zhigang::mail::queue::retry_dead(&t.db, row.id, store::now())
            .await
            .expect("retry")
    );
    assert_eq!(w.run_once().await.expect("batch"), 1);
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(smtp.received()[0].message_id(), row.message_id);
    assert_eq!(rows(t).await[0].status, OutboxStatus::Sent);
}
db_test!(
    permanent_refusal,
    a_permanent_refusal_makes_the_row_dead_at_once_with_the_error
);

async fn a_temporary_refusal_is_retried_later_and_dies_after_the_last_attempt(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    smtp.set_mode(Mode::RefuseData("451 4.3.0 try again later".into()));
    let (company, applicant) = company(&t.db).await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    let mut s = settings(Some(smtp.url()), &std::env::temp_dir());
    s.mail_max_attempts = 3;
    let w = Worker::new(t.db.clone(), &s).expect("worker");
    let before = store::now();
    assert_eq!(w.run_once().await.expect("batch"), 1);
    let row = rows(t).await.remove(0);
    assert_eq!(row.status, OutboxStatus::Queued);
    assert_eq!(row.attempts, 1);
    assert!(
        row.last_error.as_deref().is_some_and(|e| e.contains("451")),
        "{:?}",
        row.last_error
    );
    // base 1 s: the first retry waits 0.5–1 s.
    let wait = row.next_attempt_at - before;
    assert!(
        wait >= chrono::Duration::milliseconds(500) && wait <= chrono::Duration::milliseconds(1500),
        "{wait:?}"
    );
    assert_eq!(w.run_once().await.expect("batch"), 0, "not due yet");
    // The second attempt fails too; the third is the last.
    for attempt in 2..=3 {
        let due = rows(t).await[0].next_attempt_at;
        let now = Utc::now();
        if due > now {
            tokio::time::sleep((due - now).to_std().expect("positive") + Duration::from_millis(20))
                .await;
        }
        assert_eq!(w.run_once().await.expect("batch"), 1, "attempt {attempt}");
    }
    let row = rows(t).await.remove(0);
    assert_eq!(row.status, OutboxStatus::Dead);
    assert_eq!(row.attempts, 3);
    assert_eq!(smtp.received().len(), 0);

    // A second row that fails once and then goes through.
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Queued))
        .col_expr(outbox::Column::Attempts, Expr::value(0))
        .filter(outbox::Column::Id.eq(row.id))
        .exec(&t.db)
        .await
        .expect("requeue");
    assert_eq!(w.run_once().await.expect("batch"), 1);
    smtp.set_mode(Mode::Accept);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(w.run_once().await.expect("batch"), 1);
    let row = rows(t).await.remove(0);
    assert_eq!(row.status, OutboxStatus::Sent);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.last_error, None);
    assert_eq!(smtp.received().len(), 1);
}
db_test!(
    temporary_refusal,
    a_temporary_refusal_is_retried_later_and_dies_after_the_last_attempt
);

async fn the_smtp_url_carries_credentials_and_a_wrong_password_never_reaches_the_log(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    smtp.require_auth("mailer", "s3cr@t pw");
    let (company, applicant) = company(&t.db).await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    let port = smtp.url().rsplit(':').next().expect("port").to_string();
    let wrong = format!("smtp://mailer:wr0ng-pa55word@127.0.0.1:{port}");
    let w =
        Worker::new(t.db.clone(), &settings(Some(wrong), &std::env::temp_dir())).expect("worker");
    assert_eq!(w.run_once().await.expect("batch"), 1);
    let row = rows(t).await.remove(0);
    assert_eq!(row.status, OutboxStatus::Dead, "535 is permanent");
    let err = row.last_error.clone().expect("error");
    assert!(err.contains("535"), "{err}");
    assert!(!err.contains("wr0ng-pa55word"), "{err}");
    assert!(!format!("{w:?}").contains("wr0ng-pa55word"));

    zhigang::mail::queue::retry_dead(&t.db, row.id, store::now())
        .await
        .expect("retry");
    let right = format!("smtp://mailer:s3cr%40t%20pw@127.0.0.1:{port}");
    let w =
        Worker::new(t.db.clone(), &settings(Some(right), &std::env::temp_dir())).expect("worker");
    assert_eq!(w.run_once().await.expect("batch"), 1);
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].auth_user.as_deref(), Some("mailer"));
}
db_test!(
    smtp_credentials,
    the_smtp_url_carries_credentials_and_a_wrong_password_never_reaches_the_log
);

/// Copies the first outbox row `n` times (new ids and Message-IDs), in chunks.
async fn clone_rows(t: &TestDb, n: usize) {
    let template = rows(t).await.remove(0);
    let now = store::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<outbox::ActiveModel> = chunk
            .iter()
            .map(|_| {
                let id = Uuid::now_v7();
                outbox::ActiveModel {
                    id: Set(id),
                    kind: Set(template.kind.clone()),
                    application_id: Set(template.application_id),
                    recipient_user_id: Set(template.recipient_user_id),
                    recipient_email: Set(template.recipient_email.clone()),
                    locale: Set(template.locale.clone()),
                    payload: Set(template.payload.clone()),
                    status: Set(OutboxStatus::Queued),
                    attempts: Set(0),
                    next_attempt_at: Set(now),
                    lease_until: Set(None),
                    last_error: Set(None),
                    message_id: Set(format!("{id}@zhigang")),
                    created_at: Set(now),
                    sent_at: Set(None),
                }
            })
            .collect();
        outbox::Entity::insert_many(batch)
            .exec(&t.db)
            .await
            .expect("insert");
    }
}

/// How many rows the two-worker test drains (`ZHIGANG_TEST_MAIL_ROWS`).
fn drain_rows() -> usize {
    std::env::var("ZHIGANG_TEST_MAIL_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

async fn two_workers_on_separate_pools_drain_thousands_and_send_none_twice(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    let (company, applicant) = company(&t.db).await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    let n = drain_rows();
    clone_rows(t, n).await;
    let total = rows(t).await.len();
    let workers: Vec<Worker> = join_all((0..2).map(|_| async {
        let pool = zhigang::db::connect(&t.url, 10).await.expect("pool");
        Worker::new(pool, &settings(Some(smtp.url()), &std::env::temp_dir())).expect("worker")
    }))
    .await;
    let started = Instant::now();
    let handled: Vec<usize> = join_all(workers.iter().map(|w| async move {
        let mut mine = 0;
        loop {
            match w.run_once().await.expect("batch") {
                0 => break,
                k => mine += k,
            }
        }
        mine
    }))
    .await;
    eprintln!(
        "{total} rows by two workers in {:?}: {handled:?}",
        started.elapsed()
    );
    assert_eq!(
        handled.iter().sum::<usize>(),
        total,
        "each row claimed once"
    );
    assert!(
        handled.iter().all(|h| *h > 0),
        "both workers took part: {handled:?}"
    );
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for r in smtp.received() {
        *per_id.entry(r.message_id()).or_default() += 1;
    }
    assert_eq!(per_id.len(), total);
    let twice: Vec<_> = per_id.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    assert_eq!(count_status(t, OutboxStatus::Sent).await, total as u64);
}
db_test!(
    two_workers_drain,
    two_workers_on_separate_pools_drain_thousands_and_send_none_twice
);

/// How many rows the two-process test drains (`ZHIGANG_TEST_MAIL_ROWS`; CI sets 10000).
fn process_drain_rows() -> usize {
    std::env::var("ZHIGANG_TEST_MAIL_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// A `zhigang worker` process sending as `from`, whose log says only that it started.
fn quiet_worker(
    t: &TestDb,
    smtp: &SmtpServer,
    dir: &std::path::Path,
    from: &str,
) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_zhigang"))
        .arg("worker")
        .env("ZHIGANG_DATABASE_URL", &t.url)
        .env("ZHIGANG_SMTP_URL", smtp.url())
        .env("ZHIGANG_DATA_DIR", dir)
        .env("ZHIGANG_BASE_URL", BASE_URL)
        .env("ZHIGANG_MAIL_FROM", from)
        .env("ZHIGANG_MAIL_LEASE_SECONDS", "60")
        .env("ZHIGANG_SMTP_TIMEOUT_SECONDS", "30")
        .env("ZHIGANG_DB_MAX_CONNECTIONS", "10")
        .env(
            "ZHIGANG_LOG",
            "warn,zhigang::mail=info,zhigang::mail::worker=warn",
        )
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start zhigang worker")
}

/// Waits (at most two minutes) for the worker's "started" line; its log is drained in the
/// background all along (a full pipe would block the process).
fn wait_started(child: &mut std::process::Child) {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::spawn(move || {
        let mut waiting = Some(tx);
        for line in std::io::BufReader::new(stderr).lines() {
            match line {
                Ok(line) if waiting.is_some() && line.contains("mail worker started") => {
                    let _ = waiting.take().map(|tx| tx.send(Ok(())));
                }
                Ok(line) => eprintln!("worker: {line}"),
                Err(e) => {
                    let _ =
                        waiting.map(|tx| tx.send(Err(format!("reading the worker's log: {e}"))));
                    return;
                }
            }
        }
        let _ = waiting.map(|tx| tx.send(Err("the worker exited before it started".into())));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("the worker did not start within 120 s"),
    }
}

async fn two_worker_processes_on_one_postgresql_deliver_every_message_exactly_once(t: &TestDb) {
    if t.backend == Backend::Sqlite {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "NOTE: two_worker_processes runs on PostgreSQL only: a single-file SQLite \
             database is for one instance, so there is no second process to test."
        );
        return;
    }
    let n = process_drain_rows();
    let smtp = SmtpServer::start_new().await;
    let (company, applicant) = company(&t.db).await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    let existing = rows(t).await.len();
    // Both processes first, idle; then the rows, in one transaction, so both find work.
    let dirs = [
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    ];
    let senders = ["one <w1@zhigang.test>", "two <w2@zhigang.test>"];
    let mut children: Vec<std::process::Child> = dirs
        .iter()
        .zip(senders)
        .map(|(d, from)| quiet_worker(t, &smtp, d.path(), from))
        .collect();
    for c in &mut children {
        wait_started(c);
    }
    let template = rows(t).await.remove(0);
    // Everything already there is sent first; then the clones.
    let txn = t.db.begin().await.expect("begin");
    let now = store::now();
    for chunk in (0..n.saturating_sub(existing))
        .collect::<Vec<_>>()
        .chunks(500)
    {
        let batch: Vec<outbox::ActiveModel> = chunk
            .iter()
            .map(|_| {
                let id = Uuid::now_v7();
                outbox::ActiveModel {
                    id: Set(id),
                    message_id: Set(format!("{id}@zhigang")),
                    status: Set(OutboxStatus::Queued),
                    attempts: Set(0),
                    next_attempt_at: Set(now),
                    lease_until: Set(None),
                    last_error: Set(None),
                    created_at: Set(now),
                    sent_at: Set(None),
                    ..outbox::ActiveModel::from(template.clone())
                }
            })
            .collect();
        outbox::Entity::insert_many(batch)
            .exec(&txn)
            .await
            .expect("insert");
    }
    txn.commit().await.expect("commit");
    let total = rows(t).await.len();
    let deadline = Instant::now() + Duration::from_secs(120 + (total as u64) / 20);
    loop {
        let sent = count_status(t, OutboxStatus::Sent).await;
        if sent == total as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {sent} of {total} sent by the two processes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for mut c in children {
        c.kill().expect("kill");
        c.wait().expect("reap");
    }
    let received = smtp.received();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_sender: BTreeMap<String, usize> = BTreeMap::new();
    for r in &received {
        *per_id.entry(r.message_id()).or_default() += 1;
        *per_sender.entry(r.from.clone()).or_default() += 1;
    }
    eprintln!("{total} messages by two worker processes: {per_sender:?}");
    let twice: Vec<_> = per_id.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "arrived twice: {twice:?}");
    let expected: BTreeSet<String> = rows(t).await.into_iter().map(|r| r.message_id).collect();
    let arrived: BTreeSet<String> = per_id.keys().cloned().collect();
    assert_eq!(arrived, expected, "every message arrived, by Message-ID");
    assert_eq!(received.len(), total);
    if total >= 2000 {
        // With this many, both processes must have taken part (with a few hundred, the
        // first one awake may drain them all before the other polls).
        assert_eq!(per_sender.len(), 2, "both processes sent: {per_sender:?}");
    }
}
db_test!(
    two_worker_processes,
    two_worker_processes_on_one_postgresql_deliver_every_message_exactly_once
);

fn zhigang_worker(t: &TestDb, smtp: &SmtpServer, dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_zhigang"))
        .arg("worker")
        .env("ZHIGANG_DATABASE_URL", &t.url)
        .env("ZHIGANG_SMTP_URL", smtp.url())
        .env("ZHIGANG_DATA_DIR", dir)
        .env("ZHIGANG_BASE_URL", BASE_URL)
        .env("ZHIGANG_MAIL_LEASE_SECONDS", "60")
        .env("ZHIGANG_SMTP_TIMEOUT_SECONDS", "30")
        .env("ZHIGANG_LOG", "warn")
        .current_dir(dir)
        .spawn()
        .expect("start zhigang worker")
}

async fn a_worker_process_killed_mid_send_resends_only_under_the_same_message_id(t: &TestDb) {
    let dir = tempfile::tempdir().expect("tmp");
    let smtp = SmtpServer::start_new().await;
    let (company, applicant) = company(&t.db).await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    let row = rows(t).await.remove(0);
    smtp.set_mode(Mode::HangAfterData);
    let mut child = zhigang_worker(t, &smtp, dir.path());
    let got = smtp.wait_for(1, Duration::from_secs(60)).await;
    // The server has the message; the worker waits for the answer to DATA. SIGKILL.
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert_eq!(got[0].message_id(), row.message_id);
    let leased = rows(t).await.remove(0);
    assert_eq!(
        leased.status,
        OutboxStatus::Queued,
        "the kill came before the mark"
    );
    assert!(leased.lease_until.is_some_and(|l| l > Utc::now()));
    // Time passes: the lease of the dead worker runs out.
    outbox::Entity::update_many()
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Some(store::now() - chrono::Duration::seconds(1))),
        )
        .filter(outbox::Column::Id.eq(row.id))
        .exec(&t.db)
        .await
        .expect("expire the lease");
    smtp.set_mode(Mode::Accept);
    let mut child = zhigang_worker(t, &smtp, dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    while rows(t).await[0].status != OutboxStatus::Sent {
        assert!(
            Instant::now() < deadline,
            "the restarted worker did not send"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let got = smtp.received();
    assert_eq!(got.len(), 2, "sent again after the crash");
    assert!(
        got.iter().all(|r| r.message_id() == row.message_id),
        "with the same Message-ID"
    );
    assert!(
        got[0].raw == got[1].raw,
        "the very same message, byte for byte: {:?} / {:?}",
        String::from_utf8_lossy(&got[0].raw),
        String::from_utf8_lossy(&got[1].raw)
    );
    assert_eq!(rows(t).await[0].attempts, 2);
}
db_test!(
    worker_killed_mid_send,
    a_worker_process_killed_mid_send_resends_only_under_the_same_message_id
);

async fn a_rolled_back_transaction_and_a_lost_race_mail_nothing(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    let w = worker(t, &smtp);
    let (company, applicant) = company(&t.db).await;
    let district: Vec<UserId> = join_all((0..5).map(|_| reviewer(&t.db, "D-120116"))).await;
    let miit = reviewer(&t.db, "TJ-MIIT").await;
    let app = submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    drain(&w, t, Duration::from_secs(30)).await;
    let before = smtp.received().len();

    // A transaction that wrote an outbox row and rolled back.
    let txn = t.db.begin().await.expect("begin");
    let mut row: outbox::ActiveModel = rows(t).await.remove(0).into();
    let id = Uuid::now_v7();
    row.id = Set(id);
    row.message_id = Set(format!("{id}@zhigang"));
    row.status = Set(OutboxStatus::Queued);
    row.attempts = Set(0);
    row.insert(&txn).await.expect("insert");
    txn.rollback().await.expect("rollback");

    // Ten identical approvals at once: one commits, the others roll back or are refused.
    let task = task_of(&t.db, app, "D-120116").await;
    let results = join_all((0..10).map(|i| {
        store::execute(
            &t.db,
            app,
            district[i % district.len()],
            Action::Approve {
                task,
                opinion: "同意".into(),
            },
        )
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    drain(&w, t, Duration::from_secs(30)).await;
    let new: Vec<_> = smtp.received().into_iter().skip(before).collect();
    assert_eq!(
        new.len(),
        1,
        "one task_arrived for the one MIIT reviewer: {:?}",
        new.iter().map(Received::subject).collect::<Vec<_>>()
    );
    assert_eq!(new[0].to, vec![email_of(t, miit).await]);
    assert!(
        outbox::Entity::find_by_id(id)
            .one(&t.db)
            .await
            .expect("query")
            .is_none()
    );
    let _: ApplicationId = app;
}
db_test!(
    rolled_back_mails_nothing,
    a_rolled_back_transaction_and_a_lost_race_mail_nothing
);

async fn without_an_smtp_url_each_message_is_an_eml_file_under_data_dir_mail(t: &TestDb) {
    let dir = tempfile::tempdir().expect("tmp");
    let w = Worker::new(t.db.clone(), &settings(None, dir.path())).expect("worker");
    let (company, applicant) = company(&t.db).await;
    set_locale(t, applicant, "en").await;
    let app = submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    assert_eq!(w.run_once().await.expect("batch"), 1);
    let files: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
        .expect("mail dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let raw = std::fs::read(&files[0]).expect("read");
    let parsed = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("parse");
    let row = rows(t).await.remove(0);
    assert_eq!(parsed.message_id(), Some(row.message_id.as_str()));
    let reference = row.payload["reference"]
        .as_str()
        .expect("reference")
        .to_string();
    assert_eq!(
        parsed.subject(),
        Some(format!("[Zhigang] Application submitted: {reference}").as_str())
    );
    assert!(
        parsed
            .body_text(0)
            .expect("text")
            .contains(&format!("{BASE_URL}/applications/{}", app.0))
    );
    assert_eq!(row.status, OutboxStatus::Sent);
}
db_test!(
    eml_files_offline,
    without_an_smtp_url_each_message_is_an_eml_file_under_data_dir_mail
);

#[tokio::test]
async fn a_lease_not_longer_than_the_smtp_timeout_is_refused() {
    let t = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let mut s = settings(None, &std::env::temp_dir());
    s.mail_lease_seconds = 30;
    s.smtp_timeout_seconds = 30;
    let err = Worker::new(t.db.clone(), &s).expect_err("refused");
    assert!(err.to_string().contains("mail_lease_seconds"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Timers.

async fn set_due(t: &TestDb, task: zhigang::ids::TaskId, due: chrono::NaiveDate) {
    entity::task::Entity::update_many()
        .col_expr(entity::task::Column::DueDate, Expr::value(due))
        .filter(entity::task::Column::Id.eq(task.0))
        .exec(&t.db)
        .await
        .expect("set due date");
}

async fn a_timer_that_came_due_while_stopped_fires_once_even_with_two_workers(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    let (company, applicant) = company(&t.db).await;
    let holder = reviewer(&t.db, "D-120116").await;
    let admin = member_of(&t.db, "D-120116", entity::enums::OrgRole::OrgAdmin).await;
    let app = submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    let reference = entity::application::Entity::find_by_id(app.0)
        .one(&t.db)
        .await
        .expect("query")
        .and_then(|a| a.reference)
        .expect("reference");
    let w = worker(t, &smtp);
    drain(&w, t, Duration::from_secs(30)).await;
    let before = smtp.received().len();
    let task = task_of(&t.db, app, "D-120116").await;
    let today = zhigang::calendar::local_date(Utc::now());
    // The promised date is today: the worker was not running when the day began.
    set_due(t, task, today).await;
    let workers: Vec<Worker> = join_all((0..2).map(|_| async {
        let pool = zhigang::db::connect(&t.url, 5).await.expect("pool");
        Worker::new(pool, &settings(Some(smtp.url()), &std::env::temp_dir())).expect("worker")
    }))
    .await;
    let fired: usize = join_all(workers.iter().map(|w| w.run_timers_once()))
        .await
        .into_iter()
        .map(|r| r.expect("scan"))
        .sum();
    assert_eq!(fired, 1, "fired once between the two workers");
    assert_eq!(
        w.run_timers_once().await.expect("scan"),
        0,
        "and never again"
    );
    drain(&w, t, Duration::from_secs(30)).await;
    let new: Vec<_> = smtp.received().into_iter().skip(before).collect();
    // The task is open: every reviewer of the district (the holder and the org admin).
    let to: BTreeSet<String> = new.iter().map(|r| r.to[0].clone()).collect();
    assert_eq!(
        to,
        BTreeSet::from([email_of(t, holder).await, email_of(t, admin).await])
    );
    assert!(
        new.iter()
            .all(|r| r.subject() == format!("【智港】任务今日到期 {reference}"))
    );

    // A month overdue: escalated to the org admin only, once.
    let before = smtp.received().len();
    set_due(t, task, today - chrono::Days::new(30)).await;
    assert_eq!(w.run_timers_once().await.expect("scan"), 1);
    assert_eq!(w.run_timers_once().await.expect("scan"), 0);
    drain(&w, t, Duration::from_secs(30)).await;
    let new: Vec<_> = smtp.received().into_iter().skip(before).collect();
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].to, vec![email_of(t, admin).await]);
    assert_eq!(
        new[0].subject(),
        format!("【智港】逾期任务报告 {reference}")
    );
    assert!(new[0].text().contains("个工作日"), "{}", new[0].text());

    // A 补正 deadline one working day away: the applicant is warned, once.
    let before = smtp.received().len();
    store::execute(
        &t.db,
        app,
        holder,
        Action::Return {
            task,
            items: vec![ReturnItem {
                kind: ItemKind::Section,
                id: "plan".into(),
                note: "补充".into(),
            }],
            comment: "请补正".into(),
        },
    )
    .await
    .expect("return");
    let calendar = store::load_calendar(&t.db).await.expect("calendar");
    let soon = calendar.add_working_days(today, 1);
    entity::application::Entity::update_many()
        .col_expr(
            entity::application::Column::RevisionDue,
            Expr::value(Some(soon)),
        )
        .filter(entity::application::Column::Id.eq(app.0))
        .exec(&t.db)
        .await
        .expect("revision due");
    assert_eq!(w.run_timers_once().await.expect("scan"), 1);
    assert_eq!(w.run_timers_once().await.expect("scan"), 0);
    drain(&w, t, Duration::from_secs(30)).await;
    let new: Vec<_> = smtp.received().into_iter().skip(before).collect();
    let warning: Vec<_> = new
        .iter()
        .filter(|r| r.subject().contains("补正即将到期"))
        .collect();
    assert_eq!(warning.len(), 1);
    assert_eq!(warning[0].to, vec![email_of(t, applicant).await]);
    assert!(
        warning[0]
            .text()
            .contains(&zhigang::mail::compose::format_date(
                zhigang::mail::render::Lang::Zh,
                soon
            ))
    );
}
db_test!(
    timers_fire_once,
    a_timer_that_came_due_while_stopped_fires_once_even_with_two_workers
);

/// Account emails carry their own link (with its token) into the portal, not the home page.
async fn an_account_email_links_to_its_token_page(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    let dir = tempfile::tempdir().expect("tmp");
    let w = Worker::new(t.db.clone(), &settings(Some(smtp.url()), dir.path())).expect("worker");
    let (_company, applicant) = company(&t.db).await;
    let email = email_of(t, applicant).await;
    zhigang::accounts::request_password_reset(&t.db, &email, &format!("{BASE_URL}/"))
        .await
        .expect("reset requested");
    drain(&w, t, Duration::from_secs(20)).await;
    let got = smtp.wait_for(1, Duration::from_secs(10)).await;
    let links = got[0].links();
    assert!(
        links
            .iter()
            .any(|l| l.starts_with(&format!("{BASE_URL}/password/reset?token="))),
        "the reset link: {links:?}"
    );
    assert!(
        got[0].text().contains("/password/reset?token="),
        "in the text part too"
    );
}
db_test!(account_mail_link, an_account_email_links_to_its_token_page);

// ---------------------------------------------------------------------------------------
// Throughput: connections kept open with TCP_NODELAY, and the delivery pipeline.

fn plain_message(i: usize) -> lettre::Message {
    lettre::Message::builder()
        .from("智港 <noreply@zhigang.test>".parse().expect("from"))
        .to(format!("r{i}@example.com").parse().expect("to"))
        .subject(format!("message {i}"))
        .body("一行文字 — a line of text\r\n".repeat(100))
        .expect("message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_message_after_message_without_waiting_for_delayed_acks() {
    let smtp = SmtpServer::start_new().await;
    let transport =
        zhigang::mail::Transport::smtp(&smtp.url(), Duration::from_secs(5), 1).expect("transport");
    // The first message opens the connection.
    transport.send(plain_message(0)).await.expect("first send");
    let n = 25;
    let started = Instant::now();
    for i in 1..=n {
        transport.send(plain_message(i)).await.expect("send");
    }
    let elapsed = started.elapsed();
    assert_eq!(smtp.received().len(), n + 1);
    assert_eq!(smtp.connections(), 1, "the connection is reused");
    // Without TCP_NODELAY the final "<CRLF>.<CRLF>" of each message waits for the server's
    // delayed ACK of the body (40 ms on Linux): 25 messages would take over a second.
    assert!(
        elapsed < Duration::from_millis(25 * 40 / 2),
        "{n} messages on one connection took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_dropped_is_replaced_without_failing_a_send() {
    let smtp = SmtpServer::start_new().await;
    let transport =
        zhigang::mail::Transport::smtp(&smtp.url(), Duration::from_secs(5), 4).expect("transport");
    transport.send(plain_message(0)).await.expect("first send");
    // The server restarts: the parked connection is dead.
    smtp.stop().await;
    smtp.start().await;
    transport
        .send(plain_message(1))
        .await
        .expect("send after the restart");
    assert_eq!(smtp.received().len(), 2);
    assert_eq!(smtp.connections(), 2);
}

async fn the_pipeline_sends_and_records_the_others_while_one_message_is_slow(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    let (company, applicant) = company(&t.db).await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    let n = 150;
    clone_rows(t, n).await;
    let total = rows(t).await.len();
    // The first row in claim order goes to a recipient the server answers slowly.
    let slow = rows(t).await.remove(0);
    outbox::Entity::update_many()
        .col_expr(
            outbox::Column::RecipientEmail,
            Expr::value("slow@example.com"),
        )
        .filter(outbox::Column::Id.eq(slow.id))
        .exec(&t.db)
        .await
        .expect("slow recipient");
    smtp.slow_down("slow@example.com", Duration::from_secs(6));
    let w = worker(t, &smtp);
    let drain = tokio::spawn({
        let w = w.clone();
        async move { w.drain().await }
    });
    // Everything else arrives while the slow message is still in flight…
    smtp.wait_for(total, Duration::from_secs(5)).await;
    // …and is recorded as sent meanwhile, the slow row still leased.
    let deadline = Instant::now() + Duration::from_secs(3);
    while count_status(t, OutboxStatus::Sent).await < (total - 1) as u64 {
        assert!(
            Instant::now() < deadline,
            "the finished sends were not recorded while one was in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !drain.is_finished(),
        "the slow message should still be in flight"
    );
    let row = outbox::Entity::find_by_id(slow.id)
        .one(&t.db)
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(row.status, OutboxStatus::Queued);
    assert!(row.lease_until.is_some());
    assert_eq!(drain.await.expect("join").expect("drain"), total);
    assert_eq!(count_status(t, OutboxStatus::Sent).await, total as u64);
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for r in smtp.received() {
        *per_id.entry(r.message_id()).or_default() += 1;
    }
    assert_eq!(per_id.len(), total);
    assert!(per_id.values().all(|c| *c == 1), "none twice");
    assert!(
        smtp.connections() <= 16,
        "at most 16 connections: {}",
        smtp.connections()
    );
}
db_test!(
    pipeline_slow_message,
    the_pipeline_sends_and_records_the_others_while_one_message_is_slow
);

async fn a_batched_record_leaves_a_row_whose_lease_was_taken_over_alone(t: &TestDb) {
    let smtp = SmtpServer::start_new().await;
    let (company, applicant) = company(&t.db).await;
    submitted_yqyc(&t.db, company, applicant, &["rd_funding"]).await;
    clone_rows(t, 4).await;
    let total = rows(t).await.len();
    smtp.set_mode(Mode::DelayData(Duration::from_millis(1500)));
    let w = worker(t, &smtp);
    let batch = tokio::spawn({
        let w = w.clone();
        async move { w.run_once().await }
    });
    // All are in DATA; meanwhile another worker takes one of them over (as if its
    // lease had run out).
    smtp.wait_for(total, Duration::from_secs(10)).await;
    let taken = rows(t).await.remove(2);
    let theirs = store::now() + chrono::Duration::hours(1);
    outbox::Entity::update_many()
        .col_expr(outbox::Column::LeaseUntil, Expr::value(Some(theirs)))
        .filter(outbox::Column::Id.eq(taken.id))
        .exec(&t.db)
        .await
        .expect("take over");
    assert_eq!(batch.await.expect("join").expect("batch"), total);
    for r in rows(t).await {
        if r.id == taken.id {
            assert_eq!(
                r.status,
                OutboxStatus::Queued,
                "not marked by the old lease"
            );
            assert_eq!(r.lease_until, Some(theirs));
            assert_eq!(r.sent_at, None);
        } else {
            assert_eq!(r.status, OutboxStatus::Sent);
            assert!(r.lease_until.is_none() && r.sent_at.is_some());
        }
    }
}
db_test!(
    batched_record_lease,
    a_batched_record_leaves_a_row_whose_lease_was_taken_over_alone
);

/// Statements a connection ran: (SQL, with the values bound as placeholders).
#[derive(Clone, Default)]
struct Statements(Arc<Mutex<Vec<String>>>);

impl Statements {
    /// A connection to the test database that records each statement it runs here.
    fn on(t: &TestDb) -> (Self, sea_orm::DatabaseConnection) {
        let seen = Self::default();
        let mut db = t.db.clone();
        let log = seen.0.clone();
        db.set_metric_callback(move |info| {
            if let Ok(mut l) = log.lock() {
                l.push(info.statement.sql.clone());
            }
        });
        (seen, db)
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("statements"))
    }
}

/// The reads composing a message and applying the recipient's preferences make (every
/// table but the outbox and the configuration).
fn compose_reads(statements: &[String]) -> usize {
    const TABLES: &[&str] = &[
        "users",
        "applications",
        "companies",
        "company_members",
        "tasks",
        "org_memberships",
        "notification_preferences",
    ];
    statements
        .iter()
        .filter(|s| {
            s.trim_start().to_ascii_uppercase().starts_with("SELECT")
                && TABLES.iter().any(|t| s.contains(&format!("FROM \"{t}\"")))
        })
        .count()
}

/// The claims among `statements`.
fn claims(statements: &[String]) -> usize {
    statements
        .iter()
        .filter(|s| s.contains("SET lease_until = ") && s.contains("attempts + 1"))
        .count()
}

/// One claim mixing two companies' applications, applicants and reviewers, both languages
/// and an account email without an application is composed from reads made once for the
/// whole claim, and each message still carries its own recipient's name, its own
/// application's reference, company, link and organization, in its recipient's language.
async fn a_claim_mixing_applications_languages_and_account_mail_composes_each_row_from_its_own_data(
    t: &TestDb,
) {
    let smtp = SmtpServer::start_new().await;
    let (company_a, a_zh) = company(&t.db).await;
    let a_en = add_member(t, company_a, "applicant-a-en").await;
    set_locale(t, a_en, "en").await;
    let (company_b, b_en) = company(&t.db).await;
    set_locale(t, b_en, "en").await;
    let name_b = "天津第二样本机器人有限公司";
    entity::company::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(company_b.0),
        name: Set(name_b.into()),
        ..Default::default()
    }
    .update(&t.db)
    .await
    .expect("rename company");
    user::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(b_en.0),
        name: Set("applicant-b-en".into()),
        ..Default::default()
    }
    .update(&t.db)
    .await
    .expect("rename user");
    let name_a = "天津智能测试科技有限公司";
    let r_zh = reviewer(&t.db, "D-120116").await;
    let r_en = reviewer(&t.db, "D-120116").await;
    set_locale(t, r_en, "en").await;
    let app_a = submitted_yqyc(&t.db, company_a, a_zh, &["rd_funding"]).await;
    let app_b = submitted_yqyc(&t.db, company_b, b_en, &["rd_funding"]).await;
    let a_zh_mail = email_of(t, a_zh).await;
    zhigang::accounts::request_password_reset(&t.db, &a_zh_mail, &format!("{BASE_URL}/"))
        .await
        .expect("reset requested");
    let total = rows(t).await.len();
    assert_eq!(total, 8, "4 + 3 submission emails and one account email");

    let (statements, db) = Statements::on(t);
    let w = Worker::new(db, &settings(Some(smtp.url()), &std::env::temp_dir())).expect("worker");
    assert_eq!(w.run_once().await.expect("batch"), total, "one claim");
    let ran = statements.take();
    assert_eq!(claims(&ran), 1, "{ran:#?}");
    let reads = compose_reads(&ran);
    eprintln!(
        "{total} rows in one claim: {reads} reads to compose, {} statements in all",
        ran.len()
    );
    assert!(reads <= 8, "{reads} reads for one claim: {ran:#?}");
    assert_eq!(count_status(t, OutboxStatus::Sent).await, total as u64);

    let reference = |app: ApplicationId| {
        let db = t.db.clone();
        async move {
            entity::application::Entity::find_by_id(app.0)
                .one(&db)
                .await
                .expect("query")
                .and_then(|a| a.reference)
                .expect("reference")
        }
    };
    let apps = [
        (app_a, reference(app_a).await, name_a, name_b),
        (app_b, reference(app_b).await, name_b, name_a),
    ];
    // (recipient, name, English, the applications they hear about)
    let who = [
        (a_zh, "applicant", false, vec![0]),
        (a_en, "applicant-a-en", true, vec![0]),
        (b_en, "applicant-b-en", true, vec![1]),
        (r_zh, "D-120116-Reviewer", false, vec![0, 1]),
        (r_en, "D-120116-Reviewer", true, vec![0, 1]),
    ];
    let got = by_recipient(&smtp.received());
    assert_eq!(got.len(), who.len());
    for (u, name, en, about) in &who {
        let mail = &got[&email_of(t, *u).await];
        let mut expected = about.len();
        if *u == a_zh {
            // The account email: no application, its own link, the recipient's name.
            let reset = mail
                .iter()
                .find(|m| {
                    m.links()
                        .iter()
                        .any(|l| l.contains("/password/reset?token="))
                })
                .expect("the reset email");
            assert!(
                reset.text().starts_with(&format!("{name},您好")),
                "{}",
                reset.text()
            );
            assert!(!reset.text().contains(name_a) && !reset.text().contains(name_b));
            expected += 1;
        }
        assert_eq!(mail.len(), expected, "{name}: {mail:?}");
        for i in about {
            let (app, reference, company, other) = &apps[*i];
            let m = mail
                .iter()
                .find(|m| m.subject().contains(reference.as_str()))
                .unwrap_or_else(|| panic!("{name}: no email about {reference}"));
            let text = m.text();
            let greeting = if *en {
                format!("Dear {name},")
            } else {
                format!("{name},您好")
            };
            assert!(text.starts_with(&greeting), "{text}");
            assert_eq!(
                m.links(),
                vec![format!("{BASE_URL}/applications/{}", app.0)]
            );
            assert!(
                text.contains(company) && !text.contains(other),
                "{name} about {reference}: {text}"
            );
            let subject = m.subject();
            if *u == r_zh || *u == r_en {
                if *en {
                    assert!(subject.starts_with("[Zhigang] New task"), "{subject}");
                    assert!(
                        text.contains("\"District pre-review\" of Binhai New Area"),
                        "{text}"
                    );
                } else {
                    assert!(subject.starts_with("【智港】新的审核任务"), "{subject}");
                    assert!(text.contains("滨海新区"), "{text}");
                }
            } else if *en {
                assert!(
                    subject.starts_with("[Zhigang] Application submitted"),
                    "{subject}"
                );
            } else {
                assert!(subject.starts_with("【智港】申请已提交"), "{subject}");
            }
        }
    }

    // Many rows: the reads stay a constant few per claim, not some per message.
    clone_rows(t, 200).await;
    let queued = count_status(t, OutboxStatus::Queued).await as usize;
    assert_eq!(w.drain().await.expect("drain"), queued);
    let ran = statements.take();
    let reads = compose_reads(&ran);
    eprintln!(
        "{queued} rows in {} claims: {reads} reads to compose, {} statements in all ({:.2} per message)",
        claims(&ran),
        ran.len(),
        ran.len() as f64 / queued as f64
    );
    assert!(
        reads <= 8 * claims(&ran),
        "{reads} reads in {} claims",
        claims(&ran)
    );
    assert_eq!(
        count_status(t, OutboxStatus::Sent).await,
        (total + queued) as u64
    );
}
db_test!(
    mixed_claim,
    a_claim_mixing_applications_languages_and_account_mail_composes_each_row_from_its_own_data
);
