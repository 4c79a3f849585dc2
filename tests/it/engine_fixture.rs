//! A pure, in-memory driver of the workflow engine: no database, a settable clock and
//! deterministic ids. [`World`] keeps one application and applies transitions exactly as
//! the store does (the state is replaced by `transition.state`, `opened` tasks are
//! inserted, `updated` tasks overwritten), so the engine can be exercised step by step.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use entity::enums::{ApplicationStatus, TaskStatus};
use serde_json::{Value, json};
use uuid::Uuid;
use zhigang::calendar::{Calendar, local_date};
use zhigang::ids::{OrgId, TaskId, UserId};
use zhigang::organizations::OrgDirectory;
use zhigang::workflow::definition::{self, Definition, StepKind};
use zhigang::workflow::engine::{
    Action, Actor, AppState, Assignee, Context, ItemKind, Refusal, ReturnItem, TaskState,
    Transition, decide,
};

/// The company's district in every world (滨海新区).
pub const DISTRICT: &str = "D-120116";
/// An organization that no built-in route involves.
pub const UNINVOLVED: &str = "TJ-TOURISM";

/// What every world shares: the seed organizations, the built-in calendar and the three
/// built-in definitions (parsed once; the org ids are fresh but fixed for the test run).
pub struct Env {
    /// The seed organizations.
    pub orgs: OrgDirectory,
    /// The built-in calendar.
    pub calendar: Calendar,
    /// `yqyc`, `ip_fast_track`, `platform_access`.
    pub definitions: Vec<Definition>,
}

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let orgs = OrgDirectory::from_seed().expect("seed organizations parse");
    let calendar = Calendar::builtin().expect("built-in calendar parses");
    let definitions = definition::builtin(&orgs)
        .unwrap_or_else(|e| panic!("built-in definitions are valid: {e}"))
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    Arc::new(Env {
        orgs,
        calendar,
        definitions,
    })
});

/// The shared environment.
pub fn env() -> Arc<Env> {
    Arc::clone(&ENV)
}

/// The instant every world starts at: Monday 2026-03-02, 10:00 in Beijing.
pub fn start_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0)
        .single()
        .expect("valid instant")
}

/// A calendar date (panics on an invalid one: test data).
pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

// ---- users ----------------------------------------------------------------------------

const TAG_APPLICANT: u64 = 0xA0;
const TAG_OUTSIDER: u64 = 0xA1;
const TAG_SYSADMIN: u64 = 0xA2;
const TAG_REVIEWER: u64 = 0xB0;
const TAG_COLLEAGUE: u64 = 0xB1;
const TAG_ADMIN: u64 = 0xB2;
const TAG_EXTRA: u64 = 0xC0;
const TAG_TASK: u64 = 0x7A5C;

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn user(tag: u64, key: &str) -> UserId {
    UserId(Uuid::from_u64_pair(tag, fnv1a(key)))
}

/// A member of the application's company.
pub fn applicant() -> Actor {
    Actor {
        user: user(TAG_APPLICANT, "company"),
        applicant: true,
        ..Actor::default()
    }
}

/// A member of another company (no role on this application).
pub fn outsider_applicant() -> Actor {
    Actor {
        user: user(TAG_OUTSIDER, "other company"),
        ..Actor::default()
    }
}

/// A portal operator.
pub fn system_admin() -> Actor {
    Actor {
        user: user(TAG_SYSADMIN, "operator"),
        system_admin: true,
        ..Actor::default()
    }
}

/// The `n`-th task id of a world (ids are `TAG_TASK:n`).
pub fn task_id(n: u64) -> TaskId {
    TaskId(Uuid::from_u64_pair(TAG_TASK, n))
}

/// A text for the return items: the first section of the definition.
pub fn section_item(def: &Definition) -> ReturnItem {
    ReturnItem {
        kind: ItemKind::Section,
        id: def.sections.first().expect("a section").id.clone(),
        note: "请补充完整".into(),
    }
}

// ---- forms ----------------------------------------------------------------------------

/// A complete 一企一策 form requesting `support` (options of `support_requested`).
pub fn yqyc_form(support: &[&str]) -> Value {
    json!({
        "ai_field": "smart_chips",
        "revenue": 120_000_000,
        "rd_spend": 30_000_000,
        "headcount": 85,
        "patents": 12,
        "support_requested": support,
        "amount_requested": 5_000_000,
        "plan_description": "三年内量产第二代推理芯片,建设滨海新区研发中心。",
    })
}

