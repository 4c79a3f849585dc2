//! Table tests of the engine: every (application state, action kind, role) for each of the
//! three built-in definitions, against an expectation written from the rules (not from the
//! engine), plus the effects of the main transitions and the specific scenarios
//! (countersign returns, resumption, paused clocks, holidays, delegation, transfer).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt;

use entity::enums::{ApplicationStatus, TaskStatus};
use zhigang::workflow::engine::{
    Action, ActionKind, Actor, Audience, ItemKind, ReturnItem, Transition,
};

use crate::engine_fixture::*;

// ---- the table ------------------------------------------------------------------------

/// The state an application is in when the action is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Draft,
    /// The first step open, nothing claimed yet (status submitted).
    Submitted,
    /// In review on this step, the task open.
    Open(&'static str),
    /// In review on this step, the task claimed by the reviewer.
    Claimed(&'static str),
    Returned,
    Approved,
    Rejected,
    Withdrawn,
}

impl fmt::Display for St {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            St::Open(s) => write!(f, "in_review@{s}(open)"),
            St::Claimed(s) => write!(f, "in_review@{s}(claimed)"),
            other => write!(f, "{other:?}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// A member of the applicant company.
    Applicant,
    /// A member of another company.
    OtherApplicant,
    /// A reviewer of the organization holding the task (`Case::org`).
    Reviewer,
    /// A reviewer of an organization that was never involved.
    OtherReviewer,
    /// The org admin of the task's organization.
    OrgAdmin,
    /// A system administrator.
    SystemAdmin,
    /// A reviewer of another organization that is (or was) involved: an earlier step's
    /// organization; on the yqyc countersign step this is the lead, TJ-MIIT.
    PriorReviewer,
}

const ROLES: [Role; 7] = [
    Role::Applicant,
    Role::OtherApplicant,
    Role::Reviewer,
    Role::OtherReviewer,
    Role::OrgAdmin,
    Role::SystemAdmin,
    Role::PriorReviewer,
];

/// An action kind; comments are tried both public and internal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Kind(ActionKind),
    InternalNote,
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Act::Kind(ActionKind::Comment) => write!(f, "comment(public)"),
            Act::Kind(k) => write!(f, "{}", k.as_str()),
            Act::InternalNote => write!(f, "comment(internal)"),
        }
    }
}

fn acts() -> Vec<Act> {
    let mut v: Vec<Act> = ActionKind::ALL.iter().map(|k| Act::Kind(*k)).collect();
    v.push(Act::InternalNote);
    v
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exp {
    Allowed,
    Refused(&'static str),
}

impl fmt::Display for Exp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exp::Allowed => write!(f, "allowed"),
            Exp::Refused(c) => write!(f, "{c}"),
        }
    }
}

/// The specification, cell by cell (written from the rules, not from the engine).
fn expected(key: &str, st: St, act: Act, role: Role) -> Exp {
    use ActionKind as K;
    use Exp::{Allowed, Refused};
    use Role::*;
    const NP: Exp = Refused("not-permitted");
    const WS: Exp = Refused("wrong-status");

    let running = matches!(st, St::Submitted | St::Open(_) | St::Claimed(_));
    let claimed = matches!(st, St::Claimed(_));
    // Reviewer and OrgAdmin act for the task's organization.
    let member = matches!(role, Reviewer | OrgAdmin);
    // Reviewers of an organization that has or had a task (none in a draft).
    let involved_reviewer = st != St::Draft && matches!(role, Reviewer | OrgAdmin | PriorReviewer);
    // The only countersign step with a lead: yqyc `countersign`, led by TJ-MIIT.
    let lead_step =
        key == "yqyc" && matches!(st, St::Open("countersign") | St::Claimed("countersign"));
    let only_applicant = if role == Applicant { Allowed } else { NP };

    match act {
        Act::Kind(K::Submit) => match st {
            St::Draft => only_applicant,
            _ => WS,
        },
        Act::Kind(K::Resubmit) => match st {
            St::Returned => only_applicant,
            _ => WS,
        },
        Act::Kind(K::Withdraw) => {
            if running || st == St::Returned {
                only_applicant
            } else {
                WS
            }
        }
        Act::Kind(K::Comment) => {
            if st == St::Draft {
                WS
            } else if matches!(role, Applicant | SystemAdmin) || involved_reviewer {
                Allowed
            } else {
                NP
            }
        }
        Act::InternalNote => {
            if st == St::Draft {
                WS
            } else if role == SystemAdmin || involved_reviewer {
                Allowed
            } else {
                NP
            }
        }
        // Every other action works on a task of the running step.
        Act::Kind(_) if !running => WS,
        Act::Kind(K::Claim) => match (member, claimed, role) {
            (false, _, _) => NP,
            (true, false, _) => Allowed,
            (true, true, Reviewer) => Refused("already-claimed"),
            (true, true, _) => Refused("claimed-by-other"),
        },
        Act::Kind(K::Release) => match (member, claimed) {
            (false, _) => NP,
            (true, false) => Refused("not-claimed"),
            // The holder, or the org admin on behalf of the organization.
            (true, true) => Allowed,
        },
        Act::Kind(K::Approve | K::Return | K::Reject) => match (member, claimed, role) {
            (false, _, _) => NP,
            (true, true, OrgAdmin) => Refused("claimed-by-other"),
            (true, _, _) => Allowed,
        },
        // The holder, anyone of the org while open, or the org admin overriding a claim;
        // a system administrator may transfer (reassign) any live task, but not delegate.
        Act::Kind(K::Transfer) => {
            if member || role == SystemAdmin {
                Allowed
            } else {
                NP
            }
        }
        Act::Kind(K::Delegate) => {
            if member {
                Allowed
            } else {
                NP
            }
        }
        // Nothing is overdue in the table (the clock stays at the day the step opened).
        Act::Kind(K::Remind) => {
            if matches!(role, OrgAdmin | SystemAdmin | PriorReviewer) {
                Refused("not-overdue")
            } else {
                NP
            }
        }
        Act::Kind(K::AddSigner | K::RemoveSigner) => {
            if !lead_step {
                Refused("not-countersign")
            } else if role == PriorReviewer {
                Allowed
            } else {
                NP
            }
        }
    }
}

/// One state of the table: how to reach it and whose task the actions aim at.
struct Case {
    st: St,
    /// The organization holding the task (for closed states: the one that acted last).
    org: &'static str,
    /// Another involved organization, when there is one.
    prior: Option<&'static str>,
    /// For returned / rejected / withdrawn: the step where it happens.
    at: Option<&'static str>,
}

const fn case(
    st: St,
    org: &'static str,
    prior: Option<&'static str>,
    at: Option<&'static str>,
) -> Case {
    Case { st, org, prior, at }
}

struct Setup {
    key: &'static str,
    world: fn() -> World,
    cases: Vec<Case>,
}

fn yqyc_setup() -> Setup {
    const D: &str = DISTRICT;
    Setup {
        key: "yqyc",
        // Every conditional participant takes part: STC, DRC, CAC, FIN, HRSS.
        world: || World::yqyc(&["rd_funding", "fund_investment", "talent"]),
        cases: vec![
            case(St::Draft, D, None, None),
            case(St::Submitted, D, None, None),
            case(St::Open("district_review"), D, None, None),
            case(St::Claimed("district_review"), D, None, None),
            case(St::Open("lead_review"), "TJ-MIIT", Some(D), None),
            case(St::Claimed("lead_review"), "TJ-MIIT", Some(D), None),
            case(St::Open("countersign"), "TJ-STC", Some("TJ-MIIT"), None),
            case(St::Claimed("countersign"), "TJ-STC", Some("TJ-MIIT"), None),
            case(
                St::Open("coordination"),
                "TJ-AI-COORD",
                Some("TJ-MIIT"),
                None,
            ),
            case(
                St::Claimed("coordination"),
                "TJ-AI-COORD",
                Some("TJ-MIIT"),
                None,
            ),
            case(St::Returned, "TJ-STC", Some("TJ-MIIT"), Some("countersign")),
            case(St::Approved, "TJ-AI-COORD", Some("TJ-MIIT"), None),
            case(St::Rejected, "TJ-MIIT", Some(D), Some("lead_review")),
            case(
                St::Withdrawn,
                "TJ-STC",
                Some("TJ-MIIT"),
                Some("countersign"),
            ),
        ],
    }
}

