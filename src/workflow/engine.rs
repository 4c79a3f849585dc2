//! The workflow engine: a pure transition function.
//!
//! [`decide`] takes a definition, the application's state, the actor with their roles and
//! an action, and returns either a [`Refusal`] with the reason or a [`Transition`]: the new
//! state plus its effects (tasks opened and changed, the history event, notifications).
//! It does no I/O: the clock, the calendar, the organization directory and new ids come in
//! through [`Context`] and the `new_id` callback, so the same input always gives the same
//! output, and the store applies the result in one database transaction.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use entity::enums::{ApplicationStatus, OrgKind, TaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::calendar::{Calendar, local_date};
use crate::ids::{OrgId, TaskId, UserId};
use crate::organizations::OrgDirectory;
use crate::workflow::definition::{
    Definition, FieldType, OrgRef, Participant, Step, StepKind, Target,
};

/// The longest text (opinion, reason, comment) the engine accepts, in characters.
pub const MAX_TEXT: usize = 5000;

/// One organization's task on a step, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    /// Id.
    pub id: TaskId,
    /// The step it belongs to.
    pub step: String,
    /// The organization that must act.
    pub org: OrgId,
    /// The application's round when it was opened (each entry into a step is a new round).
    pub round: i32,
    /// Status.
    pub status: TaskStatus,
    /// The reviewer holding it, once claimed.
    pub claimant: Option<UserId>,
    /// Who delegated it to the claimant (委派): it comes back to them when the delegate acts.
    pub delegated_by: Option<UserId>,
    /// Who closed it.
    pub acted_by: Option<UserId>,
    /// Promised date.
    pub due: NaiveDate,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
}

impl TaskState {
    /// Open or claimed: still waiting for a decision.
    pub fn is_live(&self) -> bool {
        match self.status {
            TaskStatus::Open | TaskStatus::Claimed => true,
            TaskStatus::Approved
            | TaskStatus::Returned
            | TaskStatus::Rejected
            | TaskStatus::Cancelled
            | TaskStatus::Removed => false,
        }
    }
}

/// What the applicant must fix: a section of the form or a material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A section of the form.
    Section,
    /// A material (attachment).
    Material,
}

/// One item of a return for revision (补正).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnItem {
    /// Section or material.
    pub kind: ItemKind,
    /// Its id in the definition.
    pub id: String,
    /// What is needed.
    pub note: String,
}

/// One organization's return for revision in a countersign round (一次性告知).
///
/// While other organizations of the step still have live tasks, a return is held here and
/// the application stays in review; when the last live task of the step closes, every held
/// return is merged into one return to the applicant. While the application is returned,
/// the list says which organization asked for which items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldReturn {
    /// The task that was closed as returned.
    pub task: TaskId,
    /// The organization that returned.
    pub org: OrgId,
    /// The reviewer who returned.
    pub by: UserId,
    /// What the organization asks to fix.
    pub items: Vec<ReturnItem>,
    /// The organization's comment.
    pub comment: String,
}

/// The state of an application that the engine reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppState {
    /// Status.
    pub status: ApplicationStatus,
    /// Current step (kept while returned, so resubmission resumes there).
    pub step: Option<String>,
    /// Incremented at each entry into a step.
    pub round: i32,
    /// Promised date of the current step.
    pub step_due: Option<NaiveDate>,
    /// Promised date of the whole case, when the type promises one.
    pub case_due: Option<NaiveDate>,
    /// Date by which the applicant should answer a return.
    pub revision_due: Option<NaiveDate>,
    /// Working days left on the step when it was returned (the clock is paused).
    pub paused_step_days: Option<u32>,
    /// Working days left on the case when it was returned.
    pub paused_case_days: Option<u32>,
    /// What the applicant must fix, while returned.
    pub return_items: Vec<ReturnItem>,
    /// Returns of the current round by organization: held while the application is in
    /// review and other organizations of the step are still deciding; while returned, who
    /// asked for what in the merged return. Empty otherwise.
    #[serde(default)]
    pub held_returns: Vec<HeldReturn>,
    /// When first submitted.
    pub submitted_at: Option<DateTime<Utc>>,
    /// When decided or withdrawn.
    pub decided_at: Option<DateTime<Utc>>,
    /// Tasks of the current round.
    pub tasks: Vec<TaskState>,
}

impl AppState {
    /// A new draft.
    pub fn draft() -> Self {
        Self {
            status: ApplicationStatus::Draft,
            step: None,
            round: 0,
            step_due: None,
            case_due: None,
            revision_due: None,
            paused_step_days: None,
            paused_case_days: None,
            return_items: Vec::new(),
            held_returns: Vec::new(),
            submitted_at: None,
            decided_at: None,
            tasks: Vec::new(),
        }
    }

    /// Approved, rejected or withdrawn (办结).
    pub fn is_closed(&self) -> bool {
        match self.status {
            ApplicationStatus::Approved
            | ApplicationStatus::Rejected
            | ApplicationStatus::Withdrawn => true,
            ApplicationStatus::Draft
            | ApplicationStatus::Submitted
            | ApplicationStatus::InReview
            | ApplicationStatus::Returned => false,
        }
    }
}

/// Who is acting, with the roles that matter for this application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The user.
    pub user: UserId,
    /// A member of the application's company.
    pub applicant: bool,
    /// Organizations in which the user may act on tasks (reviewers and org admins).
    pub reviewer_of: BTreeSet<OrgId>,
    /// Organizations the user administers.
    pub admin_of: BTreeSet<OrgId>,
    /// A system administrator.
    pub system_admin: bool,
}

/// A colleague a task is handed to, with the organizations where they review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignee {
    /// The user.
    pub user: UserId,
    /// Their organizations (as reviewer or org admin), looked up by the store.
    pub orgs: BTreeSet<OrgId>,
}