/// A complete IP fast-track form.
pub fn ip_form(service_kind: &str, online_infringement: bool) -> Value {
    json!({
        "service_kind": service_kind,
        "online_infringement": online_infringement,
        "ip_kind": "invention_patent",
        "ip_number": "CN202610001234.5",
        "title": "一种神经网络加速器的调度方法",
        "urgency": "竞争对手已在电商平台销售仿冒产品。",
    })
}

/// A complete platform-access form for the operator `platform` (`P-NSCC-TJ`, …).
pub fn platform_form(platform: &str, resources: &[&str]) -> Value {
    let mut form = json!({
        "platform": platform,
        "resources": resources,
        "period_start": "2026-04-01",
        "period_end": "2026-12-31",
        "purpose": "训练面向工业质检的视觉大模型。",
        "security_commitment": true,
    });
    for (field, value) in [
        ("cpu_core_hours", json!(200_000)),
        ("gpu_card_hours", json!(50_000)),
        ("storage_tb", json!(120)),
    ] {
        if resources.contains(&field) {
            form[field] = value;
        }
    }
    if resources.contains(&"public_datasets") {
        form["datasets"] = json!("天津市公共交通客流开放数据集");
    }
    form
}

// ---- the world ------------------------------------------------------------------------

/// One applied transition, with everything needed to decide it again.
#[derive(Debug, Clone)]
pub struct Record {
    /// Who acted.
    pub actor: Actor,
    /// What they did.
    pub action: Action,
    /// When.
    pub now: DateTime<Utc>,
    /// The form at that time.
    pub form: Value,
    /// The id counter before the action.
    pub ids_before: u64,
    /// The result.
    pub transition: Transition,
}

/// One application driven through the engine in memory.
#[derive(Clone)]
pub struct World {
    /// Organizations, calendar and definitions.
    pub env: Arc<Env>,
    /// Index of the definition in `env.definitions`.
    pub def_index: usize,
    /// The form data.
    pub form: Value,
    /// The company's district.
    pub district: Option<OrgId>,
    /// Required materials the application lacks.
    pub missing_materials: Vec<String>,
    /// The application's state as the store would load it.
    pub state: AppState,
    /// Organizations that ever had a task.
    pub involved: BTreeSet<OrgId>,
    /// Every task ever opened, by id.
    pub tasks: BTreeMap<TaskId, TaskState>,
    /// The ids of `tasks` (what the store passes as `known_tasks`).
    pub known_tasks: BTreeSet<TaskId>,
    /// The transitions applied, in order.
    pub history: Vec<Record>,
    /// The last id handed out by `new_id`.
    pub next_id: u64,
    /// The clock.
    pub now: DateTime<Utc>,
}

impl World {
    /// A draft of the definition `key` with `form`, company in [`DISTRICT`], at [`start_instant`].
    pub fn new(key: &str, form: Value) -> Self {
        let env = env();
        let def_index = env
            .definitions
            .iter()
            .position(|d| d.key == key)
            .unwrap_or_else(|| panic!("no built-in definition {key}"));
        let district = env.orgs.by_code(DISTRICT).map(|o| OrgId(o.id));
        Self {
            env,
            def_index,
            form,
            district,
            missing_materials: Vec::new(),
            state: AppState::draft(),
            involved: BTreeSet::new(),
            tasks: BTreeMap::new(),
            known_tasks: BTreeSet::new(),
            history: Vec::new(),
            next_id: 0,
            now: start_instant(),
        }
    }

    /// A 一企一策 draft requesting `support`.
    pub fn yqyc(support: &[&str]) -> Self {
        Self::new("yqyc", yqyc_form(support))
    }

    /// An IP fast-track draft.
    pub fn ip(service_kind: &str, online_infringement: bool) -> Self {
        Self::new("ip_fast_track", ip_form(service_kind, online_infringement))
    }

    /// A platform-access draft.
    pub fn platform(platform: &str, resources: &[&str]) -> Self {
        Self::new("platform_access", platform_form(platform, resources))
    }

    /// The definition the application runs on.
    pub fn def(&self) -> &Definition {
        &self.env.definitions[self.def_index]
    }