fn ip_setup() -> Setup {
    const A: &str = "TJ-AMR";
    Setup {
        key: "ip_fast_track",
        world: || World::ip("fast_protection", true),
        cases: vec![
            case(St::Draft, A, None, None),
            case(St::Submitted, A, None, None),
            case(St::Open("acceptance"), A, None, None),
            case(St::Claimed("acceptance"), A, None, None),
            case(St::Open("handling"), A, None, None),
            case(St::Claimed("handling"), A, None, None),
            case(St::Returned, A, None, Some("handling")),
            case(St::Approved, A, None, None),
            case(St::Rejected, A, None, Some("acceptance")),
            case(St::Withdrawn, A, None, Some("handling")),
        ],
    }
}

fn platform_setup() -> Setup {
    const P: &str = "P-NSCC-TJ";
    Setup {
        key: "platform_access",
        world: || World::platform(P, &["gpu_card_hours", "public_datasets"]),
        cases: vec![
            case(St::Draft, P, None, None),
            case(St::Submitted, P, None, None),
            case(St::Open("technical_review"), P, None, None),
            case(St::Claimed("technical_review"), P, None, None),
            case(St::Open("supervisor_review"), "TJ-STC", Some(P), None),
            case(St::Claimed("supervisor_review"), "TJ-STC", Some(P), None),
            case(
                St::Open("data_security_review"),
                "TJ-CAC",
                Some("TJ-STC"),
                None,
            ),
            case(
                St::Claimed("data_security_review"),
                "TJ-CAC",
                Some("TJ-STC"),
                None,
            ),
            case(St::Open("provisioning"), P, Some("TJ-STC"), None),
            case(St::Claimed("provisioning"), P, Some("TJ-STC"), None),
            case(
                St::Returned,
                "TJ-CAC",
                Some("TJ-STC"),
                Some("data_security_review"),
            ),
            case(St::Approved, P, Some("TJ-STC"), None),
            case(St::Rejected, "TJ-STC", Some(P), Some("supervisor_review")),
            case(St::Withdrawn, P, Some("TJ-STC"), Some("provisioning")),
        ],
    }
}

/// Drives a fresh world into the case's state.
fn reach(mut w: World, c: &Case) -> World {
    match c.st {
        St::Draft => {}
        St::Submitted => {
            w.submit();
        }
        St::Open(step) => {
            w.advance_to_step(step);
            if w.state.status == ApplicationStatus::Submitted {
                // In review on the first step: someone claimed and released.
                let task = w.task_of(c.org).id;
                let r = w.reviewer(c.org);
                w.must(&r, &Action::Claim { task });
                w.must(&r, &Action::Release { task });
            }
        }
        St::Claimed(step) => {
            w.advance_to_step(step);
            let task = w.task_of(c.org).id;
            let r = w.reviewer(c.org);
            w.must(&r, &Action::Claim { task });
        }
        St::Returned => {
            w.advance_to_step(c.at.expect("return step"));
            // On a countersign step the others decide too before the applicant hears.
            w.return_round_by(c.org);
        }
        St::Approved => {
            w.submit();
            for _ in 0..10 {
                if w.state.is_closed() {
                    break;
                }
                w.approve_all_live();
            }
        }
        St::Rejected => {
            w.advance_to_step(c.at.expect("reject step"));
            let task = w.task_of(c.org).id;
            let r = w.reviewer(c.org);
            w.must(
                &r,
                &Action::Reject {
                    task,
                    reason: "不符合支持条件".into(),
                },
            );
        }
        St::Withdrawn => {
            w.advance_to_step(c.at.expect("withdraw step"));
            w.must(
                &applicant(),
                &Action::Withdraw {
                    reason: Some("另行申报".into()),
                },
            );
        }
    }
    let want = match c.st {
        St::Draft => ApplicationStatus::Draft,
        St::Submitted => ApplicationStatus::Submitted,
        St::Open(_) | St::Claimed(_) => ApplicationStatus::InReview,
        St::Returned => ApplicationStatus::Returned,
        St::Approved => ApplicationStatus::Approved,
        St::Rejected => ApplicationStatus::Rejected,
        St::Withdrawn => ApplicationStatus::Withdrawn,
    };
    assert_eq!(w.state.status, want, "setting up {}", c.st);
    if let St::Open(step) | St::Claimed(step) = c.st {
        assert_eq!(w.state.step.as_deref(), Some(step), "setting up {}", c.st);
    }
    w.assert_valid();
    w
}

fn actor_for(w: &World, role: Role, c: &Case) -> Option<Actor> {
    Some(match role {
        Role::Applicant => applicant(),
        Role::OtherApplicant => outsider_applicant(),
        Role::Reviewer => w.reviewer(c.org),
        Role::OtherReviewer => w.reviewer(UNINVOLVED),
        Role::OrgAdmin => w.org_admin(c.org),
        Role::SystemAdmin => system_admin(),
        Role::PriorReviewer => w.reviewer(c.prior?),
    })
}

/// A valid action of the kind, aimed at the case's task.
fn action_for(w: &World, act: Act, c: &Case) -> Action {
    let task = w
        .live_task(c.org)
        .or_else(|| w.last_task_of(c.org))
        .map(|t| t.id)
        .unwrap_or_else(|| task_id(9_999));
    let to = World::assignee(&w.colleague(c.org));
    match act {
        Act::Kind(ActionKind::Submit) => Action::Submit,
        Act::Kind(ActionKind::Resubmit) => Action::Resubmit {
            note: Some("已补充".into()),
        },
        Act::Kind(ActionKind::Withdraw) => Action::Withdraw {
            reason: Some("另行申报".into()),
        },
        Act::Kind(ActionKind::Claim) => Action::Claim { task },
        Act::Kind(ActionKind::Release) => Action::Release { task },
        Act::Kind(ActionKind::Approve) => Action::Approve {
            task,
            opinion: "同意".into(),
        },
        Act::Kind(ActionKind::Return) => Action::Return {
            task,
            items: vec![section_item(w.def())],
            comment: "请补充".into(),
        },
        Act::Kind(ActionKind::Reject) => Action::Reject {
            task,
            reason: "不符合条件".into(),
        },
        Act::Kind(ActionKind::Transfer) => Action::Transfer { task, to },
        Act::Kind(ActionKind::Delegate) => Action::Delegate { task, to },
        Act::Kind(ActionKind::Comment) => Action::Comment {
            text: "请问进度如何?".into(),
            internal: false,
        },
        Act::InternalNote => Action::Comment {
            text: "内部意见:材料齐全".into(),
            internal: true,
        },
        Act::Kind(ActionKind::Remind) => Action::Remind { task },
        Act::Kind(ActionKind::AddSigner) => Action::AddSigner {
            org: w.org("TJ-EDU"),
            reason: "涉及人才培养".into(),
        },
        Act::Kind(ActionKind::RemoveSigner) => Action::RemoveSigner {
            task,
            reason: "与本部门职责无关".into(),
        },
    }
}