/// What someone wants to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The applicant submits a draft.
    Submit,
    /// The applicant resubmits after a return.
    Resubmit {
        /// A note to the reviewers.
        note: Option<String>,
    },
    /// The applicant withdraws before a decision.
    Withdraw {
        /// Why (optional).
        reason: Option<String>,
    },
    /// A reviewer takes a task.
    Claim {
        /// The task.
        task: TaskId,
    },
    /// A reviewer gives a claimed task back to the organization's queue.
    Release {
        /// The task.
        task: TaskId,
    },
    /// A reviewer approves for their organization.
    Approve {
        /// The task.
        task: TaskId,
        /// The opinion (required).
        opinion: String,
    },
    /// A reviewer returns the application for revision, listing everything to fix. On a
    /// countersign step whose other organizations are still deciding, the return is held
    /// (see [`HeldReturn`]) and the applicant gets one merged return when the step's last
    /// live task closes (一次性告知).
    Return {
        /// The task.
        task: TaskId,
        /// Items to fix (at least one).
        items: Vec<ReturnItem>,
        /// What is needed, in general.
        comment: String,
    },
    /// A reviewer rejects the application.
    Reject {
        /// The task.
        task: TaskId,
        /// The reason, shown to the applicant (required).
        reason: String,
    },
    /// 转办: hand the task to a colleague for good.
    Transfer {
        /// The task.
        task: TaskId,
        /// The colleague.
        to: Assignee,
    },
    /// 委派: hand the task to a colleague; it comes back when they act.
    Delegate {
        /// The task.
        task: TaskId,
        /// The colleague.
        to: Assignee,
    },
    /// A note (internal: reviewers only) or a message the applicant sees.
    Comment {
        /// The text.
        text: String,
        /// Reviewers only.
        internal: bool,
    },
    /// 催办: remind the holder of an overdue task.
    Remind {
        /// The task.
        task: TaskId,
    },
    /// 加签: the lead adds a countersigning organization while the step runs.
    AddSigner {
        /// The organization to add.
        org: OrgId,
        /// Why.
        reason: String,
    },
    /// 减签: the lead removes a countersigning organization's task.
    RemoveSigner {
        /// The task to remove.
        task: TaskId,
        /// Why.
        reason: String,
    },
}

/// The kind of an action, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// See [`Action::Submit`].
    Submit,
    /// See [`Action::Resubmit`].
    Resubmit,
    /// See [`Action::Withdraw`].
    Withdraw,
    /// See [`Action::Claim`].
    Claim,
    /// See [`Action::Release`].
    Release,
    /// See [`Action::Approve`].
    Approve,
    /// See [`Action::Return`].
    Return,
    /// See [`Action::Reject`].
    Reject,
    /// See [`Action::Transfer`].
    Transfer,
    /// See [`Action::Delegate`].
    Delegate,
    /// See [`Action::Comment`].
    Comment,
    /// See [`Action::Remind`].
    Remind,
    /// See [`Action::AddSigner`].
    AddSigner,
    /// See [`Action::RemoveSigner`].
    RemoveSigner,
}

impl ActionKind {
    /// Every kind, for tables and tests.
    pub const ALL: [ActionKind; 14] = [
        ActionKind::Submit,
        ActionKind::Resubmit,
        ActionKind::Withdraw,
        ActionKind::Claim,
        ActionKind::Release,
        ActionKind::Approve,
        ActionKind::Return,
        ActionKind::Reject,
        ActionKind::Transfer,
        ActionKind::Delegate,
        ActionKind::Comment,
        ActionKind::Remind,
        ActionKind::AddSigner,
        ActionKind::RemoveSigner,
    ];

    /// Stable name, used as the history event's kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Submit => "submit",
            ActionKind::Resubmit => "resubmit",
            ActionKind::Withdraw => "withdraw",
            ActionKind::Claim => "claim",
            ActionKind::Release => "release",
            ActionKind::Approve => "approve",
            ActionKind::Return => "return",
            ActionKind::Reject => "reject",
            ActionKind::Transfer => "transfer",
            ActionKind::Delegate => "delegate",
            ActionKind::Comment => "comment",
            ActionKind::Remind => "remind",
            ActionKind::AddSigner => "add_signer",
            ActionKind::RemoveSigner => "remove_signer",
        }
    }
}

impl Action {
    /// The kind of this action.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Submit => ActionKind::Submit,
            Action::Resubmit { .. } => ActionKind::Resubmit,
            Action::Withdraw { .. } => ActionKind::Withdraw,
            Action::Claim { .. } => ActionKind::Claim,
            Action::Release { .. } => ActionKind::Release,
            Action::Approve { .. } => ActionKind::Approve,
            Action::Return { .. } => ActionKind::Return,
            Action::Reject { .. } => ActionKind::Reject,
            Action::Transfer { .. } => ActionKind::Transfer,
            Action::Delegate { .. } => ActionKind::Delegate,
            Action::Comment { .. } => ActionKind::Comment,
            Action::Remind { .. } => ActionKind::Remind,
            Action::AddSigner { .. } => ActionKind::AddSigner,
            Action::RemoveSigner { .. } => ActionKind::RemoveSigner,
        }
    }

    /// The task the action is about, if any.
    pub fn task(&self) -> Option<TaskId> {
        match self {
            Action::Claim { task }
            | Action::Release { task }
            | Action::Approve { task, .. }
            | Action::Return { task, .. }
            | Action::Reject { task, .. }
            | Action::Transfer { task, .. }
            | Action::Delegate { task, .. }
            | Action::Remind { task }
            | Action::RemoveSigner { task, .. } => Some(*task),
            Action::Submit
            | Action::Resubmit { .. }
            | Action::Withdraw { .. }
            | Action::Comment { .. }
            | Action::AddSigner { .. } => None,
        }
    }
}

/// Why an action was refused. Each has a stable [`Refusal::code`] for translations and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The actor has no role that allows this.
    NotPermitted,
    /// The action does not apply in the application's status.
    WrongStatus {
        /// Current status.
        status: ApplicationStatus,
        /// What was attempted.
        action: ActionKind,
    },
    /// No such task in the current step.
    UnknownTask,
    /// The task was already decided or closed (someone else acted first).
    TaskClosed,
    /// Another reviewer holds the task.
    ClaimedByOther,
    /// The actor already holds the task.
    AlreadyClaimed,
    /// The task is not claimed.
    NotClaimed,
    /// An opinion is required.
    OpinionRequired,
    /// A reason is required.
    ReasonRequired,
    /// A return must list at least one item.
    ItemsRequired,
    /// A return item names no section or material of the form.
    UnknownItem(String),
    /// The text is empty or too long.
    TextRequired,
    /// Reminders are for overdue tasks.
    NotOverdue,
    /// The colleague does not review for the task's organization.
    NotAColleague,
    /// A task cannot be handed to oneself.
    SameUser,
    /// A delegated task cannot be delegated again by the delegate.
    AlreadyDelegated,
    /// The current step is not a countersign step with a lead.
    NotCountersign,
    /// The organization already takes part in this step.
    AlreadyParticipant,
    /// Removing the task would leave the step with nobody.
    LastParticipant,
    /// The organization does not exist.
    UnknownOrganization,
    /// Required form fields are missing or invalid.
    FormIncomplete(Vec<String>),
    /// Required materials are missing.
    MaterialsMissing(Vec<String>),
    /// The route names an organization that cannot be resolved for this application.
    Unresolvable(String),
    /// The applicant's email address is not verified yet.
    EmailNotVerified,
    /// This part of the application cannot be changed now (only flagged sections of a
    /// returned application are editable).
    Locked,
}

