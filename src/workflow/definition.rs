//! Workflow definitions: the TOML a bureau clerk can read, parsed and validated into
//! [`Definition`]. A definition names the form fields, the required materials and the
//! steps of the route; each step is owned by one organization (或签) or by several in
//! parallel (会签), may depend on form fields, and has a promised time in working days.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;

use entity::enums::OrgKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::organizations::OrgDirectory;

/// The reserved step name that ends a route with approval.
pub const END: &str = "end";

/// A text in both languages of the portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    /// Chinese (zh-CN), the default language.
    pub zh: String,
    /// English.
    pub en: String,
}

impl Text {
    /// The text in `locale` (anything starting with `en` is English; everything else Chinese).
    pub fn get(&self, locale: &str) -> &str {
        if locale.starts_with("en") {
            &self.en
        } else {
            &self.zh
        }
    }
}

/// A validated workflow definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The application type's key (`yqyc`, `ip_fast_track`, `platform_access`).
    pub key: String,
    /// Prefix of reference numbers (`YQYC` gives `YQYC-2026-000123`).
    pub reference_prefix: String,
    /// The type's name.
    pub name: Text,
    /// Plain-language explanation of who it is for and what it gives.
    pub summary: Text,
    /// Promised time of the whole case in working days, when the plan promises one.
    pub case_promised_days: Option<u32>,
    /// Working days the applicant has to answer a return for revision.
    pub revision_days: u32,
    /// Sections of the form, in order.
    pub sections: Vec<Section>,
    /// Form fields, in order.
    pub fields: Vec<Field>,
    /// Required and optional materials (attachments).
    pub materials: Vec<Material>,
    /// The first step.
    pub start: String,
    /// Steps in file order.
    pub steps: Vec<Step>,
}

/// A section of the application form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Identifier.
    pub id: String,
    /// Title.
    pub name: Text,
}

/// A material (attachment) the applicant provides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Material {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: Text,
    /// Whether the application can be submitted without it.
    #[serde(default)]
    pub required: bool,
}

/// The type of a form field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// One line of text.
    Text,
    /// Several paragraphs.
    LongText,
    /// A whole number (amounts in yuan, counts).
    Number,
    /// Yes or no.
    Boolean,
    /// A calendar date (YYYY-MM-DD).
    Date,
    /// One of `options`.
    Choice,
    /// Any subset of `options`.
    MultiChoice,
    /// The code of an organization of `organization_kind`.
    Organization,
}

/// A form field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Name in the form data.
    pub name: String,
    /// Section it belongs to.
    pub section: String,
    /// Label.
    pub label: Text,
    /// Type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Whether it must be answered before submission.
    #[serde(default)]
    pub required: bool,
    /// Allowed values of a choice or multi-choice field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// For an organization field: which kind of organization may be chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_kind: Option<OrgKind>,
    /// What the applicant reads for each option (the option value when absent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub option_labels: BTreeMap<String, Text>,
}

impl Field {
    /// The label of an option in `locale`.
    pub fn option_label<'a>(&'a self, option: &'a str, locale: &str) -> &'a str {
        self.option_labels
            .get(option)
            .map_or(option, |t| t.get(locale))
    }
}

/// Who owns a step: a fixed organization or one resolved from the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgRef {
    /// A fixed organization, by code.
    Code(String),
    /// `@company.district`: the applicant company's district.
    CompanyDistrict,
    /// `@form.FIELD`: the organization chosen in an organization field.
    FormField(String),
    /// `@form.FIELD.supervisor`: the bureau supervising the chosen platform operator.
    FormFieldSupervisor(String),
}

impl fmt::Display for OrgRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrgRef::Code(c) => write!(f, "{c}"),
            OrgRef::CompanyDistrict => write!(f, "@company.district"),
            OrgRef::FormField(n) => write!(f, "@form.{n}"),
            OrgRef::FormFieldSupervisor(n) => write!(f, "@form.{n}.supervisor"),
        }
    }
}

/// A condition on form fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The field's value (or, for a multi-choice field, any of its values) is one of these.
    AnyOf {
        /// Field name.
        field: String,
        /// Values.
        values: Vec<String>,
    },
    /// The field's value equals this JSON value.
    Equals {
        /// Field name.
        field: String,
        /// Value.
        value: Value,
    },
    /// All conditions hold.
    All(Vec<Condition>),
    /// At least one condition holds.
    Any(Vec<Condition>),
}

