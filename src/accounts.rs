//! Accounts: company registration, email verification, login with throttling.
//! The web and the JSON API both call these; the rules live here once.

use chrono::{DateTime, Duration, Utc};
use entity::enums::{CompanyRole, OrgKind};
use entity::{account_token, auth_throttle, company, company_member, organization, user};
use rand::RngCore;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, SqlErr, TransactionTrait,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ids::UserId;
use crate::passwords::Hasher;
use crate::store;
use crate::uscc::{Uscc, UsccError};

/// Shortest password (OWASP ASVS 2.1.1).
pub const MIN_PASSWORD: usize = 12;
/// Longest password (ASVS 2.1.2).
pub const MAX_PASSWORD: usize = 128;
/// Login failures allowed before the throttle blocks (settings
/// `login_account_free_failures` and `login_address_free_failures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures on one account before it slows down.
    pub account_free_failures: u32,
    /// Failures from one address before it slows down.
    pub address_free_failures: u32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            account_free_failures: 5,
            address_free_failures: 20,
        }
    }
}

/// Longest lock-out.
const MAX_BLOCK_SECONDS: i64 = 15 * 60;

/// A validation problem of one form field: the field name and a message key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The form field.
    pub field: String,
    /// Message key in the catalogs.
    pub message: &'static str,
}

/// Reads the required email field `field`: the normalized address, or the field's problem
/// (`required` when empty, `email-invalid` when malformed) added to `errors`.
pub fn required_email(field: &str, input: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let email = parse_email(input);
    if email.is_none() {
        let message = if input.trim().is_empty() {
            "required"
        } else {
            "email-invalid"
        };
        errors.push(err(field, message));
    }
    email
}

fn err(field: &str, message: &'static str) -> FieldError {
    FieldError {
        field: field.to_string(),
        message,
    }
}

/// What a company types to register.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct RegistrationForm {
    /// Company name.
    #[serde(default)]
    pub company_name: String,
    /// 统一社会信用代码.
    #[serde(default)]
    pub uscc: String,
    /// The district's organization code (`D-120116`).
    #[serde(default)]
    pub district: String,
    /// Contact person.
    #[serde(default)]
    pub contact_name: String,
    /// Email (the login).
    #[serde(default)]
    pub email: String,
    /// Password.
    #[serde(default, skip_serializing)]
    pub password: String,
    /// Password again.
    #[serde(default, skip_serializing)]
    pub password_confirm: String,
}

/// A registration that passed validation.
#[derive(Debug, Clone)]
pub struct Registration {
    company_name: String,
    uscc: Uscc,
    district_id: Uuid,
    contact_name: String,
    email: String,
    password: String,
}

/// Normalizes and checks an email address.
pub fn parse_email(input: &str) -> Option<String> {
    let email = input.trim().to_lowercase();
    (email.len() <= 254 && email_address::EmailAddress::is_valid(&email) && email.contains('.'))
        .then_some(email)
}

/// Checks a new password: length and strength (zxcvbn score 3 or more, given the user's
/// other inputs so a password made of the company name is refused).
pub fn check_password(password: &str, user_inputs: &[&str]) -> Result<(), &'static str> {
    let len = password.chars().count();
    if len < MIN_PASSWORD {
        return Err("password-too-short");
    }
    if len > MAX_PASSWORD {
        return Err("password-too-long");
    }
    let score = zxcvbn::zxcvbn(password, user_inputs).score();
    if (score as u8) < 3 {
        return Err("password-weak");
    }
    Ok(())
}

/// The problems of a new password typed twice (fields `password` and `password_confirm`):
/// the strength rules first, then whether the two agree.
pub fn new_password_errors(password: &str, confirm: &str, user_inputs: &[&str]) -> Vec<FieldError> {
    if let Err(m) = check_password(password, user_inputs) {
        vec![err("password", m)]
    } else if password != confirm {
        vec![err("password_confirm", "password-mismatch")]
    } else {
        Vec::new()
    }
}

