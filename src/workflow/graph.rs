//! Graphviz DOT of a definition (`zhigang workflow graph KEY`).

use std::fmt::Write;

use crate::workflow::definition::{Condition, Definition, OrgRef, StepKind, Target};

fn quote(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

fn condition_label(c: &Condition) -> String {
    match c {
        Condition::AnyOf { field, values } => format!("{field} ∈ {{{}}}", values.join(", ")),
        Condition::Equals { field, value } => format!("{field} = {value}"),
        Condition::All(cs) => cs
            .iter()
            .map(condition_label)
            .collect::<Vec<_>>()
            .join(" and "),
        Condition::Any(cs) => cs
            .iter()
            .map(condition_label)
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn org_label(r: &OrgRef) -> String {
    r.to_string()
}

/// The definition as a Graphviz digraph, with step names in `locale`; `current` is
/// highlighted.
pub fn to_dot(def: &Definition, locale: &str, current: Option<&str>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "digraph {} {{", quote(&def.key));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  node [shape=box, style=rounded];");
    let _ = writeln!(out, "  start [shape=circle, label=\"\", width=0.2];");
    let _ = writeln!(out, "  end [shape=doublecircle, label=\"\", width=0.2];");
    for s in &def.steps {
        let who = match &s.kind {
            StepKind::Review { organization } => org_label(organization),
            StepKind::Countersign { participants, .. } => participants
                .iter()
                .map(|p| match &p.when {
                    Some(c) => format!("{} [{}]", org_label(&p.organization), condition_label(c)),
                    None => org_label(&p.organization),
                })
                .collect::<Vec<_>>()
                .join("\\n"),
        };
        let mut label = format!("{}\\n{}\\n{}d", s.name.get(locale), who, s.promised_days);
        if let Some(c) = &s.when {
            label.push_str(&format!("\\nwhen {}", condition_label(c)));
        }
        let style = if current == Some(s.id.as_str()) {
            ", style=\"rounded,filled,bold\", fillcolor=\"#ffe08a\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} [label={}{style}];",
            quote(&s.id),
            quote(&label).replace("\\\\n", "\\n")
        );
    }
    let _ = writeln!(out, "  start -> {};", quote(&def.start));
    for s in &def.steps {
        for b in &s.next {
            let to = match &b.to {
                Target::End => "end".to_string(),
                Target::Step(n) => quote(n),
            };
            match &b.when {
                Some(c) => {
                    let _ = writeln!(
                        out,
                        "  {} -> {to} [label={}];",
                        quote(&s.id),
                        quote(&condition_label(c))
                    );
                }
                None => {
                    let _ = writeln!(out, "  {} -> {to};", quote(&s.id));
                }
            }
        }
    }
    out.push_str("}\n");
    out
}
