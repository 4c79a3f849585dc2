//! Enumerations stored as stable strings, so that adding a variant never renumbers rows.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What kind of organization this is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// A city bureau (市工业和信息化委, 市科委, …).
    #[sea_orm(string_value = "city_bureau")]
    CityBureau,
    /// One of the city's districts (市区联动).
    #[sea_orm(string_value = "district")]
    District,
    /// The operator of a public platform (supercomputing, R&D, testing).
    #[sea_orm(string_value = "platform_operator")]
    PlatformOperator,
    /// The coordination mechanism led by a vice-mayor.
    #[sea_orm(string_value = "coordination_mechanism")]
    CoordinationMechanism,
}

/// A member's role inside a company.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum CompanyRole {
    /// The company's administrator: invites and deactivates colleagues.
    #[sea_orm(string_value = "admin")]
    Admin,
    /// An ordinary member: files and follows applications.
    #[sea_orm(string_value = "member")]
    Member,
}

/// A user's role inside an organization.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// Works the organization's inbox.
    #[sea_orm(string_value = "reviewer")]
    Reviewer,
    /// Manages the organization's reviewers and sees its whole queue.
    #[sea_orm(string_value = "org_admin")]
    OrgAdmin,
}

/// The status of an application, as the applicant sees it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    /// 草稿: being prepared by the company.
    #[sea_orm(string_value = "draft")]
    Draft,
    /// 已提交: submitted, no reviewer has acted yet.
    #[sea_orm(string_value = "submitted")]
    Submitted,
    /// 审核中: a reviewer has acted.
    #[sea_orm(string_value = "in_review")]
    InReview,
    /// 待补正: returned to the applicant for revision.
    #[sea_orm(string_value = "returned")]
    Returned,
    /// 已批准: approved (closed).
    #[sea_orm(string_value = "approved")]
    Approved,
    /// 未通过: rejected (closed).
    #[sea_orm(string_value = "rejected")]
    Rejected,
    /// 已撤回: withdrawn by the applicant (closed).
    #[sea_orm(string_value = "withdrawn")]
    Withdrawn,
}

impl ApplicationStatus {
    /// Every status, in the order an application moves through them.
    pub const ALL: [ApplicationStatus; 7] = [
        ApplicationStatus::Draft,
        ApplicationStatus::Submitted,
        ApplicationStatus::InReview,
        ApplicationStatus::Returned,
        ApplicationStatus::Approved,
        ApplicationStatus::Rejected,
        ApplicationStatus::Withdrawn,
    ];

    /// The status stored as `code` (`draft`, `in_review`, …).
    pub fn try_from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.to_value() == code)
    }
}

/// The status of one organization's task on a step.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for any reviewer of the organization.
    #[sea_orm(string_value = "open")]
    Open,
    /// Claimed by one reviewer.
    #[sea_orm(string_value = "claimed")]
    Claimed,
    /// The organization approved.
    #[sea_orm(string_value = "approved")]
    Approved,
    /// The organization returned the application for revision.
    #[sea_orm(string_value = "returned")]
    Returned,
    /// The organization rejected the application.
    #[sea_orm(string_value = "rejected")]
    Rejected,
    /// Closed without a decision of this organization (a sibling returned or rejected, or the applicant withdrew).
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    /// The lead organization took this organization off the countersign step (减签); it
    /// stays off when the step reopens after a return.
    #[sea_orm(string_value = "removed")]
    Removed,
}

/// Delivery status of an outbox row.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting to be sent (first time or after a temporary failure).
    #[sea_orm(string_value = "queued")]
    Queued,
    /// Delivered to the mail server.
    #[sea_orm(string_value = "sent")]
    Sent,
    /// Given up on: permanent error or too many attempts; an administrator may retry.
    #[sea_orm(string_value = "dead")]
    Dead,
}