/// Runs every cell of a setup; returns (cells, mismatches).
fn run_table(setup: &Setup) -> (usize, Vec<String>) {
    let mut cells = 0;
    let mut bad = Vec::new();
    for c in &setup.cases {
        let base = reach((setup.world)(), c);
        for act in acts() {
            for role in ROLES {
                let Some(actor) = actor_for(&base, role, c) else {
                    continue;
                };
                cells += 1;
                let want = expected(setup.key, c.st, act, role);
                let mut w = base.clone();
                let action = action_for(&w, act, c);
                let got = match w.apply(&actor, &action) {
                    Ok(t) => {
                        let mut problems = w.violations();
                        if t.event.kind != action.kind() {
                            problems.push(format!("event kind {:?}", t.event.kind));
                        }
                        if !problems.is_empty() {
                            bad.push(format!(
                                "{} | {} | {act} | {role:?}: allowed but left an invalid state: {problems:?}",
                                setup.key, c.st
                            ));
                        }
                        Exp::Allowed
                    }
                    Err(r) => Exp::Refused(r.code()),
                };
                if got != want {
                    bad.push(format!(
                        "{} | {} | {act} | {role:?}: expected {want}, got {got}",
                        setup.key, c.st
                    ));
                }
            }
        }
    }
    (cells, bad)
}

