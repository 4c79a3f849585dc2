//! sea-orm entities of zhigang: one module per table.

pub mod account_token;
pub mod admin_event;
pub mod api_token;
pub mod application;
pub mod application_copy;
pub mod attachment;
pub mod auth_throttle;
pub mod calendar_day;
pub mod company;
pub mod company_member;
pub mod enums;
pub mod history_event;
pub mod idempotency_key;
pub mod notification_preference;
pub mod org_membership;
pub mod organization;
pub mod outbox;
pub mod rating;
pub mod reference_counter;
pub mod session;
pub mod submitted_version;
pub mod system_admin;
pub mod task;
pub mod timer;
pub mod user;
pub mod workflow_definition;