impl Refusal {
    /// Stable code (used as message key and API problem type).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotPermitted => "not-permitted",
            Refusal::WrongStatus { .. } => "wrong-status",
            Refusal::UnknownTask => "unknown-task",
            Refusal::TaskClosed => "task-closed",
            Refusal::ClaimedByOther => "claimed-by-other",
            Refusal::AlreadyClaimed => "already-claimed",
            Refusal::NotClaimed => "not-claimed",
            Refusal::OpinionRequired => "opinion-required",
            Refusal::ReasonRequired => "reason-required",
            Refusal::ItemsRequired => "items-required",
            Refusal::UnknownItem(_) => "unknown-item",
            Refusal::TextRequired => "text-required",
            Refusal::NotOverdue => "not-overdue",
            Refusal::NotAColleague => "not-a-colleague",
            Refusal::SameUser => "same-user",
            Refusal::AlreadyDelegated => "already-delegated",
            Refusal::NotCountersign => "not-countersign",
            Refusal::AlreadyParticipant => "already-participant",
            Refusal::LastParticipant => "last-participant",
            Refusal::UnknownOrganization => "unknown-organization",
            Refusal::FormIncomplete(_) => "form-incomplete",
            Refusal::MaterialsMissing(_) => "materials-missing",
            Refusal::Unresolvable(_) => "unresolvable-organization",
            Refusal::EmailNotVerified => "email-not-verified",
            Refusal::Locked => "locked",
        }
    }

    /// Whether the refusal means someone else acted first (the web shows it as a conflict).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Refusal::TaskClosed | Refusal::ClaimedByOther | Refusal::UnknownTask
        ) || matches!(self, Refusal::WrongStatus { .. })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotPermitted => write!(f, "you are not allowed to do this"),
            Refusal::WrongStatus { status, action } => write!(
                f,
                "cannot {} an application that is {:?}",
                action.as_str(),
                status
            ),
            Refusal::UnknownTask => write!(f, "the task is not part of the current step"),
            Refusal::TaskClosed => write!(f, "the task was already handled"),
            Refusal::ClaimedByOther => write!(f, "another reviewer holds the task"),
            Refusal::AlreadyClaimed => write!(f, "you already hold the task"),
            Refusal::NotClaimed => write!(f, "the task is not claimed"),
            Refusal::OpinionRequired => write!(f, "an opinion is required"),
            Refusal::ReasonRequired => write!(f, "a reason is required"),
            Refusal::ItemsRequired => write!(f, "list at least one item to fix"),
            Refusal::UnknownItem(i) => {
                write!(f, "\"{i}\" is not a section or material of the form")
            }
            Refusal::TextRequired => {
                write!(f, "the text is empty or longer than {MAX_TEXT} characters")
            }
            Refusal::NotOverdue => write!(f, "the task is not overdue"),
            Refusal::NotAColleague => {
                write!(f, "the colleague does not review for this organization")
            }
            Refusal::SameUser => write!(f, "you cannot hand a task to yourself"),
            Refusal::AlreadyDelegated => write!(f, "a delegated task cannot be delegated again"),
            Refusal::NotCountersign => write!(
                f,
                "the current step is not a countersign step led by your organization"
            ),
            Refusal::AlreadyParticipant => {
                write!(f, "the organization already takes part in this step")
            }
            Refusal::LastParticipant => write!(f, "the step would have no participant left"),
            Refusal::UnknownOrganization => write!(f, "unknown organization"),
            Refusal::FormIncomplete(fields) => {
                write!(f, "missing or invalid answers: {}", fields.join(", "))
            }
            Refusal::MaterialsMissing(m) => write!(f, "missing materials: {}", m.join(", ")),
            Refusal::Unresolvable(s) => {
                write!(f, "step \"{s}\" has no organization for this application")
            }
            Refusal::EmailNotVerified => write!(f, "confirm your email address before submitting"),
            Refusal::Locked => write!(f, "this part of the application cannot be changed now"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Everything the engine reads besides the state: the definition, the form, the
/// organizations, the calendar and the time.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The definition version the application runs on.
    pub definition: &'a Definition,
    /// The form data (a JSON object).
    pub form: &'a Value,
    /// The applicant company's district.
    pub company_district: Option<OrgId>,
    /// Organizations.
    pub orgs: &'a OrgDirectory,
    /// Working-day calendar.
    pub calendar: &'a Calendar,
    /// Now.
    pub now: DateTime<Utc>,
    /// Materials required by the definition that the application lacks (checked at submission).
    pub missing_materials: &'a [String],
    /// Organizations that had a task on this application in any round.
    pub involved_orgs: &'a BTreeSet<OrgId>,
    /// Every task of this application in any round, so an action on a task of an earlier
    /// round is refused as already handled rather than unknown.
    pub known_tasks: &'a BTreeSet<TaskId>,
}

/// Who a notification goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", content = "id", rename_all = "snake_case")]
pub enum Audience {
    /// Every active member of the applicant company.
    CompanyMembers,
    /// Every active reviewer of an organization.
    OrgReviewers(OrgId),
    /// One user.
    User(UserId),
}

/// A notification the state change causes; the store writes it to the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The event (`submitted`, `task_arrived`, `returned`, …): the template's name.
    pub kind: String,
    /// Recipients.
    pub audience: Audience,
    /// Template data.
    pub data: Value,
}

/// The history event a transition records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Kind (the action's name).
    pub kind: ActionKind,
    /// Reviewers only.
    pub internal: bool,
    /// The organization the actor acted for.
    pub actor_org: Option<OrgId>,
    /// Action-specific details (opinion, reason, items, …).
    pub details: Value,
}

/// The result of an allowed action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub state: AppState,
    /// Tasks to insert.
    pub opened: Vec<TaskState>,
    /// Existing tasks with their new values.
    pub updated: Vec<TaskState>,
    /// The history event.
    pub event: EventRecord,
    /// Notifications to queue.
    pub notifications: Vec<Notification>,
}