fn check_table(setup: &Setup, cells_expected: usize) {
    let (cells, bad) = run_table(setup);
    assert!(
        bad.is_empty(),
        "{} of {cells} cells differ from the rules:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert_eq!(cells, cells_expected, "{}: number of cells", setup.key);
}

// 15 actions (14 kinds, comments public and internal) × roles (7; 6 where no other
// organization is involved yet) × states.
#[test]
fn table_yqyc() {
    // 14 states: 4 without an earlier organization (6 roles), 10 with (7 roles).
    check_table(&yqyc_setup(), 15 * (4 * 6 + 10 * 7));
}

#[test]
fn table_ip_fast_track() {
    // 10 states, one organization only (6 roles).
    check_table(&ip_setup(), 15 * 10 * 6);
}

#[test]
fn table_platform_access() {
    // 14 states: 4 without an earlier organization, 10 with.
    check_table(&platform_setup(), 15 * (4 * 6 + 10 * 7));
}

// ---- reminders on overdue tasks -------------------------------------------------------

/// On an overdue task the roles allowed to remind get a `reminder` to the task's holder.
#[test]
fn reminders_on_overdue_tasks() {
    // (world, step, task org, another involved org)
    let setups: Vec<(World, &str, &str, &str)> = vec![
        (
            World::yqyc(&["rd_funding"]),
            "lead_review",
            "TJ-MIIT",
            DISTRICT,
        ),
        (
            World::yqyc(&["rd_funding"]),
            "countersign",
            "TJ-STC",
            "TJ-DRC",
        ),
        (
            World::platform("P-TESTCERT", &["cpu_core_hours"]),
            "supervisor_review",
            "TJ-AMR",
            "P-TESTCERT",
        ),
        (
            World::ip("priority_acceptance", false),
            "handling",
            "TJ-AMR",
            "TJ-AMR",
        ),
    ];
    let mut bad = Vec::new();
    for (mut w, step, org, other) in setups {
        w.advance_to_step(step);
        let due = w.state.step_due.expect("step due");
        // On the due date it is not overdue yet.
        w.set_today(due);
        let task = w.task_of(org).id;
        let r = w.apply(&system_admin(), &Action::Remind { task });
        if r.as_ref().err().map(|e| e.code()) != Some("not-overdue") {
            bad.push(format!("{step}: reminder on the due date: {:?}", r.err()));
        }
        w.advance_days(1);
        let roles: Vec<(&str, Actor, bool)> = vec![
            ("applicant", applicant(), false),
            ("other applicant", outsider_applicant(), false),
            ("reviewer of the task's org", w.reviewer(org), false),
            (
                "reviewer of an uninvolved org",
                w.reviewer(UNINVOLVED),
                false,
            ),
            ("org admin of the task's org", w.org_admin(org), true),
            ("system admin", system_admin(), true),
            // Only when the other organization differs from the task's.
            (
                "reviewer of another involved org",
                w.reviewer(other),
                other != org,
            ),
        ];
        for claimed in [false, true] {
            let mut base = w.clone();
            if claimed {
                let r = base.reviewer(org);
                base.must(&r, &Action::Claim { task });
            }
            for (name, actor, allowed) in &roles {
                let mut c = base.clone();
                match (c.apply(actor, &Action::Remind { task }), allowed) {
                    (Ok(t), true) => {
                        let want = if claimed {
                            Audience::User(base.reviewer(org).user)
                        } else {
                            Audience::OrgReviewers(base.org(org))
                        };
                        let kinds: Vec<_> = t
                            .notifications
                            .iter()
                            .map(|n| (n.kind.as_str(), n.audience.clone()))
                            .collect();
                        if kinds != [("reminder", want)] {
                            bad.push(format!("{step} {name}: notifications {kinds:?}"));
                        }
                        if t.state != base.state || !t.opened.is_empty() || !t.updated.is_empty() {
                            bad.push(format!("{step} {name}: a reminder changed the state"));
                        }
                    }
                    (Err(e), false) if e.code() == "not-permitted" => {}
                    (got, _) => bad.push(format!(
                        "{step} claimed={claimed} {name}: expected {}, got {:?}",
                        if *allowed { "allowed" } else { "not-permitted" },
                        got.map(|_| "allowed").map_err(|e| e.code())
                    )),
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

// ---- effects --------------------------------------------------------------------------

fn kinds_and_audiences(w: &World, t: &Transition) -> Vec<(String, String)> {
    t.notifications
        .iter()
        .map(|n| {
            let to = match &n.audience {
                Audience::CompanyMembers => "company".to_string(),
                Audience::OrgReviewers(o) => w.code(*o),
                Audience::User(u) => format!("user {u}"),
            };
            (n.kind.clone(), to)
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn submit_opens_the_first_step_for_the_right_organization() {
    let cases: Vec<(World, &str, &str)> = vec![
        (World::yqyc(&["rd_funding"]), "district_review", DISTRICT),
        (World::ip("key_guidance", false), "acceptance", "TJ-AMR"),
        (
            World::platform("P-NSCC-TJ", &["cpu_core_hours"]),
            "technical_review",
            "P-NSCC-TJ",
        ),
        (
            World::platform("P-TESTCERT", &["storage_tb"]),
            "technical_review",
            "P-TESTCERT",
        ),
        (
            World::platform("P-MILCIV", &["gpu_card_hours"]),
            "technical_review",
            "P-MILCIV",
        ),
    ];
    for (mut w, step, org) in cases {
        let t = w.submit();
        w.assert_valid();
        assert_eq!(t.event.kind, ActionKind::Submit);
        assert_eq!(w.state.status, ApplicationStatus::Submitted);
        assert_eq!(w.state.step.as_deref(), Some(step));
        assert_eq!(w.state.round, 1);
        assert_eq!(w.live_codes(), [org]);
        assert_eq!(t.opened.len(), 1);
        assert!(t.updated.is_empty());
        let promised = w.def().step(step).expect("step").promised_days;
        let due = w.calendar().add_working_days(w.today(), promised);
        assert_eq!(w.state.step_due, Some(due));
        assert_eq!(t.opened[0].due, due);
        assert_eq!(w.state.submitted_at, Some(w.now));
        let case_due = w
            .def()
            .case_promised_days
            .map(|d| w.calendar().add_working_days(w.today(), d));
        assert_eq!(w.state.case_due, case_due);
        assert_eq!(
            kinds_and_audiences(&w, &t),
            pairs(&[("task_arrived", org), ("submitted", "company")]),
            "{}",
            w.def().key
        );
    }
}

#[test]
fn countersign_participants_follow_the_support_requested() {
    let base = ["TJ-STC", "TJ-DRC", "TJ-CAC"];
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["rd_funding"], vec![]),
        (vec!["smart_manufacturing_fund", "space_land"], vec![]),
        (vec!["fund_investment"], vec!["TJ-FIN"]),
        (vec!["listing_support"], vec!["TJ-FIN"]),
        (vec!["fund_investment", "listing_support"], vec!["TJ-FIN"]),
        (vec!["talent"], vec!["TJ-HRSS"]),
        (
            vec!["rd_funding", "listing_support", "talent"],
            vec!["TJ-FIN", "TJ-HRSS"],
        ),
    ];
    for (support, extra) in cases {
        let mut w = World::yqyc(&support);
        w.advance_to_step("lead_review");
        let t = w.approve("TJ-MIIT");
        w.assert_valid();
        assert_eq!(w.state.step.as_deref(), Some("countersign"));
        let mut want: Vec<&str> = base.iter().chain(&extra).copied().collect();
        want.sort_unstable();
        assert_eq!(w.live_codes(), want, "support {support:?}");
        // Every new organization is told once; the company is not.
        let mut arrived: Vec<String> = kinds_and_audiences(&w, &t)
            .into_iter()
            .map(|(k, to)| {
                assert_eq!(k, "task_arrived", "support {support:?}");
                to
            })
            .collect();
        arrived.sort();
        assert_eq!(arrived, want, "support {support:?}");
        assert_eq!(t.opened.len(), want.len());
        assert_eq!(t.updated.len(), 1, "the lead's task is closed");
        assert_eq!(t.updated[0].status, TaskStatus::Approved);
    }
}

#[test]
fn platform_route_follows_the_operator_and_the_resources() {
    let cases = [
        ("P-NSCC-TJ", "TJ-STC"),
        ("P-DLKB", "TJ-STC"),
        ("P-TESTCERT", "TJ-AMR"),
        ("P-MILCIV", "TJ-MIIT"),
    ];
    for (platform, supervisor) in cases {
        for datasets in [false, true] {
            let resources: &[&str] = if datasets {
                &["cpu_core_hours", "public_datasets"]
            } else {
                &["cpu_core_hours"]
            };
            let mut w = World::platform(platform, resources);
            w.submit();
            let t = w.approve(platform);
            assert_eq!(w.state.step.as_deref(), Some("supervisor_review"));
            assert_eq!(w.live_codes(), [supervisor], "{platform}");
            assert_eq!(
                kinds_and_audiences(&w, &t),
                pairs(&[("task_arrived", supervisor)])
            );
            w.approve(supervisor);
            if datasets {
                assert_eq!(w.state.step.as_deref(), Some("data_security_review"));
                assert_eq!(w.live_codes(), ["TJ-CAC"]);
                w.approve("TJ-CAC");
            }
            assert_eq!(w.state.step.as_deref(), Some("provisioning"));
            assert_eq!(w.live_codes(), [platform]);
            let t = w.approve(platform);
            assert_eq!(w.state.status, ApplicationStatus::Approved);
            assert_eq!(
                kinds_and_audiences(&w, &t),
                pairs(&[("approved", "company")])
            );
            // CAC took part only when public data sets were requested.
            assert_eq!(w.involved.contains(&w.org("TJ-CAC")), datasets);
            w.assert_valid();
        }
    }
}

#[test]
fn ip_online_infringement_is_copied_to_the_cyberspace_administration() {
    let cases = [
        ("fast_protection", true, true),
        ("fast_protection", false, false),
        ("priority_acceptance", true, false),
        ("key_guidance", false, false),
    ];
    for (kind, online, cc) in cases {
        let mut w = World::ip(kind, online);
        let t = w.submit();
        let mut want = vec![("task_arrived", "TJ-AMR")];
        if cc {
            want.push(("cc", "TJ-CAC"));
        }
        want.push(("submitted", "company"));
        assert_eq!(
            kinds_and_audiences(&w, &t),
            pairs(&want),
            "{kind} online={online}"
        );
        // The copy is no task: CAC is not involved.
        assert!(!w.involved.contains(&w.org("TJ-CAC")));
        // The handling step copies nobody.
        let t = w.approve("TJ-AMR");
        assert_eq!(w.state.step.as_deref(), Some("handling"));
        assert_eq!(
            kinds_and_audiences(&w, &t),
            pairs(&[("task_arrived", "TJ-AMR")])
        );
        // The whole case is promised within 10 working days of the submission.
        let submitted = zhigang::calendar::local_date(w.state.submitted_at.expect("submitted"));
        assert_eq!(
            w.state.case_due,
            Some(w.calendar().add_working_days(submitted, 10))
        );
    }
}

/// A full run with claims, comments, a return, a resubmission and approvals: every
/// transition records exactly one event of the action's kind, and the notifications
/// are the expected ones.
#[test]
fn every_transition_records_one_event_with_its_notifications() {
    let mut w = World::yqyc(&["rd_funding"]);
    let mut log: Vec<(ActionKind, Vec<(String, String)>)> = Vec::new();
    let mut step = |w: &mut World, actor: Actor, action: Action| {
        let t = w.must(&actor, &action);
        assert_eq!(t.event.kind, action.kind());
        let n = kinds_and_audiences(w, &t);
        log.push((t.event.kind, n));
        w.assert_valid();
    };
    step(&mut w, applicant(), Action::Submit);
    let task = w.task_of(DISTRICT).id;
    let r = w.reviewer(DISTRICT);
    step(&mut w, r.clone(), Action::Claim { task });
    step(
        &mut w,
        r.clone(),
        Action::Comment {
            text: "内部备注".into(),
            internal: true,
        },
    );
    step(
        &mut w,
        r.clone(),
        Action::Comment {
            text: "请补充财务报表".into(),
            internal: false,
        },
    );
    let item = section_item(w.def());
    step(
        &mut w,
        r.clone(),
        Action::Return {
            task,
            items: vec![item],
            comment: "材料不全".into(),
        },
    );
    step(
        &mut w,
        applicant(),
        Action::Comment {
            text: "已补充".into(),
            internal: false,
        },
    );
    step(&mut w, applicant(), Action::Resubmit { note: None });
    let task = w.task_of(DISTRICT).id;
    step(
        &mut w,
        r,
        Action::Approve {
            task,
            opinion: "同意".into(),
        },
    );
    let kinds: Vec<_> = log
        .iter()
        .map(|(k, n)| {
            (
                k.as_str(),
                n.iter()
                    .map(|(a, b)| format!("{a}>{b}"))
                    .collect::<Vec<_>>()
                    .join(","),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "submit",
                format!("task_arrived>{DISTRICT},submitted>company")
            ),
            ("claim", String::new()),
            ("comment", String::new()),
            ("comment", "message>company".to_string()),
            ("return", "returned>company".to_string()),
            ("comment", String::new()),
            (
                "resubmit",
                format!("task_arrived>{DISTRICT},resubmitted>company")
            ),
            ("approve", "task_arrived>TJ-MIIT".to_string()),
        ]
    );
    assert_eq!(w.history.len(), log.len());
}

// ---- specific scenarios ---------------------------------------------------------------

fn at_countersign(support: &[&str]) -> World {
    let mut w = World::yqyc(support);
    w.advance_to_step("countersign");
    w
}

fn ret(w: &mut World, code: &str, items: Vec<ReturnItem>, comment: &str) -> Transition {
    let task = w.task_of(code).id;
    let r = w.reviewer(code);
    w.must(
        &r,
        &Action::Return {
            task,
            items,
            comment: comment.into(),
        },
    )
}

fn item(kind: ItemKind, id: &str, note: &str) -> ReturnItem {
    ReturnItem {
        kind,
        id: id.into(),
        note: note.into(),
    }
}

/// 一次性告知: a countersigner's return while others still decide is held; the application
/// stays in review and nobody is cancelled or notified.
#[test]
fn a_countersigner_returning_while_others_decide_is_held_and_the_siblings_go_on() {
    let mut w = at_countersign(&["fund_investment", "talent"]);
    w.approve("TJ-STC");
    let drc = w.task_of("TJ-DRC").id;
    let r = w.reviewer("TJ-DRC");
    w.must(&r, &Action::Claim { task: drc });
    let items = vec![item(ItemKind::Section, "plan", "补充数据安全措施")];
    let t = ret(&mut w, "TJ-CAC", items.clone(), "数据安全部分不全");
    w.assert_valid();
    assert_eq!(w.state.status, ApplicationStatus::InReview);
    assert_eq!(w.state.step.as_deref(), Some("countersign"));
    assert!(w.state.return_items.is_empty());
    assert!(w.state.revision_due.is_none() && w.state.paused_step_days.is_none());
    assert!(w.state.step_due.is_some(), "the step clock keeps running");
    // Only the returning organization's task changes; the others are untouched.
    let updated: Vec<(String, TaskStatus)> = t
        .updated
        .iter()
        .map(|u| (w.code(u.org), u.status))
        .collect();
    assert_eq!(updated, [("TJ-CAC".to_string(), TaskStatus::Returned)]);
    assert_eq!(w.live_codes(), ["TJ-DRC", "TJ-FIN", "TJ-HRSS"]);
    assert_eq!(w.task_of("TJ-DRC").status, TaskStatus::Claimed);
    assert!(
        t.notifications.is_empty(),
        "the applicant hears once, later"
    );
    // The hold is in the state (what reviewers see) and in the event.
    assert_eq!(w.state.held_returns.len(), 1);
    let held = &w.state.held_returns[0];
    assert_eq!(
        (w.code(held.org), held.items.clone(), held.comment.as_str()),
        ("TJ-CAC".to_string(), items, "数据安全部分不全")
    );
    assert_eq!(t.event.details["held"], true);
    assert!(t.event.internal, "the applicant does not see a held return");
    // The organization that returned is done for this round.
    let cac = w.last_task_of("TJ-CAC").expect("cac").id;
    let r = w.reviewer("TJ-CAC");
    let again = w.decide(
        &r,
        &Action::Approve {
            task: cac,
            opinion: "同意".into(),
        },
    );
    assert_eq!(again.err().map(|e| e.code()), Some("task-closed"));
    // The holder of the claimed sibling may still decide.
    w.approve("TJ-DRC");
    assert_eq!(w.state.status, ApplicationStatus::InReview);
    w.assert_valid();
}

/// Two of four countersigners return, one approves, the last approves: one merged return
/// with both organizations' items, one notification to the company, clocks paused.
#[test]
fn two_of_four_countersigners_return_and_the_applicant_gets_one_merged_notice() {
    let mut w = at_countersign(&["listing_support"]);
    assert_eq!(w.live_codes(), ["TJ-CAC", "TJ-DRC", "TJ-FIN", "TJ-STC"]);
    let round = w.state.round;
    let cac_items = vec![item(ItemKind::Section, "plan", "补充数据安全措施")];
    let fin_items = vec![
        item(
            ItemKind::Material,
            "financial_statements",
            "补充近三年审计报告",
        ),
        item(ItemKind::Section, "request", "说明上市计划"),
    ];
    let t1 = ret(&mut w, "TJ-CAC", cac_items.clone(), "数据安全");
    w.advance_working_days(1);
    let t2 = ret(&mut w, "TJ-FIN", fin_items.clone(), "融资材料");
    let t3 = w.approve("TJ-STC");
    for t in [&t1, &t2, &t3] {
        assert!(t.notifications.is_empty());
        assert_eq!(w.state.status, ApplicationStatus::InReview);
    }
    w.assert_valid();
    let cal = w.calendar().clone();
    let left = cal.working_days_between(w.today(), w.state.step_due.expect("due"));
    let last = w.approve("TJ-DRC");
    w.assert_valid();
    assert_eq!(w.state.status, ApplicationStatus::Returned);
    assert_eq!(w.state.step.as_deref(), Some("countersign"));
    assert_eq!(w.state.round, round);
    let merged: Vec<ReturnItem> = cac_items.iter().chain(&fin_items).cloned().collect();
    assert_eq!(w.state.return_items, merged);
    let who: Vec<String> = w.state.held_returns.iter().map(|h| w.code(h.org)).collect();
    assert_eq!(who, ["TJ-CAC", "TJ-FIN"]);
    // Paused as any return: what was left of the step is given back at resubmission.
    assert_eq!(w.state.paused_step_days, Some(left));
    assert_eq!(w.state.step_due, None);
    assert_eq!(
        w.state.revision_due,
        Some(cal.add_working_days(w.today(), w.def().revision_days))
    );
    // Exactly one notification, to the company, listing every item with who asks.
    assert_eq!(
        kinds_and_audiences(&w, &last),
        pairs(&[("returned", "company")])
    );
    let data = &last.notifications[0].data;
    let listed: Vec<(String, String, String)> = data["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let org = serde_json::from_value(i["org"].clone()).expect("org");
            (
                w.code(org),
                i["id"].as_str().expect("id").to_string(),
                i["note"].as_str().expect("note").to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("TJ-CAC".into(), "plan".into(), "补充数据安全措施".into()),
            (
                "TJ-FIN".into(),
                "financial_statements".into(),
                "补充近三年审计报告".into()
            ),
            ("TJ-FIN".into(), "request".into(), "说明上市计划".into()),
        ]
    );
    let comments: Vec<&str> = data["comments"]
        .as_array()
        .expect("comments")
        .iter()
        .map(|c| c["comment"].as_str().expect("comment"))
        .collect();
    assert_eq!(comments, ["数据安全", "融资材料"]);
    let returned_total = w
        .history
        .iter()
        .flat_map(|r| &r.transition.notifications)
        .filter(|n| n.kind == "returned")
        .count();
    assert_eq!(returned_total, 1);
    // Resubmission reopens the step for all four, and the hold is gone.
    w.resubmit();
    w.assert_valid();
    assert!(w.state.held_returns.is_empty() && w.state.return_items.is_empty());
    assert_eq!(w.live_codes(), ["TJ-CAC", "TJ-DRC", "TJ-FIN", "TJ-STC"]);
}

#[test]
fn a_reject_after_a_held_return_ends_the_application_at_once() {
    let mut w = at_countersign(&["listing_support"]);
    ret(
        &mut w,
        "TJ-CAC",
        vec![item(ItemKind::Section, "plan", "补充")],
        "请补正",
    );
    let task = w.task_of("TJ-DRC").id;
    let r = w.reviewer("TJ-DRC");
    let t = w.must(
        &r,
        &Action::Reject {
            task,
            reason: "不符合条件".into(),
        },
    );
    w.assert_valid();
    assert_eq!(w.state.status, ApplicationStatus::Rejected);
    assert!(w.state.held_returns.is_empty() && w.state.return_items.is_empty());
    assert!(w.live_tasks().is_empty());
    assert_eq!(
        w.last_task_of("TJ-CAC").expect("cac").status,
        TaskStatus::Returned
    );
    let mut n = kinds_and_audiences(&w, &t);
    n.sort();
    assert_eq!(
        n,
        pairs(&[
            ("rejected", "company"),
            ("sibling_rejected", "TJ-FIN"),
            ("sibling_rejected", "TJ-STC"),
        ])
    );
}

#[test]
fn removing_the_last_deciding_countersigner_after_a_hold_returns_the_application() {
    let mut w = at_countersign(&["rd_funding"]);
    assert_eq!(w.live_codes(), ["TJ-CAC", "TJ-DRC", "TJ-STC"]);
    ret(
        &mut w,
        "TJ-CAC",
        vec![item(ItemKind::Section, "plan", "补充")],
        "请补正",
    );
    w.approve("TJ-STC");
    let lead = w.reviewer("TJ-MIIT");
    let drc = w.task_of("TJ-DRC").id;
    let t = w.must(
        &lead,
        &Action::RemoveSigner {
            task: drc,
            reason: "不涉及投资项目".into(),
        },
    );
    w.assert_valid();
    assert_eq!(w.state.status, ApplicationStatus::Returned);
    assert_eq!(w.state.return_items.len(), 1);
    let mut n = kinds_and_audiences(&w, &t);
    n.sort();
    assert_eq!(
        n,
        pairs(&[("returned", "company"), ("signer_removed", "TJ-DRC")])
    );
}

#[test]
fn a_withdrawal_while_a_return_is_held_drops_it() {
    let mut w = at_countersign(&["rd_funding"]);
    ret(
        &mut w,
        "TJ-CAC",
        vec![item(ItemKind::Section, "plan", "补充")],
        "请补正",
    );
    w.must(&applicant(), &Action::Withdraw { reason: None });
    w.assert_valid();
    assert_eq!(w.state.status, ApplicationStatus::Withdrawn);
    assert!(w.state.held_returns.is_empty());
}

/// The last live countersigner returning closes the round: the held returns and its own
/// are merged at once.
#[test]
fn the_last_countersigner_returning_merges_every_held_return() {
    let mut w = at_countersign(&["rd_funding"]);
    ret(
        &mut w,
        "TJ-CAC",
        vec![item(ItemKind::Section, "plan", "甲")],
        "一",
    );
    w.approve("TJ-STC");
    let t = ret(
        &mut w,
        "TJ-DRC",
        vec![item(ItemKind::Section, "request", "乙")],
        "二",
    );
    w.assert_valid();
    assert_eq!(w.state.status, ApplicationStatus::Returned);
    let notes: Vec<&str> = w
        .state
        .return_items
        .iter()
        .map(|i| i.note.as_str())
        .collect();
    assert_eq!(notes, ["甲", "乙"]);
    assert_eq!(
        kinds_and_audiences(&w, &t),
        pairs(&[("returned", "company")])
    );
    assert_eq!(
        t.event.details["merged_items"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn resubmission_reopens_the_countersign_step_for_every_organization() {
    let mut w = at_countersign(&["listing_support"]);
    w.approve("TJ-STC");
    w.approve("TJ-DRC");
    let round = w.state.round;
    let old: BTreeSet<_> = w.state.tasks.iter().map(|t| t.id).collect();
    w.return_round_by("TJ-FIN");
    w.advance_working_days(3);
    let t = w.resubmit();
    w.assert_valid();
    assert_eq!(w.state.status, ApplicationStatus::InReview);
    assert_eq!(w.state.step.as_deref(), Some("countersign"));
    assert_eq!(w.state.round, round + 1);
    assert_eq!(w.live_codes(), ["TJ-CAC", "TJ-DRC", "TJ-FIN", "TJ-STC"]);
    assert_eq!(t.opened.len(), 4);
    for task in &t.opened {
        assert!(!old.contains(&task.id), "a new task, not a reopened one");
        assert_eq!(task.status, TaskStatus::Open);
        assert_eq!(task.round, round + 1);
    }
    assert!(t.updated.is_empty());
    // The earlier approvals (STC, DRC, and CAC's after FIN's return was held) stay in
    // the history of round `round`.
    assert_eq!(
        w.tasks
            .values()
            .filter(|t| t.round == round && t.status == TaskStatus::Approved)
            .count(),
        3
    );
    let mut n = kinds_and_audiences(&w, &t);
    n.sort();
    assert_eq!(
        n,
        pairs(&[
            ("resubmitted", "company"),
            ("task_arrived", "TJ-CAC"),
            ("task_arrived", "TJ-DRC"),
            ("task_arrived", "TJ-FIN"),
            ("task_arrived", "TJ-STC"),
        ])
    );
    // All four must approve again.
    for org in ["TJ-STC", "TJ-DRC", "TJ-CAC"] {
        w.approve(org);
        assert_eq!(w.state.step.as_deref(), Some("countersign"));
    }
    w.approve("TJ-FIN");
    assert_eq!(w.state.step.as_deref(), Some("coordination"));
}

/// Return with k working days left, wait 30 calendar days, resubmit: the step is due k
/// working days after the resubmission day.
#[test]
fn the_promised_time_pauses_while_returned() {
    // (world, step, org that returns, working days spent before the return)
    let cases: Vec<(World, &str, &str, u32)> = vec![
        (World::yqyc(&["rd_funding"]), "district_review", DISTRICT, 2),
        (World::yqyc(&["talent"]), "countersign", "TJ-HRSS", 4),
        (World::ip("fast_protection", true), "handling", "TJ-AMR", 3),
        (
            World::platform("P-NSCC-TJ", &["public_datasets"]),
            "data_security_review",
            "TJ-CAC",
            1,
        ),
    ];
    for (mut w, step, org, spent) in cases {
        w.advance_to_step(step);
        let promised = w.def().step(step).expect("step").promised_days;
        w.advance_working_days(spent);
        let cal = w.calendar().clone();
        let k = cal.working_days_between(w.today(), w.state.step_due.expect("due"));
        assert_eq!(k, promised - spent, "{step}");
        let case_left = w
            .state
            .case_due
            .map(|d| cal.working_days_between(w.today(), d));
        w.return_round_by(org);
        assert_eq!(w.state.status, ApplicationStatus::Returned, "{step}");
        assert_eq!(w.state.paused_step_days, Some(k), "{step}");
        assert_eq!(w.state.paused_case_days, case_left, "{step}");
        assert_eq!(
            w.state.revision_due,
            Some(cal.add_working_days(w.today(), w.def().revision_days))
        );
        w.advance_days(30);
        w.resubmit();
        let want = cal.add_working_days(w.today(), k);
        assert_eq!(w.state.step_due, Some(want), "{step}");
        for t in w.live_tasks() {
            assert_eq!(t.due, want, "{step}: task of {}", w.code(t.org));
        }
        assert_eq!(
            w.state.case_due,
            case_left.map(|d| cal.add_working_days(w.today(), d)),
            "{step}"
        );
        assert_eq!(w.state.paused_step_days, None);
        w.assert_valid();
    }
}

/// The National Day holidays 2026-10-01..07 and the make-up working Saturday 10-10
/// (src/seed/calendar.csv) are respected by promised dates.
#[test]
fn deadlines_skip_the_national_day_holidays() {
    // Thursday 24 September: the Mid-Autumn days 25–27 and the National Day week are off.
    let mut w = World::yqyc(&["rd_funding"]);
    w.set_today(date(2026, 9, 24));
    w.submit();
    // 28, 29, 30 September, 8 and 9 October.
    assert_eq!(w.state.step_due, Some(date(2026, 10, 9)));

    // Wednesday 30 September: 8, 9, 10 (make-up Saturday), 12, 13 October.
    let mut w = World::yqyc(&["rd_funding"]);
    w.set_today(date(2026, 9, 30));
    w.submit();
    assert_eq!(w.state.step_due, Some(date(2026, 10, 13)));
    assert_eq!(
        w.state.step_due,
        Some(w.calendar().add_working_days(date(2026, 9, 30), 5))
    );

    // IP: acceptance in 2 working days, the whole case in 10.
    let mut w = World::ip("priority_acceptance", false);
    w.set_today(date(2026, 9, 29));
    w.submit();
    assert_eq!(w.state.step_due, Some(date(2026, 10, 8)));
    // 30 Sep, 8, 9, 10 (Saturday, make-up day), 12, 13, 14, 15, 16 and 19 October.
    assert_eq!(w.state.case_due, Some(date(2026, 10, 19)));

    // "Today" is the Beijing date: 17:00 UTC on Thursday 5 March is Friday in Beijing.
    let mut w = World::yqyc(&["rd_funding"]);
    w.set_today(date(2026, 3, 5));
    w.now += chrono::Duration::hours(15);
    assert_eq!(w.today(), date(2026, 3, 6));
    w.submit();
    assert_eq!(w.state.step_due, Some(date(2026, 3, 13)));
}

#[test]
fn a_delegated_task_comes_back_to_the_delegator() {
    let mut w = at_countersign(&["rd_funding"]);
    let task = w.task_of("TJ-STC").id;
    let delegator = w.reviewer("TJ-STC");
    let delegate = w.colleague("TJ-STC");
    w.must(&delegator, &Action::Claim { task });
    let t = w.must(
        &delegator,
        &Action::Delegate {
            task,
            to: World::assignee(&delegate),
        },
    );
    let held = w.task_of("TJ-STC");
    assert_eq!(held.status, TaskStatus::Claimed);
    assert_eq!(held.claimant, Some(delegate.user));
    assert_eq!(held.delegated_by, Some(delegator.user));
    assert_eq!(
        kinds_and_audiences(&w, &t),
        [(
            "task_delegated".to_string(),
            format!("user {}", delegate.user)
        )]
    );
    // The delegate cannot delegate further.
    let third = w.reviewer_n("TJ-STC", 1);
    let r = w.apply(
        &delegate,
        &Action::Delegate {
            task,
            to: World::assignee(&third),
        },
    );
    assert_eq!(r.err().map(|e| e.code()), Some("already-delegated"));
    // The delegate's approval is a recommendation: back to the delegator, not closed.
    let t = w.must(
        &delegate,
        &Action::Approve {
            task,
            opinion: "建议同意".into(),
        },
    );
    w.assert_valid();
    let back = w.task_of("TJ-STC");
    assert_eq!(back.status, TaskStatus::Claimed);
    assert_eq!(back.claimant, Some(delegator.user));
    assert_eq!(back.delegated_by, None);
    assert_eq!(back.closed_at, None);
    assert_eq!(w.state.step.as_deref(), Some("countersign"));
    assert_eq!(
        kinds_and_audiences(&w, &t),
        [(
            "delegation_returned".to_string(),
            format!("user {}", delegator.user)
        )]
    );
    // Now the delegator decides, and the task closes.
    let t = w.must(
        &delegator,
        &Action::Approve {
            task,
            opinion: "同意".into(),
        },
    );
    w.assert_valid();
    assert!(w.live_task("TJ-STC").is_none());
    let closed = &w.tasks[&task];
    assert_eq!(closed.status, TaskStatus::Approved);
    assert_eq!(closed.acted_by, Some(delegator.user));
    assert!(t.notifications.is_empty(), "siblings are still running");
}

#[test]
fn transfers_go_to_colleagues_only() {
    let mut w = World::platform("P-MILCIV", &["gpu_card_hours"]);
    w.submit();
    let task = w.task_of("P-MILCIV").id;
    let me = w.reviewer("P-MILCIV");
    w.must(&me, &Action::Claim { task });
    let stranger = w.reviewer("TJ-MIIT");
    for delegate in [false, true] {
        let mk = |to| {
            if delegate {
                Action::Delegate { task, to }
            } else {
                Action::Transfer { task, to }
            }
        };
        let r = w.apply(&me, &mk(World::assignee(&stranger)));
        assert_eq!(r.err().map(|e| e.code()), Some("not-a-colleague"));
        let r = w.apply(&me, &mk(World::assignee(&me)));
        assert_eq!(r.err().map(|e| e.code()), Some("same-user"));
    }
    let colleague = w.colleague("P-MILCIV");
    let t = w.must(
        &me,
        &Action::Transfer {
            task,
            to: World::assignee(&colleague),
        },
    );
    let moved = w.task_of("P-MILCIV");
    assert_eq!(moved.claimant, Some(colleague.user));
    assert_eq!(moved.delegated_by, None);
    assert_eq!(
        kinds_and_audiences(&w, &t),
        [(
            "task_transferred".to_string(),
            format!("user {}", colleague.user)
        )]
    );
    // A transfer is for good: the former holder no longer decides.
    let r = w.apply(
        &me,
        &Action::Approve {
            task,
            opinion: "同意".into(),
        },
    );
    assert_eq!(r.err().map(|e| e.code()), Some("claimed-by-other"));
    w.must(
        &colleague,
        &Action::Approve {
            task,
            opinion: "同意".into(),
        },
    );
    assert_eq!(w.state.step.as_deref(), Some("supervisor_review"));
    assert_eq!(w.live_codes(), ["TJ-MIIT"]);
}

/// 加签/减签 by the lead on the yqyc countersign step.
#[test]
fn the_lead_adds_and_removes_countersigners() {
    let mut w = at_countersign(&["rd_funding"]);
    let lead = w.reviewer("TJ-MIIT");
    let edu = w.org("TJ-EDU");
    let t = w.must(
        &lead,
        &Action::AddSigner {
            org: edu,
            reason: "涉及人才培养".into(),
        },
    );
    assert_eq!(w.live_codes(), ["TJ-CAC", "TJ-DRC", "TJ-EDU", "TJ-STC"]);
    assert_eq!(t.opened.len(), 1);
    assert_eq!(Some(t.opened[0].due), w.state.step_due);
    let r = w.apply(
        &lead,
        &Action::AddSigner {
            org: edu,
            reason: "再次".into(),
        },
    );
    assert_eq!(r.err().map(|e| e.code()), Some("already-participant"));
    // Removing everybody but one, then the last one is refused.
    for org in ["TJ-STC", "TJ-DRC", "TJ-CAC"] {
        let task = w.task_of(org).id;
        w.must(
            &lead,
            &Action::RemoveSigner {
                task,
                reason: "无关".into(),
            },
        );
        w.assert_valid();
    }
    let task = w.task_of("TJ-EDU").id;
    let r = w.apply(
        &lead,
        &Action::RemoveSigner {
            task,
            reason: "无关".into(),
        },
    );
    assert_eq!(r.err().map(|e| e.code()), Some("last-participant"));
    w.approve("TJ-EDU");
    assert_eq!(w.state.step.as_deref(), Some("coordination"));
    w.assert_valid();
}

/// After a return, the countersign step reopens with the lead's 加签/减签 kept: the
/// organization added is asked again, the one removed is not.
#[test]
fn resubmission_keeps_the_leads_added_and_removed_countersigners() {
    let mut w = at_countersign(&["rd_funding"]);
    let lead = w.reviewer("TJ-MIIT");
    let edu = w.org("TJ-EDU");
    w.must(
        &lead,
        &Action::AddSigner {
            org: edu,
            reason: "涉及人才培养".into(),
        },
    );
    let drc = w.task_of("TJ-DRC").id;
    w.must(
        &lead,
        &Action::RemoveSigner {
            task: drc,
            reason: "不涉及投资项目".into(),
        },
    );
    let cac = w.reviewer("TJ-CAC");
    let task = w.task_of("TJ-CAC").id;
    w.must(
        &cac,
        &Action::Return {
            task,
            items: vec![ReturnItem {
                kind: ItemKind::Section,
                id: "plan".into(),
                note: "补充数据安全措施".into(),
            }],
            comment: "请补正".into(),
        },
    );
    // CAC's return is held while STC and EDU decide.
    assert_eq!(w.state.status, ApplicationStatus::InReview);
    w.approve("TJ-STC");
    w.approve("TJ-EDU");
    assert_eq!(w.state.status, ApplicationStatus::Returned);
    w.must(&applicant(), &Action::Resubmit { note: None });
    assert_eq!(w.live_codes(), ["TJ-CAC", "TJ-EDU", "TJ-STC"]);
    w.assert_valid();
}

/// Refusals about the arguments rather than the role: each with its exact code.
#[test]
fn refusals_about_the_arguments() {
    let mut bad = Vec::new();
    let mut check = |what: &str, w: &World, actor: &Actor, action: Action, want: &str| {
        let got = w.decide(actor, &action).err().map(|e| e.code());
        if got != Some(want) {
            bad.push(format!("{what}: expected {want}, got {got:?}"));
        }
    };

    // Submission.
    let mut w = World::yqyc(&["rd_funding"]);
    w.form["revenue"] = serde_json::json!("a lot");
    check(
        "non-numeric revenue",
        &w,
        &applicant(),
        Action::Submit,
        "form-incomplete",
    );
    let mut w = World::yqyc(&[]);
    check(
        "no support requested",
        &w,
        &applicant(),
        Action::Submit,
        "form-incomplete",
    );
    w.form = yqyc_form(&["teleportation"]);
    check(
        "unknown option",
        &w,
        &applicant(),
        Action::Submit,
        "form-incomplete",
    );
    let mut w = World::platform("TJ-STC", &["cpu_core_hours"]);
    check(
        "a bureau as platform",
        &w,
        &applicant(),
        Action::Submit,
        "form-incomplete",
    );
    w.form = platform_form("P-CLOUD", &["cpu_core_hours"]);
    w.form["period_end"] = serde_json::json!("2026-13-45");
    check(
        "invalid date",
        &w,
        &applicant(),
        Action::Submit,
        "form-incomplete",
    );
    let mut w = World::ip("fast_protection", true);
    w.missing_materials = vec!["ip_certificate".into()];
    check(
        "missing material",
        &w,
        &applicant(),
        Action::Submit,
        "materials-missing",
    );
    let mut w = World::yqyc(&["rd_funding"]);
    w.district = None;
    check(
        "no district",
        &w,
        &applicant(),
        Action::Submit,
        "unresolvable-organization",
    );

    // Tasks on the yqyc countersign step.
    let mut w = at_countersign(&["rd_funding"]);
    let stc = w.reviewer("TJ-STC");
    let stc_task = w.task_of("TJ-STC").id;
    let lead_task = w.last_task_of("TJ-MIIT").expect("lead task").id;
    let approve = |task, opinion: &str| Action::Approve {
        task,
        opinion: opinion.into(),
    };
    check(
        "unknown task",
        &w,
        &stc,
        approve(task_id(4242), "同意"),
        "unknown-task",
    );
    let miit = w.reviewer("TJ-MIIT");
    check(
        "task of an earlier round",
        &w,
        &miit,
        approve(lead_task, "同意"),
        "task-closed",
    );
    check(
        "empty opinion",
        &w,
        &stc,
        approve(stc_task, "  "),
        "opinion-required",
    );
    let long = "长".repeat(5001);
    check(
        "opinion too long",
        &w,
        &stc,
        approve(stc_task, &long),
        "opinion-required",
    );
    check(
        "no return items",
        &w,
        &stc,
        Action::Return {
            task: stc_task,
            items: vec![],
            comment: "x".into(),
        },
        "items-required",
    );
    check(
        "unknown return item",
        &w,
        &stc,
        Action::Return {
            task: stc_task,
            items: vec![zhigang::workflow::engine::ReturnItem {
                kind: zhigang::workflow::engine::ItemKind::Material,
                id: "company".into(),
                note: String::new(),
            }],
            comment: "x".into(),
        },
        "unknown-item",
    );
    check(
        "empty return comment",
        &w,
        &stc,
        Action::Return {
            task: stc_task,
            items: vec![section_item(w.def())],
            comment: String::new(),
        },
        "text-required",
    );
    check(
        "empty reject reason",
        &w,
        &stc,
        Action::Reject {
            task: stc_task,
            reason: " ".into(),
        },
        "reason-required",
    );
    check(
        "empty comment",
        &w,
        &applicant(),
        Action::Comment {
            text: "\n".into(),
            internal: false,
        },
        "text-required",
    );
    check(
        "comment too long",
        &w,
        &applicant(),
        Action::Comment {
            text: long.clone(),
            internal: false,
        },
        "text-required",
    );
    check(
        "release an open task",
        &w,
        &stc,
        Action::Release { task: stc_task },
        "not-claimed",
    );
    check(
        "add an unknown organization",
        &w,
        &miit,
        Action::AddSigner {
            org: zhigang::ids::OrgId(uuid::Uuid::from_u64_pair(1, 2)),
            reason: "x".into(),
        },
        "unknown-organization",
    );
    let drc = w.org("TJ-DRC");
    check(
        "add a participant",
        &w,
        &miit,
        Action::AddSigner {
            org: drc,
            reason: "x".into(),
        },
        "already-participant",
    );
    let edu = w.org("TJ-EDU");
    check(
        "add without a reason",
        &w,
        &miit,
        Action::AddSigner {
            org: edu,
            reason: String::new(),
        },
        "reason-required",
    );
    // A task already approved in this round.
    w.approve("TJ-STC");
    check(
        "approve twice",
        &w,
        &stc,
        approve(stc_task, "同意"),
        "task-closed",
    );
    check(
        "remove an approved signer",
        &w,
        &miit,
        Action::RemoveSigner {
            task: stc_task,
            reason: "x".into(),
        },
        "task-closed",
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

// ---- regressions: engine bugs found by these tables, fixed -----------------------

/// 委派 returns to the delegator; a delegate may not re-delegate (`already-delegated`),
/// and handing the task on for good (转办) must not be a way around that: after it the
/// delegator can no longer act on a task they only lent out.
#[test]

fn a_delegate_cannot_transfer_the_delegated_task_away() {
    let mut w = at_countersign(&["rd_funding"]);
    let task = w.task_of("TJ-STC").id;
    let delegator = w.reviewer("TJ-STC");
    let delegate = w.colleague("TJ-STC");
    let third = w.reviewer_n("TJ-STC", 1);
    w.must(
        &delegator,
        &Action::Delegate {
            task,
            to: World::assignee(&delegate),
        },
    );
    let r = w.apply(
        &delegate,
        &Action::Transfer {
            task,
            to: World::assignee(&third),
        },
    );
    assert_eq!(
        r.as_ref().err().map(|e| e.code()),
        Some("already-delegated"),
        "the delegate transferred the task: now held by {:?}, delegated_by {:?}",
        w.task_of("TJ-STC").claimant,
        w.task_of("TJ-STC").delegated_by
    );
}

/// Remind is open to "a reviewer of another involved organization". A reviewer of two
/// involved organizations X and Y gets a different answer for X's task than for Y's
/// task, depending only on the order of the organizations' ids: the engine looks at the
/// *first* involved organization of the actor (`involved_org_of`) and refuses when that
/// one happens to be the task's.
#[test]

fn remind_by_a_reviewer_of_two_involved_organizations_does_not_depend_on_id_order() {
    let mut w = at_countersign(&["rd_funding"]);
    w.advance_days(30);
    let mut both = w.reviewer("TJ-STC");
    both.reviewer_of.insert(w.org("TJ-CAC"));
    let on = |w: &World, code: &str| {
        let task = w.task_of(code).id;
        w.decide(&both, &Action::Remind { task })
            .map(|_| "allowed")
            .map_err(|e| e.code())
    };
    let stc = on(&w, "TJ-STC");
    let cac = on(&w, "TJ-CAC");
    assert_eq!(
        (stc, cac),
        (Ok("allowed"), Ok("allowed")),
        "reminders by a reviewer of TJ-STC and TJ-CAC on TJ-STC's and TJ-CAC's tasks"
    );
}

#[test]
fn a_system_admin_reassigns_a_claimed_task_within_its_organization_but_cannot_delegate_it() {
    let mut w = World::platform("P-MILCIV", &["gpu_card_hours"]);
    w.submit();
    let task = w.task_of("P-MILCIV").id;
    let holder = w.reviewer("P-MILCIV");
    w.must(&holder, &Action::Claim { task });
    let admin = system_admin();
    let stranger = w.reviewer("TJ-MIIT");
    let r = w.apply(
        &admin,
        &Action::Transfer {
            task,
            to: World::assignee(&stranger),
        },
    );
    assert_eq!(r.err().map(|e| e.code()), Some("not-a-colleague"));
    let colleague = w.colleague("P-MILCIV");
    let r = w.apply(
        &admin,
        &Action::Delegate {
            task,
            to: World::assignee(&colleague),
        },
    );
    assert_eq!(r.err().map(|e| e.code()), Some("not-permitted"));
    w.must(
        &admin,
        &Action::Transfer {
            task,
            to: World::assignee(&colleague),
        },
    );
    let moved = w.task_of("P-MILCIV");
    assert_eq!(moved.claimant, Some(colleague.user));
    assert_eq!(moved.delegated_by, None);
    w.assert_valid();
}