impl Condition {
    /// Evaluates the condition on the form data (a JSON object).
    pub fn holds(&self, form: &Value) -> bool {
        match self {
            Condition::AnyOf { field, values } => match form.get(field) {
                Some(Value::String(s)) => values.iter().any(|v| v == s),
                Some(Value::Array(items)) => items
                    .iter()
                    .any(|i| i.as_str().is_some_and(|s| values.iter().any(|v| v == s))),
                _ => false,
            },
            Condition::Equals { field, value } => form.get(field) == Some(value),
            Condition::All(cs) => cs.iter().all(|c| c.holds(form)),
            Condition::Any(cs) => cs.iter().any(|c| c.holds(form)),
        }
    }
}

/// A participant of a countersign step, or an organization copied (抄送) on a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    /// The organization.
    pub organization: OrgRef,
    /// Only when this holds.
    pub when: Option<Condition>,
}

/// How a step is signed.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// 或签: one organization; any one of its reviewers decides.
    Review {
        /// The owner.
        organization: OrgRef,
    },
    /// 会签: several organizations in parallel; all must approve.
    Countersign {
        /// The participants (some conditional).
        participants: Vec<Participant>,
        /// The organization that may add or remove participants while the step runs.
        lead: Option<OrgRef>,
    },
}

/// Where a step leads after approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The route ends: the application is approved.
    End,
    /// Another step.
    Step(String),
}

/// One branch of `next`.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// Taken when this holds (`None`: the default, always last).
    pub when: Option<Condition>,
    /// Destination.
    pub to: Target,
}

/// A step of the route.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: Text,
    /// How it is signed.
    pub kind: StepKind,
    /// Promised time (承诺时限) in working days.
    pub promised_days: u32,
    /// The step is skipped unless this holds.
    pub when: Option<Condition>,
    /// Organizations copied when the step opens.
    pub cc: Vec<Participant>,
    /// Where approval leads; the first branch whose condition holds is taken.
    pub next: Vec<Branch>,
}

impl Definition {
    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The field with this name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The SHA-256 checksum of a definition's source text (hex), used to tell versions apart.
    pub fn checksum(source: &str) -> String {
        hex::encode(Sha256::digest(source.as_bytes()))
    }

    /// Parses and validates a definition. `file` names the source in error messages;
    /// `orgs` is the directory organization codes are checked against.
    pub fn parse(file: &str, source: &str, orgs: &OrgDirectory) -> Result<Self, DefinitionErrors> {
        let raw: RawDefinition = toml::from_str(source).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_column(source, s.start))
                .unwrap_or((0, 0));
            DefinitionErrors(vec![DefinitionError {
                file: file.to_string(),
                step: None,
                line: Some(line),
                column: Some(column),
                message: format!("malformed file: {}", e.message().trim()),
            }])
        })?;
        Validator {
            file,
            source,
            orgs,
            errors: Vec::new(),
        }
        .validate(raw)
    }
}

/// One problem found in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// The file (or upload name).
    pub file: String,
    /// The step concerned, if any.
    pub step: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(step) = &self.step {
            write!(f, "step \"{step}\": ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every problem found in a definition (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionErrors(pub Vec<DefinitionError>);

impl fmt::Display for DefinitionErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DefinitionErrors {}

fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count() + 1)
        .unwrap_or(1);
    (line, column)
}

