//! The applicant's journey over HTTP: register, verify, file each type, follow it,
//! answer a return (补正), withdraw; and what another company may not see.

use entity::{outbox, user};
use reqwest::{StatusCode, header, multipart};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;
use zhigang::ids::{ApplicationId, UserId};
use zhigang::store;
use zhigang::workflow::engine::{Action, ItemKind, ReturnItem};

use crate::db_test;
use crate::helpers::*;
use crate::web::{TestApp, csrf_of, fresh_uscc, mail_link, register, spawn_app};

/// A tiny but real PDF (magic bytes are what the store checks).
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

/// Registers a company through the web, confirms the email from the outbox link, and
/// returns the app (logged in) and the user's id.
async fn verified_company(t: &TestDb) -> (TestApp, UserId) {
    verified_company_in(t, &t.data_dir()).await
}

/// A verified company's user logged in to a portal keeping its data under `data_dir`.
async fn verified_company_in(t: &TestDb, data_dir: &std::path::Path) -> (TestApp, UserId) {
    let app = crate::web::spawn_app_in(t, data_dir).await;
    let user = register_verified(t, &app).await;
    (app, user)
}

/// Registers a new company on `app` and follows the verification link from the outbox:
/// the app's client is then that company's verified, logged-in user.
pub async fn register_verified(t: &TestDb, app: &TestApp) -> UserId {
    let email = format!(
        "applicant-{}@example.cn",
        rand::random_range(0..1_000_000_000u32)
    );
    assert_eq!(
        register(app, &fresh_uscc(), &email).await.status(),
        StatusCode::SEE_OTHER
    );
    let u = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&t.db)
        .await
        .expect("query")
        .expect("user");
    let path = mail_link(t, u.id, "verification").await;
    assert_eq!(app.get(&path).await.status(), StatusCode::OK);
    UserId(u.id)
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn new_draft(app: &TestApp, app_type: &str) -> Uuid {
    let resp = app
        .submit(
            "/applications/new",
            "/applications/new",
            &[("app_type", app_type)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let loc = location(&resp);
    loc.trim_start_matches("/applications/")
        .parse()
        .expect("draft id")
}

async fn version_of(t: &TestDb, id: Uuid) -> String {
    entity::application::Entity::find_by_id(id)
        .one(&t.db)
        .await
        .expect("query")
        .expect("app")
        .version
        .to_string()
}

async fn fill(
    t: &TestDb,
    app: &TestApp,
    id: Uuid,
    section: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let version = version_of(t, id).await;
    let mut all: Vec<(&str, &str)> = vec![("version", version.as_str())];
    all.extend_from_slice(fields);
    let page = format!("/applications/{id}/sections/{section}");
    app.submit(&page, &page, &all).await
}

/// Uploads `bytes` as `material` of draft `id` through the application page's form.
pub async fn upload(
    app: &TestApp,
    id: Uuid,
    material: &str,
    bytes: &[u8],
    name: &str,
) -> reqwest::Response {
    let html = app
        .get(&format!("/applications/{id}"))
        .await
        .text()
        .await
        .expect("body");
    let token = csrf_of(&html);
    let part = multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string());
    app.client
        .post(format!(
            "{}/applications/{id}/materials/{material}?_csrf={token}",
            app.base
        ))
        .multipart(multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload")
}

async fn submit(app: &TestApp, id: Uuid) -> reqwest::Response {
    let check = format!("/applications/{id}/check");
    app.submit(&check, &format!("/applications/{id}/submit"), &[])
        .await
}

/// Files one application of `app_type` with the given sections and materials; returns
/// its id and reference.
async fn file(
    t: &TestDb,
    app: &TestApp,
    app_type: &str,
    sections: &[(&str, &[(&str, &str)])],
    materials: &[&str],
) -> (Uuid, String) {
    let id = new_draft(app, app_type).await;
    for (section, fields) in sections {
        let resp = fill(t, app, id, section, fields).await;
        assert_eq!(
            resp.status(),
            StatusCode::SEE_OTHER,
            "section {section}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    for m in materials {
        let resp = upload(app, id, m, PDF, &format!("{m}.pdf")).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "upload {m}");
    }
    let page = app
        .get(&format!("/applications/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains(&format!("/applications/{id}/check")),
        "ready to check: {page}"
    );
    let resp = submit(app, id).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let confirmation = app.get(&location(&resp)).await.text().await.expect("body");
    let prefix = match app_type {
        "yqyc" => "YQYC-",
        "ip_fast_track" => "IPFT-",
        _ => "PTJR-",
    };
    let start = confirmation
        .find(prefix)
        .expect("the confirmation shows the reference");
    let reference = confirmation[start..start + prefix.len() + 11].to_string();
    (id, reference)
}

const YQYC_COMPANY: &[(&str, &str)] = &[
    ("ai_field", "robots"),
    ("revenue", "120,000,000"),
    ("rd_spend", "18000000"),
    ("headcount", "320"),
    ("patents", "41"),
];
const YQYC_REQUEST: &[(&str, &str)] = &[
    ("support_requested", "rd_funding"),
    ("support_requested", "fund_investment"),
    ("amount_requested", "5000000"),
];
const YQYC_PLAN: &[(&str, &str)] = &[("plan_description", "扩大服务机器人产线。")];

async fn a_company_files_each_type_and_follows_it(t: &TestDb) {
    let (app, _) = verified_company(t).await;
    let (yqyc, yqyc_ref) = file(
        t,
        &app,
        "yqyc",
        &[
            ("company", YQYC_COMPANY),
            ("request", YQYC_REQUEST),
            ("plan", YQYC_PLAN),
        ],
        &["business_licence", "financial_statements", "plan_document"],
    )
    .await;
    let (_, ip_ref) = file(
        t,
        &app,
        "ip_fast_track",
        &[
            (
                "service",
                &[
                    ("service_kind", "fast_protection"),
                    ("online_infringement", "true"),
                ],
            ),
            (
                "ip",
                &[
                    ("ip_kind", "invention_patent"),
                    ("ip_number", "CN2026100012345"),
                    ("title", "一种服务机器人"),
                    ("urgency", "竞品仿冒"),
                ],
            ),
        ],
        &["ip_certificate"],
    )
    .await;
    let (_, platform_ref) = file(
        t,
        &app,
        "platform_access",
        &[
            (
                "platform",
                &[
                    ("platform", "P-NSCC-TJ"),
                    ("resources", "gpu_card_hours"),
                    ("gpu_card_hours", "20000"),
                    ("period_start", "2026-12-01"),
                    ("period_end", "2027-05-31"),
                ],
            ),
            (
                "purpose",
                &[
                    ("purpose", "训练视觉大模型"),
                    ("security_commitment", "true"),
                ],
            ),
        ],
        &["business_licence", "security_commitment_letter"],
    )
    .await;
    assert!(
        yqyc_ref.starts_with("YQYC-")
            && ip_ref.starts_with("IPFT-")
            && platform_ref.starts_with("PTJR-")
    );

    let list = app.get("/applications").await.text().await.expect("body");
    for r in [&yqyc_ref, &ip_ref, &platform_ref] {
        assert!(list.contains(r.as_str()), "My applications lists {r}");
    }
    let filtered = app
        .get("/applications?status=approved")
        .await
        .text()
        .await
        .expect("body");
    assert!(
        !filtered.contains(yqyc_ref.as_str()),
        "the status filter applies"
    );

    let page = app
        .get(&format!("/applications/{yqyc}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("区级预审") && page.contains("滨海新区"),
        "the timeline names the step and the district"
    );
    assert!(
        page.contains("部门会签") && page.contains("待办理"),
        "steps still to come"
    );
    assert!(page.contains("提交申请"), "the history");
    assert!(
        page.contains("通知记录") && page.contains("提交回执"),
        "the delivery log lists the receipt mail"
    );

    assert!(
        page.contains("<svg") && page.contains("▶ 当前"),
        "the route diagram marks the current step"
    );
    // The English page after switching.
    let resp = app
        .submit(
            "/applications",
            "/locale",
            &[("lang", "en"), ("next", "/applications")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let page = app
        .get(&format!("/applications/{yqyc}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("District pre-review") && page.contains("Binhai New Area"),
        "{page}"
    );
}
db_test!(filing_each_type, a_company_files_each_type_and_follows_it);

async fn a_section_with_mistakes_comes_back_and_an_unverified_company_cannot_submit(t: &TestDb) {
    let app = spawn_app(t).await;
    let email = format!("x-{}@example.cn", rand::random_range(0..1_000_000_000u32));
    assert_eq!(
        register(&app, &fresh_uscc(), &email).await.status(),
        StatusCode::SEE_OTHER
    );
    let id = new_draft(&app, "yqyc").await;
    let resp = fill(
        t,
        &app,
        id,
        "company",
        &[
            ("ai_field", "robots"),
            ("revenue", "lots"),
            ("headcount", "12"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("body");
    assert!(
        html.contains("href=\"#revenue\"")
            && html.contains("href=\"#rd_spend\"")
            && html.contains("href=\"#patents\"")
    );
    assert!(html.contains("value=\"lots\""), "what was typed is kept");
    assert!(
        html.contains("value=\"robots\" checked"),
        "the choice is kept"
    );

    // A stale version: someone else saved in between.
    let stale = version_of(t, id).await;
    assert_eq!(
        fill(t, &app, id, "plan", YQYC_PLAN).await.status(),
        StatusCode::SEE_OTHER
    );
    let page = format!("/applications/{id}/sections/plan");
    let resp = app
        .submit(
            &page,
            &page,
            &[
                ("version", stale.as_str()),
                ("plan_description", "我的新文字"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(
        resp.text().await.expect("body").contains("我的新文字"),
        "the typed text survives a conflict"
    );

    for (s, f) in [("company", YQYC_COMPANY), ("request", YQYC_REQUEST)] {
        assert_eq!(
            fill(t, &app, id, s, f).await.status(),
            StatusCode::SEE_OTHER
        );
    }
    for m in ["business_licence", "financial_statements", "plan_document"] {
        assert_eq!(
            upload(&app, id, m, PDF, "x.pdf").await.status(),
            StatusCode::SEE_OTHER
        );
    }
    let resp = submit(&app, id).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("请先点击邮件中的链接验证邮箱")
    );

    // Uploads are checked by content, and limited in size.
    let resp = upload(
        &app,
        id,
        "plan_document",
        b"<html><script>alert(1)</script></html>",
        "plan.pdf",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let page = app
        .get(&format!("/applications/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("文件类型不支持"), "{page}");
    let mut big = PDF.to_vec();
    big.resize(2 * 1024 * 1024, b' ');
    let resp = upload(&app, id, "plan_document", &big, "big.pdf").await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
db_test!(
    section_mistakes,
    a_section_with_mistakes_comes_back_and_an_unverified_company_cannot_submit
);

async fn a_returned_application_opens_only_the_flagged_parts_and_resumes_where_it_was(t: &TestDb) {
    let (app, _) = verified_company(t).await;
    let (id, _) = file(
        t,
        &app,
        "yqyc",
        &[
            ("company", YQYC_COMPANY),
            ("request", YQYC_REQUEST),
            ("plan", YQYC_PLAN),
        ],
        &["business_licence", "financial_statements", "plan_document"],
    )
    .await;
    let district = reviewer(&t.db, "D-120116").await;
    let task = task_of(&t.db, ApplicationId(id), "D-120116").await;
    store::execute(
        &t.db,
        ApplicationId(id),
        district,
        Action::Return {
            task,
            items: vec![
                ReturnItem {
                    kind: ItemKind::Section,
                    id: "plan".into(),
                    note: "请补充产能与投资计划".into(),
                },
                ReturnItem {
                    kind: ItemKind::Material,
                    id: "financial_statements".into(),
                    note: "需经审计".into(),
                },
            ],
            comment: "请一次性补正".into(),
        },
    )
    .await
    .expect("return");
    let page = app
        .get(&format!("/applications/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("请补充产能与投资计划") && page.contains("需经审计"),
        "every item at once"
    );
    let plan = fill(
        t,
        &app,
        id,
        "plan",
        &[("plan_description", "新增产能计划与投资明细。")],
    )
    .await;
    assert_eq!(plan.status(), StatusCode::SEE_OTHER);
    let company = fill(t, &app, id, "company", YQYC_COMPANY).await;
    assert_eq!(
        company.status(),
        StatusCode::FORBIDDEN,
        "an unflagged section stays locked"
    );
    let locked = upload(&app, id, "business_licence", PDF, "x.pdf").await;
    assert_eq!(
        locked.status(),
        StatusCode::FORBIDDEN,
        "an unflagged material stays locked"
    );
    assert_eq!(
        upload(&app, id, "financial_statements", PDF, "audited.pdf")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let resp = submit(&app, id).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let live = live_tasks(&t.db, ApplicationId(id)).await;
    assert_eq!(live.len(), 1);
    assert_eq!(
        live[0].0, "D-120116",
        "resumes at the step that returned it"
    );
}
db_test!(
    return_and_resubmit,
    a_returned_application_opens_only_the_flagged_parts_and_resumes_where_it_was
);

async fn another_companys_user_gets_404_on_the_application_and_its_attachments(t: &TestDb) {
    let (a, _) = verified_company(t).await;
    let (id, _) = file(
        t,
        &a,
        "ip_fast_track",
        &[
            ("service", &[("service_kind", "key_guidance")]),
            (
                "ip",
                &[
                    ("ip_kind", "trademark"),
                    ("ip_number", "TM-1"),
                    ("title", "智港"),
                    ("urgency", "展会"),
                ],
            ),
        ],
        &["ip_certificate"],
    )
    .await;
    let attachment = entity::attachment::Entity::find()
        .filter(entity::attachment::Column::ApplicationId.eq(id))
        .one(&t.db)
        .await
        .expect("query")
        .expect("attachment");
    let own = a
        .get(&format!("/applications/{id}/attachments/{}", attachment.id))
        .await;
    assert_eq!(own.status(), StatusCode::OK);
    let disposition = own
        .headers()
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        disposition.starts_with("attachment;"),
        "always a download: {disposition}"
    );
    assert_eq!(own.bytes().await.expect("bytes").as_ref(), PDF);

    let (b, _) = verified_company(t).await;
    for path in [
        format!("/applications/{id}"),
        format!("/applications/{id}/check"),
        format!("/applications/{id}/sections/ip"),
        format!("/applications/{id}/attachments/{}", attachment.id),
    ] {
        assert_eq!(b.get(&path).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let resp = b
        .submit(
            "/applications",
            &format!("/applications/{id}/withdraw"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // The company itself may withdraw, after confirming.
    let confirm = a.get(&format!("/applications/{id}/withdraw")).await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let resp = a
        .submit(
            &format!("/applications/{id}/withdraw"),
            &format!("/applications/{id}/withdraw"),
            &[("reason", "改期申请")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let page = a
        .get(&format!("/applications/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("已撤回"), "{page}");
}
db_test!(
    access_between_companies,
    another_companys_user_gets_404_on_the_application_and_its_attachments
);

async fn a_decided_application_has_a_letter_and_a_low_rating_reaches_the_org_admin(t: &TestDb) {
    let (app, _) = verified_company(t).await;
    let (id, reference) = file(
        t,
        &app,
        "ip_fast_track",
        &[
            ("service", &[("service_kind", "priority_acceptance")]),
            (
                "ip",
                &[
                    ("ip_kind", "software_copyright"),
                    ("ip_number", "2026SR000001"),
                    ("title", "视觉识别软件"),
                    ("urgency", "投标需要"),
                ],
            ),
        ],
        &["ip_certificate"],
    )
    .await;
    assert_eq!(
        app.get(&format!("/applications/{id}/decision"))
            .await
            .status(),
        StatusCode::SEE_OTHER,
        "no letter before a decision"
    );
    let amr = reviewer(&t.db, "TJ-AMR").await;
    let admin = member_of(&t.db, "TJ-AMR", entity::enums::OrgRole::OrgAdmin).await;
    approve(&t.db, ApplicationId(id), "TJ-AMR", amr).await;
    approve(&t.db, ApplicationId(id), "TJ-AMR", amr).await;

    let letter = app
        .get(&format!("/applications/{id}/decision"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        letter.contains("审批决定书(批准)")
            && letter.contains(&reference)
            && letter.contains("TJ-AMR 同意"),
        "{letter}"
    );

    let resp = app
        .submit(
            &format!("/applications/{id}/decision"),
            &format!("/applications/{id}/rating"),
            &[("score", "2"), ("comment", "等待时间偏长")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let letter = app
        .get(&format!("/applications/{id}/decision"))
        .await
        .text()
        .await
        .expect("body");
    assert!(letter.contains("您的评价:2 分"), "{letter}");
    let flagged = outbox::Entity::find()
        .filter(outbox::Column::Kind.eq("low_rating"))
        .filter(outbox::Column::ApplicationId.eq(id))
        .all(&t.db)
        .await
        .expect("query");
    assert_eq!(flagged.len(), 1, "the org admin, and only them");
    assert_eq!(flagged[0].recipient_user_id, Some(admin.0));
    let again = app
        .submit(
            &format!("/applications/{id}"),
            &format!("/applications/{id}/rating"),
            &[("score", "5"), ("comment", "")],
        )
        .await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let page = app
        .get(&format!("/applications/{id}/decision"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("本申请已评价过") && page.contains("您的评价:2 分"),
        "one rating per application"
    );
}
db_test!(
    decision_letter_and_rating,
    a_decided_application_has_a_letter_and_a_low_rating_reaches_the_org_admin
);

async fn documents_on_the_company_profile_attach_to_any_application_without_uploading_again(
    t: &TestDb,
) {
    let (app, _) = verified_company(t).await;
    let html = app
        .get("/company/documents")
        .await
        .text()
        .await
        .expect("body");
    assert!(html.contains("营业执照") && html.contains("财务报表"));
    let token = csrf_of(&html);
    let part = multipart::Part::bytes(PDF.to_vec()).file_name("营业执照.pdf".to_string());
    let resp = app
        .client
        .post(format!(
            "{}/company/documents/business_licence?_csrf={token}",
            app.base
        ))
        .multipart(multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    let id = new_draft(&app, "yqyc").await;
    let page = app
        .get(&format!("/applications/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("使用企业档案中的文件(营业执照.pdf)"),
        "{page}"
    );
    let resp = app
        .submit(
            &format!("/applications/{id}"),
            &format!("/applications/{id}/materials/business_licence/from-profile"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let attached = entity::attachment::Entity::find()
        .filter(entity::attachment::Column::ApplicationId.eq(id))
        .one(&t.db)
        .await
        .expect("query")
        .expect("attached from the profile");
    assert_eq!(attached.filename, "营业执照.pdf");
    let own = app
        .get(&format!("/applications/{id}/attachments/{}", attached.id))
        .await;
    assert_eq!(
        own.bytes().await.expect("bytes").as_ref(),
        PDF,
        "the same bytes, not uploaded again"
    );

    // Another company neither sees nor uses this company's documents.
    let (other, _) = verified_company(t).await;
    let doc = entity::attachment::Entity::find()
        .filter(entity::attachment::Column::ApplicationId.is_null())
        .filter(entity::attachment::Column::Filename.eq("营业执照.pdf"))
        .one(&t.db)
        .await
        .expect("query")
        .expect("profile document");
    assert_eq!(
        other
            .get(&format!("/company/documents/file/{}", doc.id))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let theirs = new_draft(&other, "yqyc").await;
    let resp = other
        .submit(
            &format!("/applications/{theirs}"),
            &format!("/applications/{theirs}/materials/business_licence/from-profile"),
            &[],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::NOT_FOUND,
        "their own profile has no such document"
    );
}
db_test!(
    company_documents,
    documents_on_the_company_profile_attach_to_any_application_without_uploading_again
);

async fn internal_reviewer_notes_never_reach_the_applicant(t: &TestDb) {
    let (app, _) = verified_company(t).await;
    let (id, _) = file(
        t,
        &app,
        "ip_fast_track",
        &[
            ("service", &[("service_kind", "key_guidance")]),
            (
                "ip",
                &[
                    ("ip_kind", "design"),
                    ("ip_number", "D-7"),
                    ("title", "外观"),
                    ("urgency", "上市"),
                ],
            ),
        ],
        &["ip_certificate"],
    )
    .await;
    let amr = reviewer(&t.db, "TJ-AMR").await;
    for (text, internal) in [
        ("内部:申请人材料存疑,需核实", true),
        ("我们已受理,正在审核", false),
    ] {
        store::execute(
            &t.db,
            ApplicationId(id),
            amr,
            Action::Comment {
                text: text.into(),
                internal,
            },
        )
        .await
        .expect("comment");
    }
    let page = app
        .get(&format!("/applications/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("我们已受理,正在审核"),
        "a message to the applicant is shown"
    );
    assert!(
        !page.contains("申请人材料存疑"),
        "an internal note never is"
    );
}
db_test!(
    internal_notes_hidden,
    internal_reviewer_notes_never_reach_the_applicant
);

async fn an_unwritable_attachment_store_gives_a_clear_error_and_records_nothing(t: &TestDb) {
    let data = tempfile::tempdir().expect("tmp");
    let (app, _) = verified_company_in(t, data.path()).await;
    let id = new_draft(&app, "yqyc").await;
    let attachments = || async {
        entity::attachment::Entity::find()
            .filter(entity::attachment::Column::ApplicationId.eq(id))
            .all(&t.db)
            .await
            .expect("query")
            .len()
    };
    // The store breaks: a file where its folder was (a full or read-only disk fails the
    // same write).
    let store = data.path().join("attachments");
    std::fs::remove_dir_all(&store).expect("remove the store");
    std::fs::write(&store, b"not a folder").expect("block the store");
    let resp = upload(&app, id, "plan_document", PDF, "plan.pdf").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let page = app
        .get(&format!("/applications/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(page.contains("文件保存失败"), "a clear message: {page}");
    assert_eq!(attachments().await, 0, "nothing recorded");

    // Repaired, the same upload goes through.
    std::fs::remove_file(&store).expect("unblock");
    std::fs::create_dir_all(&store).expect("store");
    let resp = upload(&app, id, "plan_document", PDF, "plan.pdf").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(attachments().await, 1);
}
db_test!(
    an_unwritable_attachment_store_gives_a_clear_error_and_records_nothing,
    an_unwritable_attachment_store_gives_a_clear_error_and_records_nothing
);