fn uscc_message(e: &UsccError) -> &'static str {
    match e {
        UsccError::WrongLength { .. } => "uscc-length",
        UsccError::InvalidCharacter { .. } => "uscc-character",
        UsccError::CheckDigitMismatch { .. } => "uscc-check",
    }
}

impl RegistrationForm {
    /// Parses the form; every field's problem is reported at once.
    pub async fn validate<C: ConnectionTrait>(
        &self,
        db: &C,
    ) -> Result<Registration, Vec<FieldError>> {
        let mut errors = Vec::new();
        let company_name = self.company_name.trim().to_string();
        if company_name.is_empty() {
            errors.push(err("company_name", "required"));
        } else if company_name.chars().count() > 200 {
            errors.push(err("company_name", "too-long"));
        }
        let uscc = match Uscc::parse(&self.uscc) {
            Ok(u) => Some(u),
            Err(e) => {
                errors.push(err(
                    "uscc",
                    if self.uscc.trim().is_empty() {
                        "required"
                    } else {
                        uscc_message(&e)
                    },
                ));
                None
            }
        };
        let district = organization::Entity::find()
            .filter(organization::Column::Code.eq(self.district.trim()))
            .filter(organization::Column::Kind.eq(OrgKind::District))
            .one(db)
            .await
            .ok()
            .flatten();
        if district.is_none() {
            errors.push(err("district", "district-choose"));
        }
        let contact_name = self.contact_name.trim().to_string();
        if contact_name.is_empty() {
            errors.push(err("contact_name", "required"));
        } else if contact_name.chars().count() > 100 {
            errors.push(err("contact_name", "too-long"));
        }
        let email = required_email("email", &self.email, &mut errors);
        let inputs = [
            company_name.as_str(),
            self.email.as_str(),
            contact_name.as_str(),
        ];
        errors.extend(new_password_errors(
            &self.password,
            &self.password_confirm,
            &inputs,
        ));
        if let Some(u) = &uscc
            && company::Entity::find()
                .filter(company::Column::Uscc.eq(u.as_str()))
                .one(db)
                .await
                .ok()
                .flatten()
                .is_some()
        {
            errors.push(err("uscc", "uscc-taken"));
        }
        if let Some(e) = &email
            && user::Entity::find()
                .filter(user::Column::Email.eq(e.as_str()))
                .one(db)
                .await
                .ok()
                .flatten()
                .is_some()
        {
            errors.push(err("email", "email-taken"));
        }
        match (uscc, district, email) {
            (Some(uscc), Some(d), Some(email)) if errors.is_empty() => Ok(Registration {
                company_name,
                uscc,
                district_id: d.id,
                contact_name,
                email,
                password: self.password.clone(),
            }),
            _ => Err(errors),
        }
    }
}

/// The outcome of a registration that could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The form's problems.
    #[error("invalid registration")]
    Invalid(Vec<FieldError>),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Stores a single-use token for `user` and returns it (to be put in a link).
pub async fn issue_token<C: ConnectionTrait>(
    db: &C,
    user: Uuid,
    kind: &str,
    valid_for: Duration,
) -> Result<String, DbErr> {
    let token = random_token();
    let now = store::now();
    account_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user),
        kind: Set(kind.to_string()),
        token_hash: Set(hash(&token)),
        expires_at: Set(now + valid_for),
        used_at: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(token)
}

/// Queues an account email (verification, password reset, …) for `to`.
pub async fn queue_account_mail<C: ConnectionTrait>(
    db: &C,
    kind: &str,
    to: &user::Model,
    data: serde_json::Value,
) -> Result<(), DbErr> {
    store::outbox_row(kind, None, to, data, store::now())
        .insert(db)
        .await?;
    Ok(())
}