// ---- the file format, as serde reads it -------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    key: String,
    reference_prefix: String,
    name: Text,
    summary: Text,
    case_promised_days: Option<u32>,
    revision_days: Option<u32>,
    start: String,
    #[serde(default)]
    sections: Vec<Section>,
    #[serde(default)]
    fields: Vec<Field>,
    #[serde(default)]
    materials: Vec<Material>,
    #[serde(default)]
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    name: Text,
    kind: RawKind,
    organization: Option<String>,
    #[serde(default)]
    participants: Vec<RawParticipant>,
    lead: Option<String>,
    promised_days: Option<u32>,
    when: Option<RawCondition>,
    #[serde(default)]
    cc: Vec<RawParticipant>,
    next: Option<RawNext>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawKind {
    Review,
    Countersign,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParticipant {
    organization: String,
    when: Option<RawCondition>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawNext {
    One(String),
    Branches(Vec<RawBranch>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBranch {
    when: Option<RawCondition>,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    field: Option<String>,
    any_of: Option<Vec<String>>,
    equals: Option<toml::Value>,
    all: Option<Vec<RawCondition>>,
    any: Option<Vec<RawCondition>>,
}

struct Validator<'a> {
    file: &'a str,
    source: &'a str,
    orgs: &'a OrgDirectory,
    errors: Vec<DefinitionError>,
}

impl Validator<'_> {
    fn err(&mut self, step: Option<&str>, message: impl Into<String>) {
        // Point at the step's `id = "…"` line so a clerk finds it in the file.
        let line = step.and_then(|s| {
            let needle = format!("id = \"{s}\"");
            self.source
                .lines()
                .position(|l| l.trim() == needle)
                .map(|i| i + 1)
        });
        self.errors.push(DefinitionError {
            file: self.file.to_string(),
            step: step.map(str::to_string),
            line,
            column: line.map(|_| 1),
            message: message.into(),
        });
    }

    fn validate(mut self, raw: RawDefinition) -> Result<Definition, DefinitionErrors> {
        if raw.key.is_empty()
            || !raw
                .key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            self.err(None, "key must be lowercase letters, digits and '_'");
        }
        if raw.reference_prefix.is_empty()
            || raw.reference_prefix.len() > 8
            || !raw.reference_prefix.chars().all(|c| c.is_ascii_uppercase())
        {
            self.err(None, "reference_prefix must be 1 to 8 capital letters");
        }
        let revision_days = match raw.revision_days {
            Some(d) if (1..=365).contains(&d) => d,
            Some(_) => {
                self.err(None, "revision_days must be between 1 and 365 working days");
                1
            }
            None => {
                self.err(None, "missing revision_days (the applicant's time to answer a return, in working days)");
                1
            }
        };
        if let Some(d) = raw.case_promised_days
            && !(1..=365).contains(&d)
        {
            self.err(
                None,
                "case_promised_days must be between 1 and 365 working days",
            );
        }

        let section_ids: BTreeSet<&str> = raw.sections.iter().map(|s| s.id.as_str()).collect();
        let mut seen = BTreeSet::new();
        for f in &raw.fields {
            if !seen.insert(f.name.clone()) {
                self.err(None, format!("field \"{}\" is defined twice", f.name));
            }
            if !section_ids.contains(f.section.as_str()) {
                self.err(
                    None,
                    format!(
                        "field \"{}\" names unknown section \"{}\"",
                        f.name, f.section
                    ),
                );
            }
            let is_choice = matches!(f.field_type, FieldType::Choice | FieldType::MultiChoice);
            if is_choice && f.options.is_empty() {
                self.err(
                    None,
                    format!("field \"{}\" is a choice without options", f.name),
                );
            }
            for key in f.option_labels.keys() {
                if !f.options.contains(key) {
                    self.err(
                        None,
                        format!("field \"{}\" labels unknown option \"{key}\"", f.name),
                    );
                }
            }
            if f.field_type == FieldType::Organization && f.organization_kind.is_none() {
                self.err(
                    None,
                    format!("field \"{}\" needs organization_kind", f.name),
                );
            }
        }
        let fields: HashMap<String, Field> = raw
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.clone()))
            .collect();

        let mut step_ids = BTreeSet::new();
        for s in &raw.steps {
            if s.id == END {
                self.err(Some(&s.id), "\"end\" is reserved for the end of the route");
            }
            if !step_ids.insert(s.id.clone()) {
                self.err(Some(&s.id), "step id is used twice");
            }
        }

        let declared_steps = raw.steps.len();
        let mut steps = Vec::new();
        for s in raw.steps {
            if let Some(step) = self.step(s, &fields, &step_ids) {
                steps.push(step);
            }
        }
        if !step_ids.contains(&raw.start) {
            self.err(None, format!("start names unknown step \"{}\"", raw.start));
        }
        if declared_steps == 0 {
            self.err(None, "the route has no steps");
        }
        if self.errors.is_empty() {
            self.check_graph(&raw.start, &steps);
        }
        if !self.errors.is_empty() {
            return Err(DefinitionErrors(self.errors));
        }
        Ok(Definition {
            key: raw.key,
            reference_prefix: raw.reference_prefix,
            name: raw.name,
            summary: raw.summary,
            case_promised_days: raw.case_promised_days,
            revision_days,
            sections: raw.sections,
            fields: raw.fields,
            materials: raw.materials,
            start: raw.start,
            steps,
        })
    }

    fn step(
        &mut self,
        s: RawStep,
        fields: &HashMap<String, Field>,
        step_ids: &BTreeSet<String>,
    ) -> Option<Step> {
        let id = s.id.clone();
        let sid = Some(id.as_str());
        let promised_days = match s.promised_days {
            Some(d) if (1..=365).contains(&d) => d,
            Some(_) => {
                self.err(sid, "promised_days must be between 1 and 365 working days");
                1
            }
            None => {
                self.err(
                    sid,
                    "missing promised time (promised_days, in working days)",
                );
                1
            }
        };
        let kind = match s.kind {
            RawKind::Review => {
                if !s.participants.is_empty() || s.lead.is_some() {
                    self.err(sid, "a review step has one organization; participants and lead belong to countersign steps");
                }
                match s.organization {
                    Some(o) => StepKind::Review {
                        organization: self.org_ref(sid, &o, fields)?,
                    },
                    None => {
                        self.err(sid, "a review step needs an organization");
                        return None;
                    }
                }
            }
            RawKind::Countersign => {
                if s.organization.is_some() {
                    self.err(
                        sid,
                        "a countersign step lists participants, not one organization",
                    );
                }
                if s.participants.is_empty() {
                    self.err(sid, "a countersign step needs participants");
                }
                let participants = self.participants(sid, s.participants, fields)?;
                let lead = match s.lead {
                    Some(l) => Some(self.org_ref(sid, &l, fields)?),
                    None => None,
                };
                StepKind::Countersign { participants, lead }
            }
        };
        let when = match s.when {
            Some(c) => Some(self.condition(sid, c, fields)?),
            None => None,
        };
        let cc = self.participants(sid, s.cc, fields)?;
        let next = match s.next {
            None => {
                self.err(
                    sid,
                    "missing next (a step name, \"end\", or a list of branches)",
                );
                return None;
            }
            Some(RawNext::One(to)) => vec![Branch {
                when: None,
                to: self.target(sid, &to, step_ids)?,
            }],
            Some(RawNext::Branches(bs)) => {
                let mut out = Vec::new();
                let count = bs.len();
                for (i, b) in bs.into_iter().enumerate() {
                    let when = match b.when {
                        Some(c) => Some(self.condition(sid, c, fields)?),
                        None => None,
                    };
                    if when.is_none() && i + 1 != count {
                        self.err(sid, "only the last branch of next may have no condition");
                    }
                    if when.is_some() && i + 1 == count {
                        self.err(sid, "the last branch of next must have no condition (the default), or some applications would have no way on");
                    }
                    out.push(Branch {
                        when,
                        to: self.target(sid, &b.to, step_ids)?,
                    });
                }
                if out.is_empty() {
                    self.err(sid, "next has no branches");
                }
                out
            }
        };
        Some(Step {
            id,
            name: s.name,
            kind,
            promised_days,
            when,
            cc,
            next,
        })
    }

    fn participants(
        &mut self,
        sid: Option<&str>,
        raw: Vec<RawParticipant>,
        fields: &HashMap<String, Field>,
    ) -> Option<Vec<Participant>> {
        let mut out = Vec::new();
        for p in raw {
            let organization = self.org_ref(sid, &p.organization, fields)?;
            let when = match p.when {
                Some(c) => Some(self.condition(sid, c, fields)?),
                None => None,
            };
            out.push(Participant { organization, when });
        }
        Some(out)
    }

    fn target(
        &mut self,
        sid: Option<&str>,
        to: &str,
        step_ids: &BTreeSet<String>,
    ) -> Option<Target> {
        if to == END {
            Some(Target::End)
        } else if step_ids.contains(to) {
            Some(Target::Step(to.to_string()))
        } else {
            self.err(sid, format!("next names unknown step \"{to}\""));
            None
        }
    }

    fn org_ref(
        &mut self,
        sid: Option<&str>,
        text: &str,
        fields: &HashMap<String, Field>,
    ) -> Option<OrgRef> {
        if text == "@company.district" {
            return Some(OrgRef::CompanyDistrict);
        }
        if let Some(rest) = text.strip_prefix("@form.") {
            let (name, supervisor) = match rest.strip_suffix(".supervisor") {
                Some(n) => (n, true),
                None => (rest, false),
            };
            match fields.get(name) {
                Some(f) if f.field_type == FieldType::Organization => {}
                Some(_) => {
                    self.err(
                        sid,
                        format!("\"{text}\": field \"{name}\" is not an organization field"),
                    );
                    return None;
                }
                None => {
                    self.err(
                        sid,
                        format!("\"{text}\" refers to unknown form field \"{name}\""),
                    );
                    return None;
                }
            }
            return Some(if supervisor {
                OrgRef::FormFieldSupervisor(name.to_string())
            } else {
                OrgRef::FormField(name.to_string())
            });
        }
        if text.starts_with('@') {
            self.err(sid, format!("unknown organization reference \"{text}\" (use a code, @company.district, @form.FIELD or @form.FIELD.supervisor)"));
            return None;
        }
        if self.orgs.by_code(text).is_none() {
            self.err(sid, format!("unknown organization \"{text}\""));
            return None;
        }
        Some(OrgRef::Code(text.to_string()))
    }

    fn condition(
        &mut self,
        sid: Option<&str>,
        raw: RawCondition,
        fields: &HashMap<String, Field>,
    ) -> Option<Condition> {
        match raw {
            RawCondition {
                field: Some(field),
                any_of: Some(values),
                equals: None,
                all: None,
                any: None,
            } => {
                let Some(f) = fields.get(&field) else {
                    self.err(sid, format!("condition on unknown form field \"{field}\""));
                    return None;
                };
                if !matches!(f.field_type, FieldType::Choice | FieldType::MultiChoice) {
                    self.err(
                        sid,
                        format!("any_of needs a choice field, \"{field}\" is not one"),
                    );
                    return None;
                }
                for v in &values {
                    if !f.options.contains(v) {
                        self.err(
                            sid,
                            format!("\"{v}\" is not an option of field \"{field}\""),
                        );
                    }
                }
                Some(Condition::AnyOf { field, values })
            }
            RawCondition {
                field: Some(field),
                any_of: None,
                equals: Some(value),
                all: None,
                any: None,
            } => {
                if !fields.contains_key(&field) {
                    self.err(sid, format!("condition on unknown form field \"{field}\""));
                    return None;
                }
                let value = match serde_json::to_value(&value) {
                    Ok(v) => v,
                    Err(e) => {
                        self.err(sid, format!("condition value: {e}"));
                        return None;
                    }
                };
                Some(Condition::Equals { field, value })
            }
            RawCondition {
                field: None,
                any_of: None,
                equals: None,
                all: Some(cs),
                any: None,
            } => {
                let mut out = Vec::new();
                for c in cs {
                    out.push(self.condition(sid, c, fields)?);
                }
                Some(Condition::All(out))
            }
            RawCondition {
                field: None,
                any_of: None,
                equals: None,
                all: None,
                any: Some(cs),
            } => {
                let mut out = Vec::new();
                for c in cs {
                    out.push(self.condition(sid, c, fields)?);
                }
                Some(Condition::Any(out))
            }
            _ => {
                self.err(sid, "a condition is { field, any_of }, { field, equals }, { all = [...] } or { any = [...] }");
                None
            }
        }
    }

    /// Every step must be reachable from the start and have a path to the end.
    fn check_graph(&mut self, start: &str, steps: &[Step]) {
        let edges: BTreeMap<&str, Vec<&Target>> = steps
            .iter()
            .map(|s| (s.id.as_str(), s.next.iter().map(|b| &b.to).collect()))
            .collect();
        let mut reached = BTreeSet::new();
        let mut queue = VecDeque::from([start]);
        while let Some(id) = queue.pop_front() {
            if !reached.insert(id) {
                continue;
            }
            for t in edges.get(id).into_iter().flatten() {
                if let Target::Step(n) = t {
                    queue.push_back(n.as_str());
                }
            }
        }
        // A step reaches the end when one of its targets is the end or a step that does;
        // iterate to a fixed point (the graphs are tiny).
        let mut ends = BTreeSet::new();
        loop {
            let before = ends.len();
            for (id, targets) in &edges {
                if targets.iter().any(|t| match t {
                    Target::End => true,
                    Target::Step(n) => ends.contains(n.as_str()),
                }) {
                    ends.insert(*id);
                }
            }
            if ends.len() == before {
                break;
            }
        }
        for s in steps {
            if !reached.contains(s.id.as_str()) {
                self.err(
                    Some(&s.id),
                    "unreachable step: no path leads to it from the start",
                );
            }
            if !ends.contains(s.id.as_str()) {
                self.err(Some(&s.id), "no path from this step to the end");
            }
        }
    }
}