/// Decides an action: a refusal with the reason, or the transition to apply.
pub fn decide(
    ctx: &Context<'_>,
    state: &AppState,
    actor: &Actor,
    action: &Action,
    new_id: &mut dyn FnMut() -> Uuid,
) -> Result<Transition, Refusal> {
    use ActionKind as K;
    use ApplicationStatus as S;

    let mut w = Work {
        ctx,
        before: state,
        state: state.clone(),
        tasks: state.tasks.clone(),
        notifications: Vec::new(),
        details: json!({}),
        internal: false,
        actor_org: None,
        new_id,
        today: local_date(ctx.now),
    };
    let kind = action.kind();
    // Exhaustive over (status, action kind): adding a status or an action forces a decision here.
    match (state.status, kind) {
        (S::Draft, K::Submit) => w.submit(actor)?,
        (
            S::Submitted | S::InReview | S::Returned | S::Approved | S::Rejected | S::Withdrawn,
            K::Submit,
        ) => return Err(wrong(state, kind)),

        (S::Returned, K::Resubmit) => w.resubmit(actor, action)?,
        (
            S::Draft | S::Submitted | S::InReview | S::Approved | S::Rejected | S::Withdrawn,
            K::Resubmit,
        ) => return Err(wrong(state, kind)),

        (S::Submitted | S::InReview | S::Returned, K::Withdraw) => w.withdraw(actor, action)?,
        (S::Draft | S::Approved | S::Rejected | S::Withdrawn, K::Withdraw) => {
            return Err(wrong(state, kind));
        }

        (
            S::Submitted | S::InReview,
            K::Claim
            | K::Release
            | K::Approve
            | K::Return
            | K::Reject
            | K::Transfer
            | K::Delegate
            | K::Remind
            | K::AddSigner
            | K::RemoveSigner,
        ) => w.task_action(actor, action)?,
        (
            S::Draft | S::Returned | S::Approved | S::Rejected | S::Withdrawn,
            K::Claim
            | K::Release
            | K::Approve
            | K::Return
            | K::Reject
            | K::Transfer
            | K::Delegate
            | K::Remind
            | K::AddSigner
            | K::RemoveSigner,
        ) => return Err(wrong(state, kind)),

        (
            S::Submitted | S::InReview | S::Returned | S::Approved | S::Rejected | S::Withdrawn,
            K::Comment,
        ) => w.comment(actor, action)?,
        (S::Draft, K::Comment) => return Err(wrong(state, kind)),
    }
    Ok(w.finish(kind))
}

/// The steps an application with this form will pass through, in order: the route from
/// the start, taking the first branch whose condition holds and leaving out steps whose
/// condition does not (what the applicant's progress timeline shows).
pub fn planned_route<'d>(def: &'d Definition, form: &Value) -> Vec<&'d Step> {
    let mut out: Vec<&Step> = Vec::new();
    let mut target = Target::Step(def.start.clone());
    while let Target::Step(id) = target {
        let Some(step) = def.step(&id) else { break };
        if out.iter().any(|s| s.id == step.id) {
            break;
        }
        if step.when.as_ref().is_none_or(|c| c.holds(form)) {
            out.push(step);
        }
        target = step
            .next
            .iter()
            .find(|b| b.when.as_ref().is_none_or(|c| c.holds(form)))
            .map(|b| b.to.clone())
            .unwrap_or(Target::End);
    }
    out
}

fn wrong(state: &AppState, action: ActionKind) -> Refusal {
    Refusal::WrongStatus {
        status: state.status,
        action,
    }
}

fn text_ok(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty() && t.chars().count() <= MAX_TEXT
}

struct Work<'c, 'a> {
    ctx: &'c Context<'a>,
    before: &'c AppState,
    state: AppState,
    /// Every task touched: the current round's, plus any opened now.
    tasks: Vec<TaskState>,
    notifications: Vec<Notification>,
    details: Value,
    internal: bool,
    actor_org: Option<OrgId>,
    new_id: &'c mut dyn FnMut() -> Uuid,
    today: NaiveDate,
}

impl Work<'_, '_> {
    fn notify(&mut self, kind: &str, audience: Audience, data: Value) {
        self.notifications.push(Notification {
            kind: kind.to_string(),
            audience,
            data,
        });
    }

    fn detail(&mut self, key: &str, value: Value) {
        if let Value::Object(map) = &mut self.details {
            map.insert(key.to_string(), value);
        }
    }

    fn finish(mut self, kind: ActionKind) -> Transition {
        let round = self.state.round;
        let mut opened = Vec::new();
        let mut updated = Vec::new();
        for t in &self.tasks {
            match self.before.tasks.iter().find(|b| b.id == t.id) {
                None => opened.push(t.clone()),
                Some(b) if b != t => updated.push(t.clone()),
                Some(_) => {}
            }
        }
        self.state.tasks = self
            .tasks
            .iter()
            .filter(|t| t.round == round)
            .cloned()
            .collect();
        Transition {
            state: self.state,
            opened,
            updated,
            event: EventRecord {
                kind,
                internal: self.internal,
                actor_org: self.actor_org,
                details: self.details,
            },
            notifications: self.notifications,
        }
    }

    // ---- applicant actions ------------------------------------------------------------

    fn submit(&mut self, actor: &Actor) -> Result<(), Refusal> {
        if !actor.applicant {
            return Err(Refusal::NotPermitted);
        }
        self.check_form()?;
        if !self.ctx.missing_materials.is_empty() {
            return Err(Refusal::MaterialsMissing(
                self.ctx.missing_materials.to_vec(),
            ));
        }
        let def = self.ctx.definition;
        self.state.status = ApplicationStatus::Submitted;
        self.state.submitted_at = Some(self.ctx.now);
        self.state.case_due = def
            .case_promised_days
            .map(|d| self.ctx.calendar.add_working_days(self.today, d));
        self.enter(Target::Step(def.start.clone()), None)?;
        if !self.state.is_closed() {
            self.notify("submitted", Audience::CompanyMembers, json!({}));
        }
        Ok(())
    }

    fn resubmit(&mut self, actor: &Actor, action: &Action) -> Result<(), Refusal> {
        if !actor.applicant {
            return Err(Refusal::NotPermitted);
        }
        self.check_form()?;
        if !self.ctx.missing_materials.is_empty() {
            return Err(Refusal::MaterialsMissing(
                self.ctx.missing_materials.to_vec(),
            ));
        }
        if let Action::Resubmit { note: Some(n) } = action {
            if n.chars().count() > MAX_TEXT {
                return Err(Refusal::TextRequired);
            }
            self.detail("note", json!(n));
        }
        let step = self
            .state
            .step
            .clone()
            .ok_or_else(|| Refusal::Unresolvable(String::new()))?;
        // The promised-time clock resumes with what was left when the application was
        // returned (at least one working day, so reviewers are never handed a case that is
        // overdue on arrival).
        let step_days = self.state.paused_step_days.unwrap_or(0).max(1);
        if let Some(days) = self.state.paused_case_days {
            self.state.case_due = Some(self.ctx.calendar.add_working_days(self.today, days.max(1)));
        }
        self.state.paused_step_days = None;
        self.state.paused_case_days = None;
        self.state.revision_due = None;
        let items = std::mem::take(&mut self.state.return_items);
        self.state.held_returns.clear();
        self.detail("answered_items", json!(items));
        self.state.status = ApplicationStatus::InReview;
        self.enter(Target::Step(step), Some(step_days))?;
        self.notify("resubmitted", Audience::CompanyMembers, json!({}));
        Ok(())
    }