    /// The calendar.
    pub fn calendar(&self) -> &Calendar {
        &self.env.calendar
    }

    /// The id of the organization `code`.
    pub fn org(&self, code: &str) -> OrgId {
        self.env
            .orgs
            .by_code(code)
            .map(|o| OrgId(o.id))
            .unwrap_or_else(|| panic!("unknown organization {code}"))
    }

    /// The code of an organization id.
    pub fn code(&self, org: OrgId) -> String {
        self.env
            .orgs
            .by_id(org.0)
            .map(|o| o.code.clone())
            .unwrap_or_else(|| format!("?{org}"))
    }

    // ---- actors ---------------------------------------------------------------------

    /// A reviewer of `code`.
    pub fn reviewer(&self, code: &str) -> Actor {
        self.member(TAG_REVIEWER, code, false)
    }

    /// Another reviewer of `code` (the colleague tasks are handed to).
    pub fn colleague(&self, code: &str) -> Actor {
        self.member(TAG_COLLEAGUE, code, false)
    }

    /// The `n`-th extra reviewer of `code` (distinct from reviewer and colleague).
    pub fn reviewer_n(&self, code: &str, n: u64) -> Actor {
        self.member(TAG_EXTRA + n, code, false)
    }

    /// The org admin of `code` (as the store loads them: reviewer and admin of the org).
    pub fn org_admin(&self, code: &str) -> Actor {
        self.member(TAG_ADMIN, code, true)
    }

    fn member(&self, tag: u64, code: &str, admin: bool) -> Actor {
        let org = self.org(code);
        Actor {
            user: user(tag, code),
            applicant: false,
            reviewer_of: BTreeSet::from([org]),
            admin_of: if admin {
                BTreeSet::from([org])
            } else {
                BTreeSet::new()
            },
            system_admin: false,
        }
    }

    /// The actor as an assignee (a colleague handed a task).
    pub fn assignee(actor: &Actor) -> Assignee {
        Assignee {
            user: actor.user,
            orgs: actor.reviewer_of.clone(),
        }
    }

    /// A reviewer of `org` whose user is `user` (e.g. whoever holds a task).
    pub fn as_member(user: UserId, org: OrgId) -> Actor {
        Actor {
            user,
            applicant: false,
            reviewer_of: BTreeSet::from([org]),
            admin_of: BTreeSet::new(),
            system_admin: false,
        }
    }

    // ---- the clock --------------------------------------------------------------------

    /// Today in Beijing.
    pub fn today(&self) -> NaiveDate {
        local_date(self.now)
    }

    /// Moves the clock `n` calendar days on.
    pub fn advance_days(&mut self, n: u64) {
        self.now = self
            .now
            .checked_add_days(Days::new(n))
            .expect("date in range");
    }

    /// Moves the clock to the `n`-th working day after today (same time of day).
    pub fn advance_working_days(&mut self, n: u32) {
        let today = self.today();
        let target = self.calendar().add_working_days(today, n);
        let days = (target - today).num_days();
        self.advance_days(u64::try_from(days).expect("forward"));
    }

    /// Moves the clock to `d` (same time of day).
    pub fn set_today(&mut self, d: NaiveDate) {
        let days = (d - self.today()).num_days();
        self.now += chrono::Duration::days(days);
    }

    // ---- the engine -------------------------------------------------------------------

