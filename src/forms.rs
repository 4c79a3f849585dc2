//! Application forms: parsing what an applicant typed into a section, field by field, by
//! the types the definition declares; and the status of each section for the task list.
//! The web form and the JSON API both go through here.

use chrono::NaiveDate;
use serde_json::{Map, Value};

use crate::accounts::FieldError;
use crate::organizations::OrgDirectory;
use crate::workflow::definition::{Definition, Field, FieldType};

/// Longest one-line answer.
pub const MAX_TEXT: usize = 200;
/// Longest multi-paragraph answer.
pub const MAX_LONG_TEXT: usize = 5000;
/// Largest number accepted (amounts are in yuan).
pub const MAX_NUMBER: i64 = 1_000_000_000_000_000;

/// The status of a section on the task list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionStatus {
    /// Nothing answered yet.
    NotStarted,
    /// Some answers, not all required ones.
    InProgress,
    /// Every required answer is there and valid.
    Complete,
    /// A reviewer asked for it to be fixed.
    NeedsFixing,
}

fn values<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Parses one field from form pairs. `Ok(None)` means left empty.
pub fn parse_field(
    field: &Field,
    raw: &[&str],
    orgs: &OrgDirectory,
) -> Result<Option<Value>, &'static str> {
    let first = raw.first().map(|s| s.trim()).unwrap_or("");
    let value = match field.field_type {
        FieldType::Text | FieldType::LongText => {
            let max = if field.field_type == FieldType::Text {
                MAX_TEXT
            } else {
                MAX_LONG_TEXT
            };
            if first.is_empty() {
                None
            } else if first.chars().count() > max {
                return Err("too-long");
            } else {
                Some(Value::String(first.to_string()))
            }
        }
        FieldType::Number => {
            if first.is_empty() {
                None
            } else {
                let cleaned: String = first
                    .chars()
                    .filter(|c| !matches!(c, ',' | '\u{ff0c}' | ' '))
                    .collect();
                match cleaned.parse::<i64>() {
                    Ok(n) if (0..=MAX_NUMBER).contains(&n) => Some(Value::from(n)),
                    _ => return Err("number-invalid"),
                }
            }
        }
        FieldType::Boolean => Some(Value::Bool(first == "true")),
        FieldType::Date => {
            if first.is_empty() {
                None
            } else if NaiveDate::parse_from_str(first, "%Y-%m-%d").is_ok() {
                Some(Value::String(first.to_string()))
            } else {
                return Err("date-invalid");
            }
        }
        FieldType::Choice => {
            if first.is_empty() {
                None
            } else if field.options.iter().any(|o| o == first) {
                Some(Value::String(first.to_string()))
            } else {
                return Err("choice-invalid");
            }
        }
        FieldType::MultiChoice => {
            let chosen: Vec<&str> = raw
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .collect();
            if chosen.iter().any(|c| !field.options.iter().any(|o| o == c)) {
                return Err("choice-invalid");
            }
            // Keep the definition's order, without duplicates.
            let ordered: Vec<Value> = field
                .options
                .iter()
                .filter(|o| chosen.contains(&o.as_str()))
                .map(|o| Value::String(o.clone()))
                .collect();
            if ordered.is_empty() {
                None
            } else {
                Some(Value::Array(ordered))
            }
        }
        FieldType::Organization => {
            if first.is_empty() {
                None
            } else if orgs
                .by_code(first)
                .is_some_and(|o| Some(o.kind) == field.organization_kind)
            {
                Some(Value::String(first.to_string()))
            } else {
                return Err("choice-invalid");
            }
        }
    };
    let missing = match &value {
        None => true,
        Some(Value::Bool(b)) => !b,
        Some(_) => false,
    };
    if field.required && missing {
        return Err(if field.field_type == FieldType::Boolean {
            "must-confirm"
        } else {
            "required"
        });
    }
    Ok(value)
}