/// Registers a company with its first user (the company admin), and queues the
/// verification email with a link under `base_url`. Returns the new user.
pub async fn register(
    db: &DatabaseConnection,
    hasher: &Hasher,
    reg: Registration,
    locale: &str,
    base_url: &str,
) -> Result<UserId, RegisterError> {
    let password_hash = hasher.hash(reg.password.clone()).await?;
    let txn = db.begin().await.map_err(anyhow::Error::from)?;
    let now = store::now();
    let user_id = Uuid::now_v7();
    let company_id = Uuid::now_v7();
    let u = user::ActiveModel {
        id: Set(user_id),
        email: Set(reg.email.clone()),
        name: Set(reg.contact_name.clone()),
        password_hash: Set(password_hash),
        locale: Set(locale.to_string()),
        active: Set(true),
        email_verified_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    // Two registrations racing past validation meet the unique indexes here.
    let unique = |e: DbErr, field: &str, msg: &'static str| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => RegisterError::Invalid(vec![err(field, msg)]),
        _ => RegisterError::Other(e.into()),
    };
    let u = u
        .insert(&txn)
        .await
        .map_err(|e| unique(e, "email", "email-taken"))?;
    company::ActiveModel {
        id: Set(company_id),
        uscc: Set(reg.uscc.as_str().to_string()),
        name: Set(reg.company_name),
        district_org_id: Set(reg.district_id),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| unique(e, "uscc", "uscc-taken"))?;
    company_member::ActiveModel {
        id: Set(Uuid::now_v7()),
        company_id: Set(company_id),
        user_id: Set(user_id),
        role: Set(CompanyRole::Admin),
        active: Set(true),
        created_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(anyhow::Error::from)?;
    let token = issue_token(&txn, user_id, "verify_email", Duration::hours(48))
        .await
        .map_err(anyhow::Error::from)?;
    let link = format!(
        "{}/verify-email?token={token}",
        base_url.trim_end_matches('/')
    );
    queue_account_mail(&txn, "verification", &u, json!({ "link": link }))
        .await
        .map_err(anyhow::Error::from)?;
    txn.commit().await.map_err(anyhow::Error::from)?;
    tracing::info!(user_id = %user_id, company_id = %company_id, "company registered");
    Ok(UserId(user_id))
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Unknown, of another kind, or already used.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// Consumes a single-use token of `kind`; returns its user.
pub async fn consume_token(
    db: &DatabaseConnection,
    kind: &str,
    token: &str,
) -> Result<Result<Uuid, TokenError>, DbErr> {
    let now = store::now();
    let Some(row) = account_token::Entity::find()
        .filter(account_token::Column::TokenHash.eq(hash(token)))
        .filter(account_token::Column::Kind.eq(kind))
        .one(db)
        .await?
    else {
        return Ok(Err(TokenError::Invalid));
    };
    if row.used_at.is_some() {
        return Ok(Err(TokenError::Invalid));
    }
    if row.expires_at <= now {
        return Ok(Err(TokenError::Expired));
    }
    // Mark used only if still unused: two clicks at once consume it once.
    let res = account_token::Entity::update_many()
        .col_expr(account_token::Column::UsedAt, Expr::value(Some(now)))
        .filter(account_token::Column::Id.eq(row.id))
        .filter(account_token::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Ok(Err(TokenError::Invalid));
    }
    Ok(Ok(row.user_id))
}

/// Marks the user's email as verified by a token from the verification email.
pub async fn verify_email(
    db: &DatabaseConnection,
    token: &str,
) -> Result<Result<Uuid, TokenError>, DbErr> {
    let user_id = match consume_token(db, "verify_email", token).await? {
        Ok(u) => u,
        Err(e) => return Ok(Err(e)),
    };
    user::Entity::update_many()
        .col_expr(
            user::Column::EmailVerifiedAt,
            Expr::value(Some(store::now())),
        )
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::EmailVerifiedAt.is_null())
        .exec(db)
        .await?;
    Ok(Ok(user_id))
}

/// Why a login failed. The message shown is the same whether or not the account exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong email or password (or an inactive account).
    Invalid,
    /// Too many failures: try again after this time.
    Throttled(DateTime<Utc>),
}

/// A valid Argon2id hash of a random password, checked when the email is unknown so the
/// response takes as long as for a real account.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn dummy_hash() -> String {
    DUMMY_HASH
        .get_or_init(|| {
            crate::passwords::hash_blocking(&random_token())
                // Hashing with valid parameters cannot fail; an empty string still costs a
                // parse and keeps the login path total.
                .unwrap_or_default()
        })
        .clone()
}