    /// The engine's context for the current world.
    pub fn context(&self) -> Context<'_> {
        Context {
            definition: self.def(),
            form: &self.form,
            company_district: self.district,
            orgs: &self.env.orgs,
            calendar: &self.env.calendar,
            now: self.now,
            missing_materials: &self.missing_materials,
            involved_orgs: &self.involved,
            known_tasks: &self.known_tasks,
        }
    }

    /// Decides without applying (ids are drawn from a copy of the counter).
    pub fn decide(&self, actor: &Actor, action: &Action) -> Result<(Transition, u64), Refusal> {
        let mut counter = self.next_id;
        let result = {
            let ctx = self.context();
            let mut new_id = || {
                counter += 1;
                Uuid::from_u64_pair(TAG_TASK, counter)
            };
            decide(&ctx, &self.state, actor, action, &mut new_id)
        };
        result.map(|t| (t, counter))
    }

    /// Runs the engine and, on success, applies the transition like the store.
    pub fn apply(&mut self, actor: &Actor, action: &Action) -> Result<Transition, Refusal> {
        let (transition, counter) = self.decide(actor, action)?;
        self.record(actor, action, &transition, counter);
        Ok(transition)
    }

    fn record(&mut self, actor: &Actor, action: &Action, t: &Transition, counter: u64) {
        let ids_before = self.next_id;
        self.state = t.state.clone();
        for task in &t.opened {
            self.involved.insert(task.org);
            self.known_tasks.insert(task.id);
            self.tasks.insert(task.id, task.clone());
        }
        for task in &t.updated {
            self.tasks.insert(task.id, task.clone());
        }
        self.next_id = counter;
        self.history.push(Record {
            actor: actor.clone(),
            action: action.clone(),
            now: self.now,
            form: self.form.clone(),
            ids_before,
            transition: t.clone(),
        });
    }

    /// [`World::apply`], panicking with a readable message on a refusal.
    pub fn must(&mut self, actor: &Actor, action: &Action) -> Transition {
        match self.apply(actor, action) {
            Ok(t) => t,
            Err(r) => panic!(
                "{:?} by {:?} refused: {} ({r}); state {:?} step {:?}",
                action.kind(),
                actor.user,
                r.code(),
                self.state.status,
                self.state.step
            ),
        }
    }

    // ---- tasks ------------------------------------------------------------------------

    /// The live tasks of the current round and step.
    pub fn live_tasks(&self) -> Vec<TaskState> {
        self.state
            .tasks
            .iter()
            .filter(|t| {
                t.is_live()
                    && t.round == self.state.round
                    && Some(&t.step) == self.state.step.as_ref()
            })
            .cloned()
            .collect()
    }

    /// The live task of the organization `code` on the current step.
    pub fn live_task(&self, code: &str) -> Option<TaskState> {
        let org = self.org(code);
        self.live_tasks().into_iter().find(|t| t.org == org)
    }

    /// [`World::live_task`], panicking if there is none.
    pub fn task_of(&self, code: &str) -> TaskState {
        self.live_task(code).unwrap_or_else(|| {
            panic!(
                "no live task of {code} on step {:?} (live: {:?})",
                self.state.step,
                self.live_codes()
            )
        })
    }

    /// The most recent task (any status) of `code`.
    pub fn last_task_of(&self, code: &str) -> Option<TaskState> {
        let org = self.org(code);
        self.tasks
            .values()
            .filter(|t| t.org == org)
            .max_by_key(|t| (t.round, t.id))
            .cloned()
    }

    /// Codes of the organizations with a live task, sorted.
    pub fn live_codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self.live_tasks().iter().map(|t| self.code(t.org)).collect();
        codes.sort();
        codes
    }

    // ---- common moves -----------------------------------------------------------------

    /// The applicant submits.
    pub fn submit(&mut self) -> Transition {
        self.must(&applicant(), &Action::Submit)
    }

    /// A reviewer of `code` approves their organization's live task.
    pub fn approve(&mut self, code: &str) -> Transition {
        let task = self.task_of(code).id;
        let actor = self.reviewer(code);
        self.must(
            &actor,
            &Action::Approve {
                task,
                opinion: "同意".into(),
            },
        )
    }

    /// A reviewer of `code` returns the application, naming the first section.
    pub fn return_by(&mut self, code: &str) -> Transition {
        let task = self.task_of(code).id;
        let actor = self.reviewer(code);
        let item = section_item(self.def());
        self.must(
            &actor,
            &Action::Return {
                task,
                items: vec![item],
                comment: "材料不全".into(),
            },
        )
    }

    /// A reviewer of `code` returns, and every other organization still deciding on the
    /// step approves, so the round ends and the application is returned to the applicant
    /// (on a countersign step a return is held until the step's last live task closes).
    pub fn return_round_by(&mut self, code: &str) -> Transition {
        let mut last = self.return_by(code);
        while self.state.status == ApplicationStatus::InReview {
            let Some(t) = self.live_tasks().into_iter().next() else {
                break;
            };
            let actor = match t.claimant {
                Some(u) => Self::as_member(u, t.org),
                None => Self::as_member(user(TAG_REVIEWER, &self.code(t.org)), t.org),
            };
            last = self.must(
                &actor,
                &Action::Approve {
                    task: t.id,
                    opinion: "同意".into(),
                },
            );
        }
        last
    }

    /// The applicant resubmits.
    pub fn resubmit(&mut self) -> Transition {
        self.must(&applicant(), &Action::Resubmit { note: None })
    }

    /// Approves every live task (as a reviewer of its org, or its holder) once.
    pub fn approve_all_live(&mut self) {
        for t in self.live_tasks() {
            let actor = match t.claimant {
                Some(u) => Self::as_member(u, t.org),
                None => Self::as_member(user(TAG_REVIEWER, &self.code(t.org)), t.org),
            };
            self.must(
                &actor,
                &Action::Approve {
                    task: t.id,
                    opinion: "同意".into(),
                },
            );
        }
    }

    /// Submits if needed, then approves until the current step is `step`.
    pub fn advance_to_step(&mut self, step: &str) {
        if self.state.status == ApplicationStatus::Draft {
            self.submit();
        }
        for _ in 0..20 {
            if self.state.step.as_deref() == Some(step) {
                return;
            }
            assert!(
                !self.state.is_closed(),
                "closed before reaching step {step}"
            );
            self.approve_all_live();
        }
        panic!("step {step} not reached");
    }

    /// One move of the greedy driver: submit a draft, resubmit a return, otherwise let the
    /// holder (or a reviewer) of every live task approve. `Ok(false)` once closed.
    pub fn greedy_step(&mut self) -> Result<bool, String> {
        let refused = |what: &str, r: Refusal| format!("greedy {what} refused: {} ({r})", r.code());
        match self.state.status {
            ApplicationStatus::Approved
            | ApplicationStatus::Rejected
            | ApplicationStatus::Withdrawn => Ok(false),
            ApplicationStatus::Draft => self
                .apply(&applicant(), &Action::Submit)
                .map(|_| true)
                .map_err(|r| refused("submit", r)),
            ApplicationStatus::Returned => self
                .apply(&applicant(), &Action::Resubmit { note: None })
                .map(|_| true)
                .map_err(|r| refused("resubmit", r)),
            ApplicationStatus::Submitted | ApplicationStatus::InReview => {
                let live = self.live_tasks();
                if live.is_empty() {
                    return Err("in review without a live task".into());
                }
                let t = &live[0];
                let actor = match t.claimant {
                    Some(u) => Self::as_member(u, t.org),
                    None => Self::as_member(user(TAG_REVIEWER, &self.code(t.org)), t.org),
                };
                self.apply(
                    &actor,
                    &Action::Approve {
                        task: t.id,
                        opinion: "同意".into(),
                    },
                )
                .map(|_| true)
                .map_err(|r| refused("approve", r))
            }
        }
    }

    /// Runs the greedy driver on a copy: the application must reach an end (approved, or
    /// already closed) within `max` moves.
    pub fn can_finish(&self, max: usize) -> Result<ApplicationStatus, String> {
        let mut w = self.clone();
        for _ in 0..max {
            if !w.greedy_step()? {
                return Ok(w.state.status);
            }
        }
        Err(format!(
            "not closed after {max} greedy moves: {:?} at {:?}",
            w.state.status, w.state.step
        ))
    }

    // ---- replay -----------------------------------------------------------------------

    /// Folds the recorded transitions from a draft, like an audit replaying the history.
    pub fn fold_history(&self) -> (AppState, BTreeMap<TaskId, TaskState>) {
        let mut state = AppState::draft();
        let mut tasks = BTreeMap::new();
        for r in &self.history {
            state = r.transition.state.clone();
            for t in r.transition.opened.iter().chain(&r.transition.updated) {
                tasks.insert(t.id, t.clone());
            }
        }
        (state, tasks)
    }

    /// A fresh draft with the same definition, form and district as this world.
    pub fn fresh(&self) -> Self {
        let mut w = self.clone();
        w.state = AppState::draft();
        w.involved.clear();
        w.tasks.clear();
        w.known_tasks.clear();
        w.history.clear();
        w.next_id = 0;
        w.now = start_instant();
        if let Some(first) = self.history.first() {
            w.form = first.form.clone();
        }
        w
    }

    /// Re-decides every recorded action from scratch with the same clock, form and ids;
    /// returns the first difference.
    pub fn replay_decisions(&self) -> Result<(), String> {
        let mut w = self.fresh();
        for (i, r) in self.history.iter().enumerate() {
            w.now = r.now;
            w.form = r.form.clone();
            if w.next_id != r.ids_before {
                return Err(format!(
                    "#{i}: id counter {} != recorded {}",
                    w.next_id, r.ids_before
                ));
            }
            match w.apply(&r.actor, &r.action) {
                Ok(t) if t == r.transition => {}
                Ok(t) => {
                    return Err(format!(
                        "#{i} {:?}: different transition\nrecorded: {:?}\nreplayed: {t:?}",
                        r.action.kind(),
                        r.transition
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "#{i} {:?}: refused on replay: {}",
                        r.action.kind(),
                        e.code()
                    ));
                }
            }
        }
        if w.state != self.state || w.tasks != self.tasks {
            return Err("replayed world differs from the recorded one".into());
        }
        Ok(())
    }

    // ---- invariants -------------------------------------------------------------------

    /// Held returns match the current round's tasks closed as returned, one for one.
    fn check_held(&self, v: &mut Vec<String>) {
        let s = &self.state;
        let returned: BTreeSet<TaskId> = self
            .tasks
            .values()
            .filter(|t| t.round == s.round && t.status == TaskStatus::Returned)
            .map(|t| t.id)
            .collect();
        let held: BTreeSet<TaskId> = s.held_returns.iter().map(|h| h.task).collect();
        if held.len() != s.held_returns.len() {
            v.push("a task's return is held twice".into());
        }
        if held != returned {
            v.push(format!(
                "held returns {held:?} differ from the round's returned tasks {returned:?}"
            ));
        }
        for h in &s.held_returns {
            if self.tasks.get(&h.task).map(|t| t.org) != Some(h.org) {
                v.push(format!(
                    "held return of {} names another task",
                    self.code(h.org)
                ));
            }
            if h.items.is_empty() {
                v.push(format!("held return of {} without items", self.code(h.org)));
            }
        }
    }

    /// Everything that must hold of any reachable state; one message per violation.
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let s = &self.state;
        let live_anywhere: Vec<&TaskState> = self.tasks.values().filter(|t| t.is_live()).collect();
        let current_live = s
            .tasks
            .iter()
            .filter(|t| t.is_live() && t.round == s.round)
            .count();
        match s.status {
            ApplicationStatus::Draft => {
                if !self.tasks.is_empty() || !s.tasks.is_empty() {
                    v.push("draft with tasks".into());
                }
                if s.step.is_some() {
                    v.push("draft with a step".into());
                }
            }
            ApplicationStatus::Submitted | ApplicationStatus::InReview => {
                if s.step.is_none() {
                    v.push(format!("{:?} without a current step", s.status));
                }
                if current_live == 0 {
                    v.push(format!("{:?} without a live task", s.status));
                }
                if s.step_due.is_none() {
                    v.push(format!("{:?} without step_due", s.status));
                }
                if s.revision_due.is_some() || s.paused_step_days.is_some() {
                    v.push(format!("{:?} with revision clock set", s.status));
                }
                if !s.return_items.is_empty() {
                    v.push(format!("{:?} with return items", s.status));
                }
                // Returns held while other organizations of the step still decide: only
                // in review, only on a countersign step, one per task closed as returned.
                if !s.held_returns.is_empty() {
                    if s.status != ApplicationStatus::InReview {
                        v.push("submitted with held returns".into());
                    }
                    let countersign = s
                        .step
                        .as_deref()
                        .and_then(|id| self.def().step(id))
                        .is_some_and(|st| matches!(st.kind, StepKind::Countersign { .. }));
                    if !countersign {
                        v.push("held returns outside a countersign step".into());
                    }
                }
                self.check_held(&mut v);
            }
            ApplicationStatus::Returned => {
                if !live_anywhere.is_empty() {
                    v.push("returned with live tasks".into());
                }
                if s.revision_due.is_none() {
                    v.push("returned without revision_due".into());
                }
                if s.paused_step_days.is_none() {
                    v.push("returned without paused_step_days".into());
                }
                if s.step.is_none() {
                    v.push("returned without the step to resume".into());
                }
                if s.return_items.is_empty() {
                    v.push("returned without return items".into());
                }
                // One merged return: every item of every organization that returned in
                // the round, and nobody else's.
                if s.held_returns.is_empty() {
                    v.push("returned without the organizations that returned".into());
                }
                let merged: Vec<ReturnItem> = s
                    .held_returns
                    .iter()
                    .flat_map(|h| h.items.clone())
                    .collect();
                if merged != s.return_items {
                    v.push("return items are not the merged items of the round".into());
                }
                self.check_held(&mut v);
                if s.step_due.is_some() {
                    v.push("returned with a running step clock".into());
                }
            }
            ApplicationStatus::Approved
            | ApplicationStatus::Rejected
            | ApplicationStatus::Withdrawn => {
                if !live_anywhere.is_empty() {
                    v.push(format!("{:?} with live tasks", s.status));
                }
                if s.step.is_some() {
                    v.push(format!("{:?} with a step", s.status));
                }
                if s.decided_at.is_none() {
                    v.push(format!("{:?} without decided_at", s.status));
                }
                if !s.held_returns.is_empty() || !s.return_items.is_empty() {
                    v.push(format!("{:?} with held returns or return items", s.status));
                }
            }
        }
        if s.status != ApplicationStatus::Draft && s.submitted_at.is_none() {
            v.push("submitted_at not set".into());
        }
        for t in &live_anywhere {
            if t.round != s.round || Some(&t.step) != s.step.as_ref() {
                v.push(format!(
                    "live task of {} in round {} step {} (current: {} {:?})",
                    self.code(t.org),
                    t.round,
                    t.step,
                    s.round,
                    s.step
                ));
            }
            if s.step_due.is_some() && Some(t.due) != s.step_due {
                v.push(format!(
                    "live task of {} due {} but the step is due {:?}",
                    self.code(t.org),
                    t.due,
                    s.step_due
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for t in self.tasks.values() {
            if !matches!(t.status, TaskStatus::Cancelled | TaskStatus::Removed)
                && !seen.insert((t.round, t.org))
            {
                v.push(format!(
                    "two non-cancelled tasks of {} in round {}",
                    self.code(t.org),
                    t.round
                ));
            }
            match t.status {
                TaskStatus::Open if t.claimant.is_some() || t.delegated_by.is_some() => {
                    v.push(format!("open task of {} has a holder", self.code(t.org)));
                }
                TaskStatus::Claimed if t.claimant.is_none() => {
                    v.push(format!(
                        "claimed task of {} has no holder",
                        self.code(t.org)
                    ));
                }
                _ => {}
            }
            // (A closed task keeps its holder and delegator as a record.)
            if t.delegated_by.is_some() && t.status == TaskStatus::Open {
                v.push(format!(
                    "{:?} task of {} still delegated",
                    t.status,
                    self.code(t.org)
                ));
            }
            if t.is_live() == t.closed_at.is_some() {
                v.push(format!(
                    "{:?} task of {} with closed_at {:?}",
                    t.status,
                    self.code(t.org),
                    t.closed_at
                ));
            }
        }
        // The engine's view of the current round must be what the store would load.
        let stored: Vec<&TaskState> = self.tasks.values().filter(|t| t.round == s.round).collect();
        let mut engine_view: Vec<&TaskState> = s.tasks.iter().collect();
        engine_view.sort_by_key(|t| t.id);
        if stored != engine_view {
            v.push(format!(
                "state.tasks ({}) differ from the stored tasks of round {} ({})",
                engine_view.len(),
                s.round,
                stored.len()
            ));
        }
        v
    }

    /// Panics with every violated invariant.
    pub fn assert_valid(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "invalid state: {v:#?}\nstate: {:#?}",
            self.state
        );
    }
}

#[test]
fn the_fixture_drives_a_yqyc_application_to_approval() {
    let mut w = World::yqyc(&["rd_funding"]);
    w.assert_valid();
    w.submit();
    w.assert_valid();
    assert_eq!(w.live_codes(), [DISTRICT]);
    for _ in 0..10 {
        if w.state.is_closed() {
            break;
        }
        w.approve_all_live();
        w.assert_valid();
    }
    assert_eq!(w.state.status, ApplicationStatus::Approved);
    let (state, tasks) = w.fold_history();
    assert_eq!(state, w.state);
    assert_eq!(tasks, w.tasks);
    w.replay_decisions().unwrap_or_else(|e| panic!("{e}"));
}