/// The built-in definitions, one file per application type under `src/workflow/definitions/`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("yqyc.toml", include_str!("definitions/yqyc.toml")),
    (
        "ip_fast_track.toml",
        include_str!("definitions/ip_fast_track.toml"),
    ),
    (
        "platform_access.toml",
        include_str!("definitions/platform_access.toml"),
    ),
];

/// Parses the built-in definitions against `orgs`.
pub fn builtin(orgs: &OrgDirectory) -> Result<Vec<(Definition, &'static str)>, DefinitionErrors> {
    BUILTIN
        .iter()
        .map(|(file, src)| Definition::parse(file, src, orgs).map(|d| (d, *src)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orgs() -> OrgDirectory {
        OrgDirectory::from_seed().expect("seed organizations parse")
    }

    #[test]
    fn the_three_builtin_definitions_are_valid() {
        let defs = builtin(&orgs()).unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<_> = defs.iter().map(|(d, _)| d.key.as_str()).collect();
        assert_eq!(keys, ["yqyc", "ip_fast_track", "platform_access"]);
    }

    fn errors_of(source: &str) -> Vec<String> {
        match Definition::parse("broken.toml", source, &orgs()) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    const HEAD: &str = r#"
key = "t"
reference_prefix = "T"
name = { zh = "测试", en = "Test" }
summary = { zh = "测试", en = "Test" }
revision_days = 5
start = "a"

[[sections]]
id = "s"
name = { zh = "节", en = "Section" }

[[fields]]
name = "kind"
section = "s"
label = { zh = "类", en = "Kind" }
type = "choice"
options = ["x", "y"]
"#;

    #[test]
    fn an_unknown_organization_is_named_with_its_step() {
        let errs = errors_of(&format!(
            "{HEAD}\n[[steps]]\nid = \"a\"\nname = {{ zh = \"甲\", en = \"A\" }}\nkind = \"review\"\norganization = \"TJ-NOPE\"\npromised_days = 2\nnext = \"end\"\n"
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("broken.toml:"), "{}", errs[0]);
        assert!(
            errs[0].contains("step \"a\": unknown organization \"TJ-NOPE\""),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn unreachable_and_dead_end_steps_are_refused() {
        let errs = errors_of(&format!(
            "{HEAD}
[[steps]]
id = \"a\"
name = {{ zh = \"甲\", en = \"A\" }}
kind = \"review\"
organization = \"TJ-MIIT\"
promised_days = 2
next = \"end\"

[[steps]]
id = \"b\"
name = {{ zh = \"乙\", en = \"B\" }}
kind = \"review\"
organization = \"TJ-MIIT\"
promised_days = 2
next = \"c\"

[[steps]]
id = \"c\"
name = {{ zh = \"丙\", en = \"C\" }}
kind = \"review\"
organization = \"TJ-MIIT\"
promised_days = 2
next = \"b\"
"
        ));
        assert!(
            errs.iter()
                .any(|e| e.contains("step \"b\": unreachable step")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("step \"c\": no path from this step to the end")),
            "{errs:?}"
        );
    }

    #[test]
    fn a_condition_on_an_unknown_field_and_a_missing_promised_time_are_refused() {
        let errs = errors_of(&format!(
            "{HEAD}
[[steps]]
id = \"a\"
name = {{ zh = \"甲\", en = \"A\" }}
kind = \"countersign\"
next = \"end\"
[[steps.participants]]
organization = \"TJ-FIN\"
when = {{ field = \"nope\", any_of = [\"x\"] }}
"
        ));
        assert!(
            errs.iter()
                .any(|e| e.contains("step \"a\": missing promised time")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("condition on unknown form field \"nope\"")),
            "{errs:?}"
        );
    }

    #[test]
    fn a_malformed_file_is_refused_with_line_and_column() {
        let errs = errors_of("key = \"t\"\nreference_prefix = \n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("broken.toml:2:"), "{}", errs[0]);
        assert!(errs[0].contains("malformed file"), "{}", errs[0]);
    }

    #[test]
    fn conditions_match_single_and_multiple_choices() {
        let c = Condition::AnyOf {
            field: "f".into(),
            values: vec!["a".into(), "b".into()],
        };
        assert!(c.holds(&serde_json::json!({"f": "a"})));
        assert!(c.holds(&serde_json::json!({"f": ["z", "b"]})));
        assert!(!c.holds(&serde_json::json!({"f": ["z"]})));
        assert!(!c.holds(&serde_json::json!({})));
    }
}