    fn withdraw(&mut self, actor: &Actor, action: &Action) -> Result<(), Refusal> {
        if !actor.applicant {
            return Err(Refusal::NotPermitted);
        }
        let mut data = json!({});
        if let Action::Withdraw { reason: Some(r) } = action {
            if r.chars().count() > MAX_TEXT {
                return Err(Refusal::TextRequired);
            }
            self.detail("reason", json!(r));
            data = json!({ "reason": r });
        }
        let orgs = self.cancel_live_tasks(None);
        for org in orgs {
            self.notify("withdrawn", Audience::OrgReviewers(org), data.clone());
        }
        self.close(ApplicationStatus::Withdrawn);
        self.notify("withdrawn", Audience::CompanyMembers, data);
        Ok(())
    }

    fn comment(&mut self, actor: &Actor, action: &Action) -> Result<(), Refusal> {
        let Action::Comment { text, internal } = action else {
            return Err(Refusal::NotPermitted);
        };
        if !text_ok(text) {
            return Err(Refusal::TextRequired);
        }
        let reviewer_org = self.involved_org_of(actor);
        let allowed = if *internal {
            reviewer_org.is_some() || actor.system_admin
        } else {
            actor.applicant || reviewer_org.is_some() || actor.system_admin
        };
        if !allowed {
            return Err(Refusal::NotPermitted);
        }
        self.actor_org = reviewer_org;
        self.internal = *internal;
        self.detail("text", json!(text.trim()));
        if !*internal && !actor.applicant {
            self.notify(
                "message",
                Audience::CompanyMembers,
                json!({ "text": text.trim() }),
            );
        }
        Ok(())
    }

    /// The actor's organizations that have (or had) a task on the application.
    fn involved_orgs_of(&self, actor: &Actor) -> Vec<OrgId> {
        let current = self.state.tasks.iter().map(|t| t.org);
        let mut orgs: BTreeSet<OrgId> = self.ctx.involved_orgs.iter().copied().collect();
        orgs.extend(current);
        orgs.into_iter()
            .filter(|o| actor.reviewer_of.contains(o) || actor.admin_of.contains(o))
            .collect()
    }

    /// An organization of the actor's that has (or had) a task on the application.
    fn involved_org_of(&self, actor: &Actor) -> Option<OrgId> {
        self.involved_orgs_of(actor).into_iter().next()
    }