/// Parses a section's form pairs: the values to store (only fields answered correctly)
/// and every field's problem.
pub fn parse_section(
    def: &Definition,
    section: &str,
    pairs: &[(String, String)],
    orgs: &OrgDirectory,
) -> (Map<String, Value>, Vec<FieldError>) {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for f in def.fields.iter().filter(|f| f.section == section) {
        match parse_field(f, &values(pairs, &f.name), orgs) {
            Ok(Some(v)) => {
                out.insert(f.name.clone(), v);
            }
            Ok(None) => {
                out.insert(f.name.clone(), Value::Null);
            }
            Err(message) => errors.push(FieldError {
                field: f.name.clone(),
                message,
            }),
        }
    }
    (out, errors)
}

fn answered(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    }
}

/// The task-list status of a section given the stored form.
pub fn section_status(
    def: &Definition,
    section: &str,
    form: &Value,
    flagged: bool,
) -> SectionStatus {
    if flagged {
        return SectionStatus::NeedsFixing;
    }
    let fields: Vec<&Field> = def.fields.iter().filter(|f| f.section == section).collect();
    let any = fields.iter().any(|f| form.get(&f.name).is_some());
    let complete = fields.iter().all(|f| {
        !f.required
            || match form.get(&f.name) {
                Some(Value::Bool(b)) => *b,
                other => answered(other),
            }
    });
    match (any, complete) {
        (false, _) => SectionStatus::NotStarted,
        (true, true) => SectionStatus::Complete,
        (true, false) => SectionStatus::InProgress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> (Definition, OrgDirectory) {
        let orgs = OrgDirectory::from_seed().expect("seed");
        let defs = crate::workflow::definition::builtin(&orgs).expect("builtin");
        (defs[0].0.clone(), orgs)
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_section_parses_by_type_and_reports_every_problem() {
        let (def, orgs) = def();
        let (values, errors) = parse_section(
            &def,
            "company",
            &pairs(&[
                ("ai_field", "robots"),
                ("revenue", "1,200,000"),
                ("rd_spend", "-5"),
                ("headcount", "abc"),
            ]),
            &orgs,
        );
        assert_eq!(values["ai_field"], "robots");
        assert_eq!(values["revenue"], 1_200_000);
        let bad: Vec<_> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.message))
            .collect();
        assert_eq!(
            bad,
            [
                ("rd_spend", "number-invalid"),
                ("headcount", "number-invalid"),
                ("patents", "required")
            ]
        );
    }

    #[test]
    fn multi_choices_keep_the_definitions_order_and_refuse_unknown_values() {
        let (def, orgs) = def();
        let (values, errors) = parse_section(
            &def,
            "request",
            &pairs(&[
                ("support_requested", "talent"),
                ("support_requested", "rd_funding"),
                ("amount_requested", "5000000"),
            ]),
            &orgs,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            values["support_requested"],
            serde_json::json!(["rd_funding", "talent"])
        );
        let (_, errors) = parse_section(
            &def,
            "request",
            &pairs(&[("support_requested", "bribe")]),
            &orgs,
        );
        assert!(
            errors
                .iter()
                .any(|e| e.field == "support_requested" && e.message == "choice-invalid")
        );
    }

    #[test]
    fn section_status_follows_the_answers() {
        let (def, _) = def();
        let empty = serde_json::json!({});
        assert_eq!(
            section_status(&def, "plan", &empty, false),
            SectionStatus::NotStarted
        );
        let partial = serde_json::json!({ "ai_field": "robots" });
        assert_eq!(
            section_status(&def, "company", &partial, false),
            SectionStatus::InProgress
        );
        let plan = serde_json::json!({ "plan_description": "计划" });
        assert_eq!(
            section_status(&def, "plan", &plan, false),
            SectionStatus::Complete
        );
        assert_eq!(
            section_status(&def, "plan", &plan, true),
            SectionStatus::NeedsFixing
        );
    }
}
