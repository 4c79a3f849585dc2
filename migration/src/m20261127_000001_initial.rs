//! The initial schema: organizations, accounts, companies, workflow definitions,
//! applications with their tasks and hash-chained history, the outbox, attachments,
//! the holiday calendar, sessions and reference-number counters.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(from_table: &str, from_col: &str, to_table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{from_table}_{from_col}"))
        .from(Alias::new(from_table), Alias::new(from_col))
        .to(Alias::new(to_table), Alias::new("id"))
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

fn index(table: &str, cols: &[&str], unique: bool) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(format!("ix_{table}_{}", cols.join("_")))
        .table(Alias::new(table));
    for col in cols {
        stmt.col(Alias::new(*col));
    }
    if unique {
        stmt.unique();
    }
    stmt.to_owned()
}

fn tz(col: &str) -> ColumnDef {
    timestamp_with_time_zone(Alias::new(col))
}

fn tz_null(col: &str) -> ColumnDef {
    timestamp_with_time_zone_null(Alias::new(col))
}

fn tables() -> Vec<TableCreateStatement> {
    vec![
        Table::create()
            .table("organizations")
            .col(pk_uuid("id"))
            .col(string_len_uniq("code", 64))
            .col(string_len("name_zh", 200))
            .col(string_len("name_en", 200))
            .col(string_len("kind", 32))
            .col(string_len_null("supervisor_code", 64))
            .col(boolean("active"))
            .col(integer("sort_order"))
            .col(tz("created_at"))
            .to_owned(),
        Table::create()
            .table("users")
            .col(pk_uuid("id"))
            .col(string_len_uniq("email", 254))
            .col(string_len("name", 200))
            .col(string_len("password_hash", 255))
            .col(string_len("locale", 16))
            .col(boolean("active"))
            .col(tz_null("email_verified_at"))
            .col(tz("created_at"))
            .col(tz("updated_at"))
            .to_owned(),
        Table::create()
            .table("companies")
            .col(pk_uuid("id"))
            .col(string_len_uniq("uscc", 18))
            .col(string_len("name", 200))
            .col(uuid("district_org_id"))
            .col(tz("created_at"))
            .col(tz("updated_at"))
            .foreign_key(&mut fk("companies", "district_org_id", "organizations"))
            .to_owned(),
        Table::create()
            .table("company_members")
            .col(pk_uuid("id"))
            .col(uuid("company_id"))
            .col(uuid("user_id"))
            .col(string_len("role", 16))
            .col(boolean("active"))
            .col(tz("created_at"))
            .foreign_key(&mut fk("company_members", "company_id", "companies"))
            .foreign_key(&mut fk("company_members", "user_id", "users"))
            .to_owned(),
        Table::create()
            .table("org_memberships")
            .col(pk_uuid("id"))
            .col(uuid("org_id"))
            .col(uuid("user_id"))
            .col(string_len("role", 16))
            .col(boolean("active"))
            .col(tz("created_at"))
            .foreign_key(&mut fk("org_memberships", "org_id", "organizations"))
            .foreign_key(&mut fk("org_memberships", "user_id", "users"))
            .to_owned(),
        Table::create()
            .table("system_admins")
            .col(pk_uuid("id"))
            .col(uuid_uniq("user_id"))
            .col(tz("created_at"))
            .foreign_key(&mut fk("system_admins", "user_id", "users"))
            .to_owned(),
        Table::create()
            .table("workflow_definitions")
            .col(pk_uuid("id"))
            .col(string_len("key", 64))
            .col(integer("version"))
            .col(text("source"))
            .col(string_len("checksum", 64))
            .col(boolean("active"))
            .col(tz("created_at"))
            .to_owned(),
        Table::create()
            .table("applications")
            .col(pk_uuid("id"))
            .col(string_len("app_type", 64))
            .col(uuid("definition_id"))
            .col(string_len_null("reference", 32).unique_key())
            .col(uuid("company_id"))
            .col(uuid("created_by"))
            .col(json_binary("form_data"))
            .col(string_len("status", 16))
            .col(string_len_null("current_step", 64))
            .col(big_integer("version"))
            .col(integer("round"))
            .col(date_null("step_due"))
            .col(date_null("case_due"))
            .col(date_null("revision_due"))
            .col(integer_null("paused_step_days"))
            .col(integer_null("paused_case_days"))
            .col(json_binary_null("return_items"))
            .col(tz_null("submitted_at"))
            .col(tz_null("decided_at"))
            .col(tz("created_at"))
            .col(tz("updated_at"))
            .foreign_key(&mut fk(
                "applications",
                "definition_id",
                "workflow_definitions",
            ))
            .foreign_key(&mut fk("applications", "company_id", "companies"))
            .foreign_key(&mut fk("applications", "created_by", "users"))
            .to_owned(),
        Table::create()
            .table("tasks")
            .col(pk_uuid("id"))
            .col(uuid("application_id"))
            .col(string_len("step_id", 64))
            .col(uuid("org_id"))
            .col(integer("round"))
            .col(string_len("status", 16))
            .col(uuid_null("claimant_id"))
            .col(uuid_null("delegated_by"))
            .col(uuid_null("acted_by"))
            .col(date("due_date"))
            .col(tz("opened_at"))
            .col(tz_null("closed_at"))
            .foreign_key(&mut fk("tasks", "application_id", "applications"))
            .foreign_key(&mut fk("tasks", "org_id", "organizations"))
            .to_owned(),
        Table::create()
            .table("history_events")
            .col(pk_uuid("id"))
            .col(uuid("application_id"))
            .col(integer("seq"))
            .col(string_len("kind", 32))
            .col(uuid_null("actor_user_id"))
            .col(uuid_null("actor_org_id"))
            .col(boolean("internal"))
            .col(text("payload"))
            .col(tz("created_at"))
            .col(string_len("prev_hash", 64))
            .col(string_len("hash", 64))
            .foreign_key(&mut fk("history_events", "application_id", "applications"))
            .to_owned(),
        Table::create()
            .table("outbox")
            .col(pk_uuid("id"))
            .col(string_len("kind", 64))
            .col(uuid_null("application_id"))
            .col(uuid_null("recipient_user_id"))
            .col(string_len("recipient_email", 254))
            .col(string_len("locale", 16))
            .col(json_binary("payload"))
            .col(string_len("status", 16))
            .col(integer("attempts"))
            .col(tz("next_attempt_at"))
            .col(tz_null("lease_until"))
            .col(text_null("last_error"))
            .col(string_len("message_id", 200))
            .col(tz("created_at"))
            .col(tz_null("sent_at"))
            .to_owned(),
        Table::create()
            .table("attachments")
            .col(pk_uuid("id"))
            .col(uuid("company_id"))
            .col(uuid_null("application_id"))
            .col(uuid("uploaded_by"))
            .col(string_len_null("material", 64))
            .col(string_len("filename", 255))
            .col(string_len("content_type", 100))
            .col(big_integer("size"))
            .col(string_len("sha256", 64))
            .col(string_len("storage_key", 255))
            .col(tz("created_at"))
            .foreign_key(&mut fk("attachments", "company_id", "companies"))
            .foreign_key(&mut fk("attachments", "application_id", "applications"))
            .foreign_key(&mut fk("attachments", "uploaded_by", "users"))
            .to_owned(),
        Table::create()
            .table("calendar_days")
            .col(pk_uuid("id"))
            .col(date_uniq("day"))
            .col(string_len("kind", 16))
            .col(string_len("name", 100))
            .col(tz("created_at"))
            .to_owned(),
        Table::create()
            .table("sessions")
            .col(pk_uuid("id"))
            .col(string_len_uniq("token_hash", 64))
            .col(uuid_null("user_id"))
            .col(json_binary("data"))
            .col(tz("created_at"))
            .col(tz("last_seen_at"))
            .col(tz("expires_at"))
            .foreign_key(&mut fk("sessions", "user_id", "users"))
            .to_owned(),
        Table::create()
            .table("reference_counters")
            .col(pk_uuid("id"))
            .col(string_len("prefix", 16))
            .col(integer("year"))
            .col(big_integer("last_value"))
            .to_owned(),
    ]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        index("company_members", &["company_id", "user_id"], true),
        index("company_members", &["user_id"], false),
        index("org_memberships", &["org_id", "user_id", "role"], true),
        index("org_memberships", &["user_id"], false),
        index("workflow_definitions", &["key", "version"], true),
        index("applications", &["company_id", "created_at"], false),
        index("applications", &["status"], false),
        index("tasks", &["application_id"], false),
        index("tasks", &["org_id", "status", "due_date"], false),
        index("tasks", &["claimant_id", "status"], false),
        index("history_events", &["application_id", "seq"], true),
        index("outbox", &["status", "next_attempt_at"], false),
        index("outbox", &["application_id"], false),
        index("attachments", &["application_id"], false),
        index("attachments", &["company_id"], false),
        index("sessions", &["expires_at"], false),
        index("reference_counters", &["prefix", "year"], true),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            manager.create_table(table).await?;
        }
        for index in indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables().iter().rev() {
            let name = table
                .get_table_name()
                .cloned()
                .ok_or_else(|| DbErr::Migration("table without a name".into()))?;
            manager
                .drop_table(Table::drop().table(name).to_owned())
                .await?;
        }
        Ok(())
    }
}