    fn check_form(&self) -> Result<(), Refusal> {
        let mut bad = Vec::new();
        for f in &self.ctx.definition.fields {
            let v = self.ctx.form.get(&f.name);
            let present = match v {
                None | Some(Value::Null) => false,
                // A required yes/no field is a commitment: it counts only when affirmed.
                Some(Value::Bool(false)) if f.required => false,
                Some(Value::String(s)) => !s.trim().is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if !present {
                if f.required {
                    bad.push(f.name.clone());
                }
                continue;
            }
            let ok = match (f.field_type, v) {
                (FieldType::Text | FieldType::LongText, Some(Value::String(_))) => true,
                (FieldType::Number, Some(Value::Number(_))) => true,
                (FieldType::Boolean, Some(Value::Bool(_))) => true,
                (FieldType::Date, Some(Value::String(s))) => {
                    NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
                }
                (FieldType::Choice, Some(Value::String(s))) => f.options.contains(s),
                (FieldType::MultiChoice, Some(Value::Array(items))) => items
                    .iter()
                    .all(|i| i.as_str().is_some_and(|s| f.options.iter().any(|o| o == s))),
                (FieldType::Organization, Some(Value::String(code))) => self
                    .ctx
                    .orgs
                    .by_code(code)
                    .is_some_and(|o| Some(o.kind) == f.organization_kind),
                (
                    FieldType::Text
                    | FieldType::LongText
                    | FieldType::Number
                    | FieldType::Boolean
                    | FieldType::Date
                    | FieldType::Choice
                    | FieldType::MultiChoice
                    | FieldType::Organization,
                    _,
                ) => false,
            };
            if !ok {
                bad.push(f.name.clone());
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Refusal::FormIncomplete(bad))
        }
    }

    // ---- reviewer actions -------------------------------------------------------------

    fn task_action(&mut self, actor: &Actor, action: &Action) -> Result<(), Refusal> {
        if let Action::AddSigner { org, reason } = action {
            return self.add_signer(actor, *org, reason);
        }
        let task_id = action.task().ok_or(Refusal::UnknownTask)?;
        let idx = match self.tasks.iter().position(|t| t.id == task_id) {
            Some(i) => i,
            None if self.ctx.known_tasks.contains(&task_id) => return Err(Refusal::TaskClosed),
            None => return Err(Refusal::UnknownTask),
        };
        let task = self.tasks[idx].clone();
        let member = actor.reviewer_of.contains(&task.org) || actor.admin_of.contains(&task.org);
        let org_admin = actor.admin_of.contains(&task.org);
        self.detail("task", json!(task.id));
        self.detail("step", json!(task.step));
        self.detail("org", json!(task.org));

        match action {
            Action::Claim { .. } => {
                if !member {
                    return Err(Refusal::NotPermitted);
                }
                match (task.status, task.claimant) {
                    (TaskStatus::Open, _) => {}
                    (TaskStatus::Claimed, Some(c)) if c == actor.user => {
                        return Err(Refusal::AlreadyClaimed);
                    }
                    (TaskStatus::Claimed, _) => return Err(Refusal::ClaimedByOther),
                    (
                        TaskStatus::Approved
                        | TaskStatus::Returned
                        | TaskStatus::Rejected
                        | TaskStatus::Cancelled
                        | TaskStatus::Removed,
                        _,
                    ) => return Err(Refusal::TaskClosed),
                }
                self.internal = true;
                self.actor_org = Some(task.org);
                let t = &mut self.tasks[idx];
                t.status = TaskStatus::Claimed;
                t.claimant = Some(actor.user);
                self.mark_in_review();
            }
            Action::Release { .. } => {
                if !member {
                    return Err(Refusal::NotPermitted);
                }
                match task.status {
                    TaskStatus::Claimed => {}
                    TaskStatus::Open => return Err(Refusal::NotClaimed),
                    TaskStatus::Approved
                    | TaskStatus::Returned
                    | TaskStatus::Rejected
                    | TaskStatus::Cancelled
                    | TaskStatus::Removed => return Err(Refusal::TaskClosed),
                }
                if task.claimant != Some(actor.user) && !org_admin {
                    return Err(Refusal::ClaimedByOther);
                }
                self.internal = true;
                self.actor_org = Some(task.org);
                let t = &mut self.tasks[idx];
                // A delegate who releases hands the task back to the delegator.
                if let Some(delegator) = t.delegated_by.take() {
                    t.claimant = Some(delegator);
                } else {
                    t.status = TaskStatus::Open;
                    t.claimant = None;
                }
            }
            Action::Approve { opinion, .. } => {
                self.check_decider(actor, &task, member)?;
                if !text_ok(opinion) {
                    return Err(Refusal::OpinionRequired);
                }
                self.detail("opinion", json!(opinion.trim()));
                self.actor_org = Some(task.org);
                if self.back_to_delegator(idx, actor) {
                    return Ok(());
                }
                self.close_task(idx, TaskStatus::Approved, actor);
                self.mark_in_review();
                if !self.round_has_live_task() {
                    self.finish_round(&task.step)?;
                }
            }
            Action::Return { items, comment, .. } => {
                self.check_decider(actor, &task, member)?;
                if items.is_empty() {
                    return Err(Refusal::ItemsRequired);
                }
                let def = self.ctx.definition;
                for item in items {
                    let known = match item.kind {
                        ItemKind::Section => def.sections.iter().any(|s| s.id == item.id),
                        ItemKind::Material => def.materials.iter().any(|m| m.id == item.id),
                    };
                    if !known {
                        return Err(Refusal::UnknownItem(item.id.clone()));
                    }
                    if item.note.chars().count() > MAX_TEXT {
                        return Err(Refusal::TextRequired);
                    }
                }
                if !text_ok(comment) {
                    return Err(Refusal::TextRequired);
                }
                self.detail("items", json!(items));
                self.detail("comment", json!(comment.trim()));
                self.actor_org = Some(task.org);
                if self.back_to_delegator(idx, actor) {
                    return Ok(());
                }
                self.close_task(idx, TaskStatus::Returned, actor);
                self.mark_in_review();
                self.state.held_returns.push(HeldReturn {
                    task: task.id,
                    org: task.org,
                    by: actor.user,
                    items: items.clone(),
                    comment: comment.trim().to_string(),
                });
                if self.round_has_live_task() {
                    // 一次性告知: the other organizations of the step go on deciding and may
                    // add their own items; the applicant hears once, when the step is done.
                    // Until then the hold is for reviewers only.
                    self.internal = true;
                    self.detail("held", json!(true));
                } else {
                    self.return_merged();
                }
            }
            Action::Reject { reason, .. } => {
                self.check_decider(actor, &task, member)?;
                if !text_ok(reason) {
                    return Err(Refusal::ReasonRequired);
                }
                self.detail("reason", json!(reason.trim()));
                self.actor_org = Some(task.org);
                if self.back_to_delegator(idx, actor) {
                    return Ok(());
                }
                self.close_task(idx, TaskStatus::Rejected, actor);
                let cancelled = self.cancel_live_tasks(Some(task.id));
                for org in &cancelled {
                    self.notify("sibling_rejected", Audience::OrgReviewers(*org), json!({}));
                }
                self.close(ApplicationStatus::Rejected);
                self.notify(
                    "rejected",
                    Audience::CompanyMembers,
                    json!({ "task": task.id, "reason": reason.trim() }),
                );
            }
            Action::Transfer { to, .. } | Action::Delegate { to, .. } => {
                let delegate = matches!(action, Action::Delegate { .. });
                // A system administrator may transfer (not delegate) any live task, as an
                // org admin may in their organization: the way out for a task whose
                // organization has nobody left to reassign it.
                let overseer = org_admin || (actor.system_admin && !delegate);
                if !member && !overseer {
                    return Err(Refusal::NotPermitted);
                }
                match task.status {
                    TaskStatus::Open => {}
                    TaskStatus::Claimed => {
                        if task.claimant != Some(actor.user) && !overseer {
                            return Err(Refusal::ClaimedByOther);
                        }
                        // A delegated task goes back to its delegator; neither delegating
                        // nor transferring it again may take it elsewhere.
                        if task.delegated_by.is_some() {
                            return Err(Refusal::AlreadyDelegated);
                        }
                    }
                    TaskStatus::Approved
                    | TaskStatus::Returned
                    | TaskStatus::Rejected
                    | TaskStatus::Cancelled
                    | TaskStatus::Removed => return Err(Refusal::TaskClosed),
                }
                if to.user == actor.user {
                    return Err(Refusal::SameUser);
                }
                if !to.orgs.contains(&task.org) {
                    return Err(Refusal::NotAColleague);
                }
                self.internal = true;
                self.actor_org = Some(task.org);
                self.detail("to", json!(to.user));
                let t = &mut self.tasks[idx];
                t.status = TaskStatus::Claimed;
                t.claimant = Some(to.user);
                t.delegated_by = if delegate { Some(actor.user) } else { None };
                let kind = if delegate {
                    "task_delegated"
                } else {
                    "task_transferred"
                };
                self.notify(kind, Audience::User(to.user), json!({ "task": task.id }));
                self.mark_in_review();
            }
            Action::Remind { .. } => {
                let allowed = actor.system_admin
                    || org_admin
                    || self.involved_orgs_of(actor).iter().any(|o| *o != task.org);
                if !allowed {
                    return Err(Refusal::NotPermitted);
                }
                if !task.is_live() {
                    return Err(Refusal::TaskClosed);
                }
                if self.today <= task.due {
                    return Err(Refusal::NotOverdue);
                }
                self.internal = true;
                self.actor_org = self.involved_org_of(actor);
                let audience = match task.claimant {
                    Some(u) => Audience::User(u),
                    None => Audience::OrgReviewers(task.org),
                };
                self.notify(
                    "reminder",
                    audience,
                    json!({ "task": task.id, "due": task.due }),
                );
            }
            Action::RemoveSigner { reason, .. } => {
                let lead = self.lead_of_current(actor)?;
                if !text_ok(reason) {
                    return Err(Refusal::ReasonRequired);
                }
                if !task.is_live() {
                    return Err(Refusal::TaskClosed);
                }
                // An organization that approved or returned (held) in this round still
                // counts: the step ends with its decision.
                let others = self
                    .tasks
                    .iter()
                    .filter(|t| t.round == self.state.round && t.id != task.id)
                    .filter(|t| {
                        t.is_live()
                            || matches!(t.status, TaskStatus::Approved | TaskStatus::Returned)
                    })
                    .count();
                if others == 0 {
                    return Err(Refusal::LastParticipant);
                }
                self.internal = true;
                self.actor_org = Some(lead);
                self.detail("reason", json!(reason.trim()));
                let t = &mut self.tasks[idx];
                t.status = TaskStatus::Removed;
                t.closed_at = Some(self.ctx.now);
                t.acted_by = Some(actor.user);
                self.notify(
                    "signer_removed",
                    Audience::OrgReviewers(task.org),
                    json!({}),
                );
                if !self.round_has_live_task() {
                    self.finish_round(&task.step)?;
                }
            }
            Action::Submit
            | Action::Resubmit { .. }
            | Action::Withdraw { .. }
            | Action::Comment { .. }
            | Action::AddSigner { .. } => return Err(Refusal::NotPermitted),
        }
        Ok(())
    }

    fn check_decider(&self, actor: &Actor, task: &TaskState, member: bool) -> Result<(), Refusal> {
        if !member {
            return Err(Refusal::NotPermitted);
        }
        match task.status {
            TaskStatus::Open => Ok(()),
            TaskStatus::Claimed if task.claimant == Some(actor.user) => Ok(()),
            TaskStatus::Claimed => Err(Refusal::ClaimedByOther),
            TaskStatus::Approved
            | TaskStatus::Returned
            | TaskStatus::Rejected
            | TaskStatus::Cancelled
            | TaskStatus::Removed => Err(Refusal::TaskClosed),
        }
    }

    /// A delegate's decision is a recommendation: the task goes back to the delegator.
    fn back_to_delegator(&mut self, idx: usize, actor: &Actor) -> bool {
        let t = &mut self.tasks[idx];
        match (t.delegated_by, t.claimant) {
            (Some(delegator), Some(c)) if c == actor.user => {
                t.claimant = Some(delegator);
                t.delegated_by = None;
                let id = t.id;
                self.internal = true;
                self.detail("recommendation", json!(true));
                self.notify(
                    "delegation_returned",
                    Audience::User(delegator),
                    json!({ "task": id }),
                );
                true
            }
            _ => false,
        }
    }

    fn add_signer(&mut self, actor: &Actor, org: OrgId, reason: &str) -> Result<(), Refusal> {
        let lead = self.lead_of_current(actor)?;
        if self.ctx.orgs.by_id(org.0).is_none() {
            return Err(Refusal::UnknownOrganization);
        }
        if !text_ok(reason) {
            return Err(Refusal::ReasonRequired);
        }
        let round = self.state.round;
        if self.tasks.iter().any(|t| {
            t.round == round
                && t.org == org
                && !matches!(t.status, TaskStatus::Cancelled | TaskStatus::Removed)
        }) {
            return Err(Refusal::AlreadyParticipant);
        }
        let step = self.state.step.clone().unwrap_or_default();
        let due = self.state.step_due.unwrap_or(self.today);
        self.internal = true;
        self.actor_org = Some(lead);
        self.detail("added_org", json!(org));
        self.detail("reason", json!(reason.trim()));
        self.open_task(&step, org, due);
        Ok(())
    }

    /// The lead organization of the current countersign step, if the actor reviews for it.
    fn lead_of_current(&self, actor: &Actor) -> Result<OrgId, Refusal> {
        let step = self
            .state
            .step
            .as_deref()
            .and_then(|s| self.ctx.definition.step(s))
            .ok_or(Refusal::NotCountersign)?;
        let StepKind::Countersign {
            lead: Some(lead), ..
        } = &step.kind
        else {
            return Err(Refusal::NotCountersign);
        };
        let lead = self.resolve(step, lead)?;
        if actor.reviewer_of.contains(&lead) || actor.admin_of.contains(&lead) {
            Ok(lead)
        } else {
            Err(Refusal::NotPermitted)
        }
    }

    // ---- moving along the route -------------------------------------------------------

    fn mark_in_review(&mut self) {
        if self.state.status == ApplicationStatus::Submitted {
            self.state.status = ApplicationStatus::InReview;
        }
    }

    fn close_task(&mut self, idx: usize, status: TaskStatus, actor: &Actor) {
        let t = &mut self.tasks[idx];
        t.status = status;
        t.acted_by = Some(actor.user);
        t.claimant = t.claimant.or(Some(actor.user));
        t.closed_at = Some(self.ctx.now);
    }

    fn round_has_live_task(&self) -> bool {
        let round = self.state.round;
        self.tasks.iter().any(|t| t.round == round && t.is_live())
    }

    /// The last live task of the step has closed: one merged return to the applicant if any
    /// organization returned in this round, otherwise on along the route.
    fn finish_round(&mut self, step: &str) -> Result<(), Refusal> {
        if self.state.held_returns.is_empty() {
            self.advance(step)
        } else {
            self.return_merged();
            Ok(())
        }
    }

    /// Returns the application with every return of the round merged (一次性告知): one
    /// notification listing each item with the organization that asks for it, and each
    /// organization's comment. The promised-time clocks pause until resubmission.
    fn return_merged(&mut self) {
        let cal = self.ctx.calendar;
        // Pause the clocks: what is left now is given back at resubmission.
        self.state.paused_step_days = Some(
            self.state
                .step_due
                .map(|d| cal.working_days_between(self.today, d))
                .unwrap_or(0),
        );
        self.state.paused_case_days = self
            .state
            .case_due
            .map(|d| cal.working_days_between(self.today, d));
        self.state.step_due = None;
        self.state.case_due = None;
        self.state.revision_due =
            Some(cal.add_working_days(self.today, self.ctx.definition.revision_days));
        let held = self.state.held_returns.clone();
        self.state.return_items = held.iter().flat_map(|h| h.items.clone()).collect();
        self.state.status = ApplicationStatus::Returned;
        let items: Vec<Value> = held
            .iter()
            .flat_map(|h| {
                h.items
                    .iter()
                    .map(|i| json!({ "kind": i.kind, "id": i.id, "note": i.note, "org": h.org }))
            })
            .collect();
        let comments: Vec<Value> = held
            .iter()
            .map(|h| json!({ "org": h.org, "comment": h.comment }))
            .collect();
        let mut data = json!({
            "items": items,
            "comments": comments,
            "revision_due": self.state.revision_due,
        });
        if let ([only], Value::Object(m)) = (held.as_slice(), &mut data) {
            // One organization: the mail names it through its task, as before.
            m.insert("task".into(), json!(only.task));
            m.insert("comment".into(), json!(only.comment));
        }
        if held.len() > 1 {
            self.detail(
                "merged_from",
                json!(held.iter().map(|h| h.org).collect::<Vec<_>>()),
            );
            self.detail("merged_items", json!(self.state.return_items));
        }
        self.notify("returned", Audience::CompanyMembers, data);
    }

    /// Cancels every live task of the current round except `keep`; returns their organizations.
    fn cancel_live_tasks(&mut self, keep: Option<TaskId>) -> Vec<OrgId> {
        let now = self.ctx.now;
        let mut orgs = Vec::new();
        for t in self.tasks.iter_mut() {
            if t.is_live() && Some(t.id) != keep {
                t.status = TaskStatus::Cancelled;
                t.closed_at = Some(now);
                orgs.push(t.org);
            }
        }
        orgs
    }

    fn close(&mut self, status: ApplicationStatus) {
        self.state.status = status;
        self.state.step = None;
        self.state.step_due = None;
        self.state.case_due = None;
        self.state.revision_due = None;
        self.state.paused_step_days = None;
        self.state.paused_case_days = None;
        self.state.return_items.clear();
        // A reject or a withdrawal ends the case: returns held in the round are dropped.
        self.state.held_returns.clear();
        self.state.decided_at = Some(self.ctx.now);
    }

    fn next_target(&self, step: &Step) -> Target {
        step.next
            .iter()
            .find(|b| b.when.as_ref().is_none_or(|c| c.holds(self.ctx.form)))
            .map(|b| b.to.clone())
            // Validation guarantees an unconditional last branch.
            .unwrap_or(Target::End)
    }

    fn advance(&mut self, from: &str) -> Result<(), Refusal> {
        let step = self
            .ctx
            .definition
            .step(from)
            .ok_or_else(|| Refusal::Unresolvable(from.to_string()))?;
        let target = self.next_target(step);
        self.enter(target, None)
    }

    /// Enters `target`, skipping steps whose condition does not hold or that have no
    /// participant, opening one task per organization. `days` overrides the promised time
    /// (resumption after a return).
    fn enter(&mut self, mut target: Target, days: Option<u32>) -> Result<(), Refusal> {
        let def = self.ctx.definition;
        let mut skipped = Vec::new();
        // Each step can be skipped at most once per entry; more means a loop of skipped steps.
        for _ in 0..=def.steps.len() {
            let id = match target {
                Target::End => {
                    self.detail("skipped", json!(skipped));
                    self.close(ApplicationStatus::Approved);
                    self.notify("approved", Audience::CompanyMembers, json!({}));
                    return Ok(());
                }
                Target::Step(id) => id,
            };
            let step = def
                .step(&id)
                .ok_or_else(|| Refusal::Unresolvable(id.clone()))?;
            let applies = step.when.as_ref().is_none_or(|c| c.holds(self.ctx.form));
            let mut orgs = if applies {
                self.participants(step)?
            } else {
                Vec::new()
            };
            // Resuming a countersign step after a return keeps the lead's 加签/减签: an
            // organization added stays on, one removed stays off.
            let resuming = days.is_some() && self.before.step.as_deref() == Some(id.as_str());
            if resuming && applies {
                for t in self.before.tasks.iter().filter(|t| t.step == id) {
                    match t.status {
                        TaskStatus::Removed => orgs.retain(|o| *o != t.org),
                        TaskStatus::Open
                        | TaskStatus::Claimed
                        | TaskStatus::Approved
                        | TaskStatus::Returned
                        | TaskStatus::Rejected
                        | TaskStatus::Cancelled => {
                            if !orgs.contains(&t.org) {
                                orgs.push(t.org);
                            }
                        }
                    }
                }
            }
            if orgs.is_empty() {
                skipped.push(id.clone());
                target = self.next_target(step);
                continue;
            }
            self.state.round += 1;
            self.state.held_returns.clear();
            self.state.step = Some(id.clone());
            let due = self
                .ctx
                .calendar
                .add_working_days(self.today, days.unwrap_or(step.promised_days));
            self.state.step_due = Some(due);
            for org in &orgs {
                self.open_task(&id, *org, due);
            }
            let mut cc = Vec::new();
            for p in &step.cc {
                if p.when.as_ref().is_none_or(|c| c.holds(self.ctx.form)) {
                    let org = self.resolve(step, &p.organization)?;
                    cc.push(org);
                    self.notify("cc", Audience::OrgReviewers(org), json!({ "step": id }));
                }
            }
            self.detail("entered", json!(id));
            self.detail("skipped", json!(skipped));
            if !cc.is_empty() {
                self.detail("cc", json!(cc));
            }
            return Ok(());
        }
        Err(Refusal::Unresolvable(
            "route loops through skipped steps".into(),
        ))
    }

    fn open_task(&mut self, step: &str, org: OrgId, due: NaiveDate) {
        let id = TaskId((self.new_id)());
        self.tasks.push(TaskState {
            id,
            step: step.to_string(),
            org,
            round: self.state.round,
            status: TaskStatus::Open,
            claimant: None,
            delegated_by: None,
            acted_by: None,
            due,
            opened_at: self.ctx.now,
            closed_at: None,
        });
        self.notify(
            "task_arrived",
            Audience::OrgReviewers(org),
            json!({ "task": id, "step": step, "due": due }),
        );
    }

    fn participants(&self, step: &Step) -> Result<Vec<OrgId>, Refusal> {
        let mut out = Vec::new();
        match &step.kind {
            StepKind::Review { organization } => out.push(self.resolve(step, organization)?),
            StepKind::Countersign { participants, .. } => {
                for Participant { organization, when } in participants {
                    if when.as_ref().is_none_or(|c| c.holds(self.ctx.form)) {
                        let org = self.resolve(step, organization)?;
                        if !out.contains(&org) {
                            out.push(org);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn resolve(&self, step: &Step, r: &OrgRef) -> Result<OrgId, Refusal> {
        let unresolvable = || Refusal::Unresolvable(step.id.clone());
        let orgs = self.ctx.orgs;
        let field_org = |name: &str| {
            self.ctx
                .form
                .get(name)
                .and_then(Value::as_str)
                .and_then(|code| orgs.by_code(code))
        };
        let info = match r {
            OrgRef::Code(code) => orgs.by_code(code),
            OrgRef::CompanyDistrict => self
                .ctx
                .company_district
                .and_then(|id| orgs.by_id(id.0))
                .filter(|o| o.kind == OrgKind::District),
            OrgRef::FormField(name) => field_org(name),
            OrgRef::FormFieldSupervisor(name) => field_org(name)
                .and_then(|o| o.supervisor_code.as_deref())
                .and_then(|c| orgs.by_code(c)),
        };
        info.map(|o| OrgId(o.id)).ok_or_else(unresolvable)
    }
}
