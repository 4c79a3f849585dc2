//! The JSON API and its personal tokens, on SQLite and PostgreSQL.

use entity::api_token;
use entity::enums::OrgRole;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;
use zhigang::api::tokens;
use zhigang::ids::{ApplicationId, UserId};

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

/// A token for `user`, made as the web page makes it.
async fn token_for(t: &TestDb, user: UserId) -> String {
    tokens::create(&t.db, user.0, "test", Some(30))
        .await
        .expect("query")
        .expect("valid")
        .secret
}

/// A plain client (no cookies) for the API.
fn api() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn call(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = api()
        .request(method, format!("{base}/api/v1{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

async fn get(base: &str, token: &str, path: &str) -> (StatusCode, Value) {
    call(base, token, reqwest::Method::GET, path, None).await
}

async fn post(base: &str, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    call(base, token, reqwest::Method::POST, path, Some(body)).await
}

async fn a_company_files_and_reviewers_decide_through_the_api(t: &TestDb) {
    let web = spawn_app(t).await;
    let base = web.base.as_str();
    let (_, applicant) = company(&t.db).await;
    let me = token_for(t, applicant).await;

    let (s, orgs) = get(base, &me, "/organizations?limit=2").await;
    assert_eq!(s, StatusCode::OK, "{orgs}");
    assert_eq!(orgs["items"].as_array().map(Vec::len), Some(2));
    let next = orgs["next_cursor"].as_str().expect("a next page");
    let (s, page2) = get(base, &me, &format!("/organizations?limit=2&cursor={next}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_ne!(page2["items"][0]["code"], orgs["items"][0]["code"]);

    let (s, types) = get(base, &me, "/application-types").await;
    assert_eq!(s, StatusCode::OK, "{types}");
    let yqyc = types["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["key"] == "yqyc")
        .expect("yqyc is offered")
        .clone();
    assert_eq!(
        yqyc["form_schema"]["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(yqyc["form_schema"]["properties"]["revenue"].is_object());
    let required: Vec<String> = yqyc["materials"]
        .as_array()
        .expect("materials")
        .iter()
        .filter(|m| m["required"] == true)
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect();
    assert!(!required.is_empty());

    // A value of the wrong type for a form field is a validation problem.
    let (s, problem) = post(
        base,
        &me,
        "/applications",
        json!({ "type": "yqyc", "form": { "revenue": "lots" } }),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "form.revenue");

    let (s, app) = post(
        base,
        &me,
        "/applications",
        json!({ "type": "yqyc", "form": yqyc_form(&["talent"]) }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{app}");
    assert_eq!(app["status"], "draft");
    let id: Uuid = app["id"].as_str().expect("id").parse().expect("uuid");

    // PATCH needs the current version; a stale one is a conflict.
    let (s, changed) = call(
        base,
        &me,
        reqwest::Method::PATCH,
        &format!("/applications/{id}"),
        Some(json!({ "version": app["version"], "values": { "headcount": 330 } })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{changed}");
    assert_eq!(changed["form"]["headcount"], 330);
    let (s, stale) = call(
        base,
        &me,
        reqwest::Method::PATCH,
        &format!("/applications/{id}"),
        Some(json!({ "version": app["version"], "values": { "headcount": 331 } })),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{stale}");

    // Without the materials, submission names what is missing.
    let (s, missing) = post(base, &me, &format!("/applications/{id}/submit"), json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{missing}");
    let last = upload_materials(base, &me, id, &required)
        .await
        .pop()
        .expect("an attachment");
    let resp = api()
        .get(format!(
            "{base}/api/v1/applications/{id}/attachments/{last}"
        ))
        .bearer_auth(&me)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.expect("bytes").to_vec(), PDF);
    let (s, submitted) = post(base, &me, &format!("/applications/{id}/submit"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{submitted}");
    assert!(submitted["reference"].is_string());

    // Every organization's reviewer decides through the API until the case is decided.
    let mut rounds = 0;
    loop {
        let live = live_tasks(&t.db, ApplicationId(id)).await;
        if live.is_empty() {
            break;
        }
        rounds += 1;
        assert!(rounds < 20, "the case ends");
        for (code, _) in live {
            let who = reviewer(&t.db, &code).await;
            let tok = token_for(t, who).await;
            let (s, inbox) = get(base, &tok, "/tasks").await;
            assert_eq!(s, StatusCode::OK, "{inbox}");
            let task = inbox["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|x| x["application_id"] == id.to_string())
                .unwrap_or_else(|| panic!("the task is in {code}'s inbox: {inbox}"))
                .clone();
            let task_id = task["id"].as_str().expect("id");
            let (s, detail) = get(base, &tok, &format!("/tasks/{task_id}")).await;
            assert_eq!(s, StatusCode::OK, "{detail}");
            let (s, claimed) =
                post(base, &tok, &format!("/tasks/{task_id}/claim"), json!({})).await;
            assert_eq!(s, StatusCode::OK, "{claimed}");
            assert_eq!(claimed["task"]["status"], "claimed");
            // An empty opinion is refused with the field named.
            let (s, refused) = post(
                base,
                &tok,
                &format!("/tasks/{task_id}/decision"),
                json!({ "action": "approve", "comment": "" }),
            )
            .await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
            let (s, decided) = post(
                base,
                &tok,
                &format!("/tasks/{task_id}/decision"),
                json!({ "action": "approve", "comment": format!("{code} 同意") }),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{decided}");
        }
    }
    let (s, done) = get(base, &me, &format!("/applications/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(done["status"], "approved", "{done}");
    let (s, history) = get(base, &me, &format!("/applications/{id}/history")).await;
    assert_eq!(s, StatusCode::OK);
    let events = history["items"].as_array().expect("items");
    assert!(events.len() >= 3, "{history}");
    assert!(events.iter().all(|e| e["internal"] == false));
    let (s, mine) = get(base, &me, "/applications").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(mine["items"][0]["id"], id.to_string());
}
db_test!(
    a_company_files_and_reviewers_decide_through_the_api,
    a_company_files_and_reviewers_decide_through_the_api
);

/// A form for a type made from its published JSON Schema alone, as an integrator's code
/// would: every property, the first option of each choice, a number, a sentence.
fn form_from_schema(schema: &Value) -> Value {
    let mut form = serde_json::Map::new();
    for (name, p) in schema["properties"].as_object().expect("properties") {
        let v = match p["type"].as_str() {
            _ if !p["const"].is_null() => p["const"].clone(),
            Some("string") if p["enum"].is_array() => p["enum"][0].clone(),
            Some("string") if p["format"] == "date" => json!("2027-03-01"),
            Some("string") => json!(format!("{name}:接口填写的说明")),
            Some("integer") => json!(12),
            Some("boolean") => json!(false),
            Some("array") => json!([p["items"]["enum"][0]]),
            other => panic!("a field type the generator does not know: {other:?} in {p}"),
        };
        form.insert(name.clone(), v);
    }
    Value::Object(form)
}

/// A small PDF.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";

/// Uploads [`PDF`] for each material id through the API; returns the attachment ids.
async fn upload_materials(base: &str, token: &str, id: Uuid, materials: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for m in materials {
        let form = reqwest::multipart::Form::new()
            .text("material", m.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(PDF.to_vec())
                    .file_name(format!("{m}.pdf"))
                    .mime_str("application/pdf")
                    .expect("mime"),
            );
        let resp = api()
            .post(format!("{base}/api/v1/applications/{id}/attachments"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        assert_eq!(resp.status(), StatusCode::CREATED, "{m}");
        let att: Value = resp.json().await.expect("json");
        ids.push(att["id"].as_str().expect("id").to_string());
    }
    ids
}

/// The open task of application `id` in a reviewer's API inbox, claimed through the API;
/// returns the reviewer's token and the task id.
async fn claim_next(t: &TestDb, base: &str, id: Uuid) -> Option<(String, String)> {
    let (code, _) = live_tasks(&t.db, ApplicationId(id))
        .await
        .into_iter()
        .next()?;
    let tok = token_for(t, reviewer(&t.db, &code).await).await;
    let (s, inbox) = get(base, &tok, "/tasks").await;
    assert_eq!(s, StatusCode::OK, "{inbox}");
    let task_id = inbox["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|x| x["application_id"] == id.to_string())
        .unwrap_or_else(|| panic!("the task is in {code}'s inbox: {inbox}"))["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (s, claimed) = post(base, &tok, &format!("/tasks/{task_id}/claim"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{claimed}");
    Some((tok, task_id))
}

async fn each_type_is_filed_and_decided_through_the_api_alone(t: &TestDb) {
    let web = spawn_app(t).await;
    let base = web.base.as_str();
    let (_, applicant) = company(&t.db).await;
    let me = token_for(t, applicant).await;
    let (s, types) = get(base, &me, "/application-types").await;
    assert_eq!(s, StatusCode::OK, "{types}");
    let types = types["items"].as_array().expect("items").clone();
    let keys: Vec<&str> = types.iter().filter_map(|t| t["key"].as_str()).collect();
    for key in ["yqyc", "ip_fast_track", "platform_access"] {
        assert!(keys.contains(&key), "{key} is offered: {keys:?}");
    }

    for ty in &types {
        let key = ty["key"].as_str().expect("key");
        let schema = &ty["form_schema"];
        // A generic JSON Schema validator accepts the schema, and the form made from it.
        jsonschema::meta::validate(schema)
            .unwrap_or_else(|e| panic!("{key}: not a valid JSON Schema: {e}"));
        let form = form_from_schema(schema);
        let validator = jsonschema::validator_for(schema).expect("compiles");
        let errors: Vec<String> = validator
            .iter_errors(&form)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{key}: {errors:?}");
        let wrong = json!({ "unknown_field": 1 });
        assert!(
            !validator.is_valid(&wrong),
            "{key}: the schema refuses unknown fields"
        );

        let (s, app) = post(
            base,
            &me,
            "/applications",
            json!({ "type": key, "form": form }),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{key}: {app}");
        let id: Uuid = app["id"].as_str().expect("id").parse().expect("uuid");
        let required: Vec<String> = ty["materials"]
            .as_array()
            .expect("materials")
            .iter()
            .filter(|m| m["required"] == true)
            .map(|m| m["id"].as_str().expect("id").to_string())
            .collect();
        upload_materials(base, &me, id, &required).await;
        let (s, submitted) =
            post(base, &me, &format!("/applications/{id}/submit"), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{key}: {submitted}");
        let reference = submitted["reference"]
            .as_str()
            .expect("reference")
            .to_string();

        match key {
            // The IP fast track: the first reviewer returns a section; the company fixes it
            // through PATCH and resubmits; then every step approves.
            "ip_fast_track" => {
                let (tok, task) = claim_next(t, base, id).await.expect("a first task");
                let section = schema["properties"]
                    .as_object()
                    .expect("properties")
                    .iter()
                    .find_map(|(name, p)| {
                        let d = p["description"].as_str()?;
                        let sec = d.rsplit_once("(section ")?.1.trim_end_matches(')');
                        Some((name.clone(), sec.to_string()))
                    })
                    .expect("a field with its section");
                let (s, returned) = post(
                    base,
                    &tok,
                    &format!("/tasks/{task}/decision"),
                    json!({
                        "action": "return",
                        "comment": "请补充说明",
                        "items": [{ "kind": "section", "id": section.1, "note": "说明不够具体" }],
                    }),
                )
                .await;
                assert_eq!(s, StatusCode::OK, "{returned}");
                let (s, app) = get(base, &me, &format!("/applications/{id}")).await;
                assert_eq!(s, StatusCode::OK);
                assert_eq!(app["status"], "returned", "{app}");
                // Only the flagged section may change.
                let fields_of = |sec: &str| -> Vec<String> {
                    schema["properties"]
                        .as_object()
                        .expect("properties")
                        .iter()
                        .filter(|(_, p)| {
                            p["description"]
                                .as_str()
                                .is_some_and(|d| d.ends_with(&format!("(section {sec})")))
                        })
                        .map(|(n, _)| n.clone())
                        .collect()
                };
                let text_field = fields_of(&section.1)
                    .into_iter()
                    .find(|n| {
                        schema["properties"][n]["type"] == "string"
                            && schema["properties"][n]["enum"].is_null()
                    })
                    .expect("a text field in the returned section");
                let (s, patched) = call(
                    base,
                    &me,
                    reqwest::Method::PATCH,
                    &format!("/applications/{id}"),
                    Some(json!({ "version": app["version"], "values": { text_field.clone(): "补充后的说明" } })),
                )
                .await;
                assert_eq!(s, StatusCode::OK, "{patched}");
                assert_eq!(patched["form"][&text_field], "补充后的说明");
                let (s, again) = post(
                    base,
                    &me,
                    &format!("/applications/{id}/resubmit"),
                    json!({ "note": "已按要求补充" }),
                )
                .await;
                assert_eq!(s, StatusCode::OK, "{again}");
                approve_to_the_end(t, base, id).await;
                let (_, done) = get(base, &me, &format!("/applications/{id}")).await;
                assert_eq!(done["status"], "approved", "{done}");
            }
            // Platform access: the operator refuses; the applicant reads the reason.
            "platform_access" => {
                let (tok, task) = claim_next(t, base, id).await.expect("a first task");
                let (s, rejected) = post(
                    base,
                    &tok,
                    &format!("/tasks/{task}/decision"),
                    json!({ "action": "reject", "comment": "本期算力资源已分配完毕" }),
                )
                .await;
                assert_eq!(s, StatusCode::OK, "{rejected}");
                let (_, done) = get(base, &me, &format!("/applications/{id}")).await;
                assert_eq!(done["status"], "rejected", "{done}");
                let (_, history) = get(base, &me, &format!("/applications/{id}/history")).await;
                assert!(
                    history.to_string().contains("本期算力资源已分配完毕"),
                    "the reason is shown to the applicant: {history}"
                );
            }
            _ => {
                approve_to_the_end(t, base, id).await;
                let (_, done) = get(base, &me, &format!("/applications/{id}")).await;
                assert_eq!(done["status"], "approved", "{done}");
            }
        }
        let (_, mine) = get(base, &me, "/applications").await;
        assert!(
            mine["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|a| a["reference"] == reference.as_str()),
            "{key}: listed with its reference"
        );
    }
}
db_test!(
    each_type_is_filed_and_decided_through_the_api_alone,
    each_type_is_filed_and_decided_through_the_api_alone
);

/// Every open task of application `id` approved through the API until none is left.
async fn approve_to_the_end(t: &TestDb, base: &str, id: Uuid) {
    for _ in 0..20 {
        let Some((tok, task)) = claim_next(t, base, id).await else {
            return;
        };
        let (s, decided) = post(
            base,
            &tok,
            &format!("/tasks/{task}/decision"),
            json!({ "action": "approve", "comment": "同意" }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{decided}");
    }
    panic!("the case did not end within 20 decisions");
}

async fn the_web_access_rules_hold_on_the_api(t: &TestDb) {
    let web = spawn_app(t).await;
    let base = web.base.as_str();
    let (company_a, applicant_a) = company(&t.db).await;
    let app = submitted_yqyc(&t.db, company_a, applicant_a, &["talent"]).await;
    let (_, applicant_b) = company(&t.db).await;
    let other = token_for(t, applicant_b).await;
    for path in [
        format!("/applications/{}", app.0),
        format!("/applications/{}/history", app.0),
    ] {
        let (s, p) = get(base, &other, &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {p}");
        assert_eq!(p["type"], "https://zhigang.example/problems/not-found");
    }
    let (s, _) = post(
        base,
        &other,
        &format!("/applications/{}/withdraw", app.0),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = get(base, &other, "/applications").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));

    // A reviewer of another organization does not see the task either.
    let (code, task) = live_tasks(&t.db, app).await.remove(0);
    let stranger = reviewer(
        &t.db,
        if code == "D-120101" {
            "D-120116"
        } else {
            "D-120101"
        },
    )
    .await;
    let tok = token_for(t, stranger).await;
    let (s, _) = get(base, &tok, &format!("/tasks/{}", task.0)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = post(base, &tok, &format!("/tasks/{}/claim", task.0), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Revoked: 401 with a problem and a challenge. No token: 401. A session cookie of a
    // logged-in browser is not accepted.
    let mine = token_for(t, applicant_a).await;
    let (s, _) = get(base, &mine, "/applications").await;
    assert_eq!(s, StatusCode::OK);
    let row = api_token::Entity::find()
        .filter(api_token::Column::UserId.eq(applicant_a.0))
        .one(&t.db)
        .await
        .expect("query")
        .expect("row");
    assert!(
        tokens::revoke(&t.db, applicant_a.0, row.id)
            .await
            .expect("revoke")
    );
    let resp = api()
        .get(format!("{base}/api/v1/applications"))
        .bearer_auth(&mine)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get("www-authenticate").is_some());
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let p: Value = resp.json().await.expect("json");
    assert_eq!(p["type"], "https://zhigang.example/problems/unauthorized");
    let resp = api()
        .get(format!("{base}/api/v1/applications"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let who = crate::review::login_user(t, "D-120116", OrgRole::Reviewer).await;
    let browser = session_for(t, base, who).await;
    let resp = browser.get("/api/v1/tasks").await;
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "cookies do not count"
    );
}
db_test!(
    the_web_access_rules_hold_on_the_api,
    the_web_access_rules_hold_on_the_api
);

async fn input_is_strict_and_errors_are_problems(t: &TestDb) {
    let web = spawn_app(t).await;
    let base = web.base.as_str();
    let (_, applicant) = company(&t.db).await;
    let me = token_for(t, applicant).await;
    for body in [
        json!({ "type": false }),
        json!({ "type": 1 }),
        json!({ "type": "yqyc", "surprise": true }),
        json!([]),
    ] {
        let (s, p) = post(base, &me, "/applications", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {p}");
        assert_eq!(
            p["type"], "https://zhigang.example/problems/bad-request",
            "{p}"
        );
        assert_eq!(p["status"], 400);
    }
    let resp = api()
        .post(format!("{base}/api/v1/applications"))
        .bearer_auth(&me)
        .header("content-type", "text/plain")
        .body("type=yqyc")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let (s, _) = get(base, &me, "/applications/not-a-uuid").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = get(base, &me, "/applications?limit=0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, p) = get(base, &me, "/applications?cursor=zz").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let (s, p) = get(base, &me, "/no-such-thing").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{p}");
    assert_eq!(p["type"], "https://zhigang.example/problems/not-found");

    // A NUL (or another control character) in text is refused — on PostgreSQL it could
    // not even be stored — in the API's own fields, in form values and in filters.
    let (s, p) = post(base, &me, "/applications", json!({ "type": "yq\u{0}yc" })).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    let (s, p) = post(
        base,
        &me,
        "/applications",
        json!({ "type": "yqyc", "form": { "plan_description": "扩产\u{0}计划" } }),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["errors"][0]["field"], "form.plan_description", "{p}");
    let (s, p) = get(base, &me, "/tasks?type=yq%00yc").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    // A wrong method names the path's own methods.
    let resp = api()
        .delete(format!("{base}/api/v1/companies"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        resp.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
}
db_test!(
    input_is_strict_and_errors_are_problems,
    input_is_strict_and_errors_are_problems
);

async fn the_spec_and_the_docs_are_served(t: &TestDb) {
    let web = spawn_app(t).await;
    let resp = api()
        .get(format!("{}/api/openapi.json", web.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
    let spec: Value = resp.json().await.expect("the spec is JSON");
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let paths = spec["paths"].as_object().expect("paths");
    for p in [
        "/companies",
        "/organizations",
        "/application-types",
        "/applications",
        "/applications/{id}",
        "/applications/{id}/submit",
        "/applications/{id}/attachments",
        "/applications/{id}/attachments/{attachment_id}",
        "/applications/{id}/resubmit",
        "/applications/{id}/withdraw",
        "/applications/{id}/history",
        "/tasks",
        "/tasks/{id}",
        "/tasks/{id}/claim",
        "/tasks/{id}/release",
        "/tasks/{id}/decision",
    ] {
        assert!(paths.contains_key(p), "{p} is in the spec");
    }
    // Every operation declares the problems, the framework's own 400 and 415 included.
    for (path, ops) in paths {
        for (method, op) in ops.as_object().expect("operations") {
            for status in ["400", "415", "422", "500", "503"] {
                assert!(
                    op["responses"][status]["content"]["application/problem+json"].is_object(),
                    "{method} {path} declares {status}"
                );
            }
        }
    }
    let docs = api()
        .get(format!("{}/api/docs/", web.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.expect("body");
    assert!(html.contains("/api/docs/swagger-ui-bundle.js"));
    assert!(!html.contains("<script>"), "no inline script under the CSP");
    let js = api()
        .get(format!("{}/api/docs/swagger-ui-bundle.js", web.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.text().await.expect("body").len() > 100_000);
}
db_test!(
    the_spec_and_the_docs_are_served,
    the_spec_and_the_docs_are_served
);

async fn a_company_registers_through_the_api(t: &TestDb) {
    let web = spawn_app(t).await;
    let uscc = crate::web::fresh_uscc();
    let body = json!({
        "company_name": "天津接口测试有限公司",
        "uscc": uscc,
        "district": "D-120116",
        "contact_name": "李工",
        "email": "Api.Owner@Example.test",
        "password": "violet-harbour-tractor-58",
    });
    let resp = api()
        .post(format!("{}/api/v1/companies", web.base))
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.expect("json");
    let user: Uuid = created["user_id"]
        .as_str()
        .expect("user_id")
        .parse()
        .expect("uuid");
    let link = crate::web::mail_link(t, user, "verification").await;
    assert!(link.starts_with("/verify-email"), "{link}");

    // The same company again: the web's rules answer, field by field.
    let resp = api()
        .post(format!("{}/api/v1/companies", web.base))
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let p: Value = resp.json().await.expect("json");
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(fields.contains(&"uscc") || fields.contains(&"email"), "{p}");

    let mut weak = body.clone();
    weak["uscc"] = json!(crate::web::fresh_uscc());
    weak["email"] = json!("other@example.test");
    weak["password"] = json!("aaaaaaaaaaaa");
    let resp = api()
        .post(format!("{}/api/v1/companies", web.base))
        .json(&weak)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
db_test!(
    a_company_registers_through_the_api,
    a_company_registers_through_the_api
);

async fn idempotency_keys_replay_and_concurrent_repeats_have_one_effect(t: &TestDb) {
    let web = spawn_app(t).await;
    let base = web.base.clone();
    let (company, applicant) = company(&t.db).await;
    let me = token_for(t, applicant).await;
    let body = json!({ "type": "yqyc", "form": { "headcount": 12 } });
    let mut handles = Vec::new();
    for _ in 0..20 {
        let (base, me, body) = (base.clone(), me.clone(), body.clone());
        handles.push(tokio::spawn(async move {
            let resp = api()
                .post(format!("{base}/api/v1/applications"))
                .bearer_auth(&me)
                .header("Idempotency-Key", "order-42")
                .json(&body)
                .send()
                .await
                .expect("POST");
            let status = resp.status();
            (status, resp.json::<Value>().await.expect("json"))
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for h in handles {
        let (status, v) = h.await.expect("join");
        assert!(
            status == StatusCode::CREATED || status == StatusCode::CONFLICT,
            "{status}: {v}"
        );
        if status == StatusCode::CREATED {
            ids.insert(v["id"].as_str().expect("id").to_string());
        }
    }
    assert_eq!(ids.len(), 1, "every success is the same application");
    let count = entity::application::Entity::find()
        .filter(entity::application::Column::CompanyId.eq(company.0))
        .all(&t.db)
        .await
        .expect("query")
        .len();
    assert_eq!(count, 1, "one effect");

    // Later repeats replay; another body with the same key is a 422.
    let again = api()
        .post(format!("{base}/api/v1/applications"))
        .bearer_auth(&me)
        .header("Idempotency-Key", "order-42")
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let location = again
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let v: Value = again.json().await.expect("json");
    assert!(ids.contains(v["id"].as_str().expect("id")));
    assert_eq!(
        location,
        Some(format!(
            "/api/v1/applications/{}",
            v["id"].as_str().expect("id")
        )),
        "the replay keeps the Location header"
    );
    let other = api()
        .post(format!("{base}/api/v1/applications"))
        .bearer_auth(&me)
        .header("Idempotency-Key", "order-42")
        .json(&json!({ "type": "yqyc" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Without a token a protected POST is a 401 whatever the key looks like.
    let anonymous = api()
        .post(format!("{base}/api/v1/applications"))
        .header("Idempotency-Key", "not a valid key")
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The public registration honours keys too: a repeat replays the 201.
    let registration = json!({
        "company_name": "幂等注册有限公司",
        "uscc": crate::web::fresh_uscc(),
        "district": "D-120116",
        "contact_name": "赵工",
        "email": "idempotent.owner@example.test",
        "password": "violet-harbour-tractor-58",
    });
    let mut first = None;
    for _ in 0..2 {
        let resp = api()
            .post(format!("{base}/api/v1/companies"))
            .header("Idempotency-Key", "register-1")
            .json(&registration)
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), StatusCode::CREATED);
        let v: Value = resp.json().await.expect("json");
        if let Some(f) = &first {
            assert_eq!(f, &v, "the repeat replays the first response");
        }
        first = Some(v);
    }

    // The worker's housekeeping forgets keys after a day, and expired sessions.
    let w = zhigang::mail::Worker::new(
        t.db.clone(),
        &crate::mail::settings(None, &std::env::temp_dir()),
    )
    .expect("worker");
    let rows = || async {
        entity::idempotency_key::Entity::find()
            .all(&t.db)
            .await
            .expect("query")
            .len()
    };
    let before = rows().await;
    assert!(before >= 2);
    w.housekeeping(chrono::Utc::now())
        .await
        .expect("housekeeping");
    assert_eq!(rows().await, before, "fresh keys are kept");
    w.housekeeping(chrono::Utc::now() + chrono::Duration::hours(25))
        .await
        .expect("housekeeping");
    assert_eq!(rows().await, 0, "keys older than a day are forgotten");
}
db_test!(
    idempotency_keys_replay_and_concurrent_repeats_have_one_effect,
    idempotency_keys_replay_and_concurrent_repeats_have_one_effect
);