async fn blocked_until<C: ConnectionTrait>(
    db: &C,
    key: &str,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(auth_throttle::Entity::find()
        .filter(auth_throttle::Column::Key.eq(key))
        .one(db)
        .await?
        .and_then(|r| r.blocked_until)
        .filter(|b| *b > store::now()))
}

/// Counts a failure for `key`; past `free` failures the key is blocked for a time that
/// doubles with each further failure.
pub async fn count_failure<C: ConnectionTrait>(db: &C, key: &str, free: i32) -> Result<(), DbErr> {
    use sea_orm::sea_query::ExprTrait;
    let now = store::now();
    let insert = Query::insert()
        .into_table("auth_throttle")
        .columns(["id", "key", "failures", "updated_at"])
        .values_panic([Uuid::now_v7().into(), key.into(), 0i32.into(), now.into()])
        .on_conflict(OnConflict::column("key").do_nothing().to_owned())
        .to_owned();
    db.execute(&insert).await?;
    let update = Query::update()
        .table("auth_throttle")
        .value("failures", Expr::col("failures").add(1))
        .value("updated_at", now)
        .and_where(Expr::col("key").eq(key))
        .returning_col("failures")
        .to_owned();
    let failures: i32 = match db.query_one(&update).await? {
        Some(row) => row.try_get("", "failures")?,
        None => return Ok(()),
    };
    if failures > free {
        let exp = Ord::min(u32::try_from(failures - free - 1).unwrap_or(u32::MAX), 10);
        let seconds = Ord::min(30i64 << exp, MAX_BLOCK_SECONDS);
        auth_throttle::Entity::update_many()
            .col_expr(
                auth_throttle::Column::BlockedUntil,
                Expr::value(Some(now + Duration::seconds(seconds))),
            )
            .filter(auth_throttle::Column::Key.eq(key))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Checks an email and password, slowing down repeated failures per account and per
/// source address (past `limits`). Argon2 runs through `hasher` (bounded, off the async
/// workers); an unknown email is checked against a dummy hash.
pub async fn authenticate(
    db: &DatabaseConnection,
    hasher: &Hasher,
    limits: LoginLimits,
    email: &str,
    password: &str,
    address: &str,
) -> Result<Result<UserId, LoginError>, anyhow::Error> {
    let email = email.trim().to_lowercase();
    // The key column holds 300 characters; no account's email is longer than 254 (see
    // `parse_email`), so a longer one is counted under its hash rather than failing the
    // insert (a 500 that sqlmap found with long payloads).
    let account_key = if email.len() <= 254 {
        format!("acct:{email}")
    } else {
        format!("acct:#{}", hash(&email))
    };
    let address_key = format!("ip:{address}");
    let blocked = [
        blocked_until(db, &account_key).await?,
        blocked_until(db, &address_key).await?,
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(until) = blocked {
        return Ok(Err(LoginError::Throttled(until)));
    }
    let found = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db)
        .await?;
    let phc = found
        .as_ref()
        .map_or_else(dummy_hash, |u| u.password_hash.clone());
    let ok = hasher.verify(password.to_string(), phc).await?;
    match found {
        Some(u) if ok && u.active => {
            auth_throttle::Entity::delete_many()
                .filter(auth_throttle::Column::Key.eq(account_key))
                .exec(db)
                .await?;
            Ok(Ok(UserId(u.id)))
        }
        _ => {
            let free = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
            count_failure(db, &account_key, free(limits.account_free_failures)).await?;
            count_failure(db, &address_key, free(limits.address_free_failures)).await?;
            Ok(Err(LoginError::Invalid))
        }
    }
}

/// Requests a password reset: when an active account has this email, a single-use link
/// valid for an hour is mailed to it. The caller shows the same answer either way, and
/// requests for one address are limited so nobody can flood an inbox.
pub async fn request_password_reset(
    db: &DatabaseConnection,
    email: &str,
    base_url: &str,
) -> Result<(), anyhow::Error> {
    let Some(email) = parse_email(email) else {
        return Ok(());
    };
    let key = format!("reset:{email}");
    if blocked_until(db, &key).await?.is_some() {
        return Ok(());
    }
    count_failure(db, &key, 3).await?;
    let Some(u) = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .filter(user::Column::Active.eq(true))
        .one(db)
        .await?
    else {
        return Ok(());
    };
    let txn = db.begin().await?;
    let token = issue_token(&txn, u.id, "password_reset", Duration::hours(1)).await?;
    let link = format!(
        "{}/password/reset?token={token}",
        base_url.trim_end_matches('/')
    );
    queue_account_mail(&txn, "password_reset", &u, json!({ "link": link })).await?;
    txn.commit().await?;
    Ok(())
}

/// Sets a new password: every session of the user ends (sign in again everywhere), and
/// the user is told by email — a change they did not make is how they notice.
pub async fn set_password(
    db: &DatabaseConnection,
    hasher: &Hasher,
    user_id: Uuid,
    password: &str,
    base_url: &str,
) -> Result<(), anyhow::Error> {
    let hash = hasher.hash(password.to_string()).await?;
    let txn = db.begin().await?;
    let u = user::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user vanished"))?;
    let mut am: user::ActiveModel = u.clone().into();
    am.password_hash = Set(hash);
    am.updated_at = Set(store::now());
    sea_orm::ActiveModelTrait::update(am, &txn).await?;
    entity::session::Entity::delete_many()
        .filter(entity::session::Column::UserId.eq(user_id))
        .exec(&txn)
        .await?;
    let link = format!("{}/password/forgot", base_url.trim_end_matches('/'));
    queue_account_mail(&txn, "password_changed", &u, json!({ "link": link })).await?;
    txn.commit().await?;
    Ok(())
}

/// A company member as the members page lists them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Member {
    /// The user.
    pub user_id: Uuid,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Company admin or member.
    pub admin: bool,
    /// Can sign in and see the company's applications.
    pub active: bool,
    /// Has not accepted the invitation yet.
    pub pending: bool,
}

/// The company `user` belongs to, and whether they are its admin.
pub async fn membership<C: ConnectionTrait>(
    db: &C,
    user: Uuid,
) -> Result<Option<(Uuid, bool)>, DbErr> {
    Ok(company_member::Entity::find()
        .filter(company_member::Column::UserId.eq(user))
        .filter(company_member::Column::Active.eq(true))
        .one(db)
        .await?
        .map(|m| (m.company_id, m.role == CompanyRole::Admin)))
}

/// Every member of a company, admins first.
pub async fn members(db: &DatabaseConnection, company: Uuid) -> Result<Vec<Member>, DbErr> {
    let rows = company_member::Entity::find()
        .filter(company_member::Column::CompanyId.eq(company))
        .all(db)
        .await?;
    let mut out = Vec::new();
    for m in rows {
        if let Some(u) = user::Entity::find_by_id(m.user_id).one(db).await? {
            out.push(Member {
                user_id: u.id,
                name: u.name,
                email: u.email,
                admin: m.role == CompanyRole::Admin,
                active: m.active && u.active,
                pending: u.password_hash == NO_PASSWORD,
            });
        }
    }
    out.sort_by(|a, b| b.admin.cmp(&a.admin).then(a.email.cmp(&b.email)));
    Ok(out)
}

/// The stored hash of an account whose owner has not chosen a password yet: not a valid
/// PHC string, so no password ever matches it.
const NO_PASSWORD: &str = "!invited";

/// The company admin invites a colleague: an account without a password, a membership,
/// and an email with a link (valid 7 days) to choose a password.
pub async fn invite_member(
    db: &DatabaseConnection,
    admin: Uuid,
    email: &str,
    name: &str,
    locale: &str,
    base_url: &str,
) -> Result<Result<Uuid, Vec<FieldError>>, anyhow::Error> {
    let Some((company, true)) = membership(db, admin).await? else {
        return Ok(Err(vec![err("email", "not-company-admin")]));
    };
    let mut errors = Vec::new();
    let name = name.trim();
    if name.is_empty() {
        errors.push(err("name", "required"));
    }
    let email = required_email("email", email, &mut errors);
    if let Some(e) = &email
        && user::Entity::find()
            .filter(user::Column::Email.eq(e.as_str()))
            .one(db)
            .await?
            .is_some()
    {
        errors.push(err("email", "email-taken"));
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Ok(Err(errors));
    };
    let txn = db.begin().await?;
    let now = store::now();
    let id = Uuid::now_v7();
    let u = user::ActiveModel {
        id: Set(id),
        email: Set(email),
        name: Set(name.to_string()),
        password_hash: Set(NO_PASSWORD.to_string()),
        locale: Set(locale.to_string()),
        active: Set(true),
        email_verified_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    company_member::ActiveModel {
        id: Set(Uuid::now_v7()),
        company_id: Set(company),
        user_id: Set(id),
        role: Set(CompanyRole::Member),
        active: Set(true),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let token = issue_token(&txn, id, "invitation", Duration::days(7)).await?;
    let company_name = company::Entity::find_by_id(company)
        .one(&txn)
        .await?
        .map(|c| c.name)
        .unwrap_or_default();
    let link = format!(
        "{}/invitation?token={token}",
        base_url.trim_end_matches('/')
    );
    queue_account_mail(
        &txn,
        "invitation",
        &u,
        json!({ "link": link, "company": company_name }),
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(id))
}

/// The invited colleague chooses a password with the link from the invitation; their
/// email counts as verified (they received the link). Returns the user.
pub async fn accept_invitation(
    db: &DatabaseConnection,
    hasher: &Hasher,
    token: &str,
    password: &str,
) -> Result<Result<Uuid, TokenError>, anyhow::Error> {
    let user_id = match consume_token(db, "invitation", token).await? {
        Ok(u) => u,
        Err(e) => return Ok(Err(e)),
    };
    let hash = hasher.hash(password.to_string()).await?;
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .col_expr(
            user::Column::EmailVerifiedAt,
            Expr::value(Some(store::now())),
        )
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(Ok(user_id))
}

/// The company admin deactivates (or reactivates) a colleague. A deactivated colleague
/// cannot sign in and every session of theirs ends at once. Admins cannot lock themselves
/// out.
pub async fn set_member_active(
    db: &DatabaseConnection,
    admin: Uuid,
    member: Uuid,
    active: bool,
) -> Result<bool, anyhow::Error> {
    let Some((company, true)) = membership(db, admin).await? else {
        return Ok(false);
    };
    if admin == member {
        return Ok(false);
    }
    let txn = db.begin().await?;
    let res = company_member::Entity::update_many()
        .col_expr(company_member::Column::Active, Expr::value(active))
        .filter(company_member::Column::CompanyId.eq(company))
        .filter(company_member::Column::UserId.eq(member))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    user::Entity::update_many()
        .col_expr(user::Column::Active, Expr::value(active))
        .filter(user::Column::Id.eq(member))
        .exec(&txn)
        .await?;
    if !active {
        entity::session::Entity::delete_many()
            .filter(entity::session::Column::UserId.eq(member))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_must_be_long_and_strong() {
        assert_eq!(check_password("short", &[]), Err("password-too-short"));
        assert_eq!(
            check_password("passwordpassword", &[]),
            Err("password-weak")
        );
        assert_eq!(
            check_password(&"x".repeat(129), &[]),
            Err("password-too-long")
        );
        assert_eq!(
            check_password("天津智港公司", &[]),
            Err("password-too-short")
        );
        assert!(check_password("violet-harbour-tractor-58", &[]).is_ok());
        assert_eq!(
            check_password("TianjinRobotics2026", &["TianjinRobotics"]),
            Err("password-weak"),
            "the company's own name does not make a strong password"
        );
    }

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            parse_email(" Li.Ming@Example.CN "),
            Some("li.ming@example.cn".into())
        );
        assert_eq!(parse_email("no-at-sign"), None);
        assert_eq!(parse_email("a@localhost"), None);
    }
}
