//! Handlebars templates and static assets, embedded from `templates/` at compile time so
//! the binary runs from anywhere.

use handlebars::{Handlebars, handlebars_helper};
use rust_embed::Embed as RustEmbed;
use serde_json::Value;

use crate::web::i18n::TranslateHelper;

#[derive(RustEmbed)]
#[folder = "templates/"]
#[include = "*.hbs"]
#[include = "**/*.hbs"]
#[include = "static/*"]
#[exclude = "email/*"]
struct Assets;

handlebars_helper!(eq: |a: Value, b: Value| a == b);
handlebars_helper!(not: |a: Value| a.is_null() || a == Value::Bool(false) || a == Value::String(String::new()));

/// The compiled templates.
pub struct Templates {
    hb: Handlebars<'static>,
}

impl Templates {
    /// Compiles every `*.hbs` under `templates/`; a template is named by its path without
    /// the extension (`pages/home`, `partials/field`).
    pub fn load() -> anyhow::Result<Self> {
        let mut hb = Handlebars::new();
        // Optional values (a field without an error) are simply absent; strict mode would
        // turn each into an error.
        hb.set_strict_mode(false);
        hb.register_helper("t", Box::new(TranslateHelper));
        hb.register_helper("eq", Box::new(eq));
        hb.register_helper("not", Box::new(not));
        for path in Assets::iter() {
            let Some(name) = path.strip_suffix(".hbs") else {
                continue;
            };
            let file = Assets::get(&path)
                .ok_or_else(|| anyhow::anyhow!("embedded template {path} vanished"))?;
            let source = std::str::from_utf8(&file.data)?;
            hb.register_template_string(name, source)
                .map_err(|e| anyhow::anyhow!("template {path}: {e}"))?;
        }
        Ok(Self { hb })
    }

    /// Renders a template.
    pub fn render(&self, name: &str, data: &Value) -> anyhow::Result<String> {
        Ok(self.hb.render(name, data)?)
    }

    /// Names of all page templates (for tests that render every page type).
    pub fn names(&self) -> Vec<String> {
        self.hb.get_templates().keys().cloned().collect()
    }
}

/// A static asset (CSS) by file name.
pub fn asset(name: &str) -> Option<(Vec<u8>, &'static str)> {
    let file = Assets::get(&format!("static/{name}"))?;
    let mime = if name.ends_with(".css") {
        "text/css; charset=utf-8"
    } else if name.ends_with(".svg") {
        "image/svg+xml"
    } else {
        "application/octet-stream"
    };
    Some((file.data.into_owned(), mime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::i18n;
    use crate::workflow::engine::{ActionKind, Refusal};

    fn keys_used_in_templates() -> Vec<String> {
        let mut out = Vec::new();
        for path in Assets::iter() {
            let Some(file) = Assets::get(&path) else {
                continue;
            };
            let text = String::from_utf8_lossy(&file.data).to_string();
            for piece in text.split("{{t \"").skip(1) {
                if let Some(key) = piece.split('"').next() {
                    out.push(key.to_string());
                }
            }
        }
        out
    }

    #[test]
    fn every_message_the_pages_use_exists_in_both_languages() {
        let zh = i18n::keys("zh-CN");
        let en = i18n::keys("en");
        let mut used = keys_used_in_templates();
        assert!(used.len() > 50, "templates were scanned");
        // Keys built at run time from codes.
        for s in entity::enums::ApplicationStatus::ALL {
            used.push(format!("status-{}", sea_orm::ActiveEnum::to_value(&s)));
        }
        for k in ActionKind::ALL {
            used.push(format!("event-{}", k.as_str()));
        }
        let refusals = [
            Refusal::NotPermitted,
            Refusal::UnknownTask,
            Refusal::TaskClosed,
            Refusal::ClaimedByOther,
            Refusal::AlreadyClaimed,
            Refusal::NotClaimed,
            Refusal::OpinionRequired,
            Refusal::ReasonRequired,
            Refusal::ItemsRequired,
            Refusal::UnknownItem(String::new()),
            Refusal::TextRequired,
            Refusal::NotOverdue,
            Refusal::NotAColleague,
            Refusal::SameUser,
            Refusal::AlreadyDelegated,
            Refusal::NotCountersign,
            Refusal::AlreadyParticipant,
            Refusal::LastParticipant,
            Refusal::UnknownOrganization,
            Refusal::FormIncomplete(vec![]),
            Refusal::MaterialsMissing(vec![]),
            Refusal::Unresolvable(String::new()),
            Refusal::EmailNotVerified,
            Refusal::Locked,
        ];
        for r in &refusals {
            used.push(format!("refusal-{}", r.code()));
        }
        // The workbench's flash after each action and its task statuses.
        for k in ActionKind::ALL {
            if !matches!(
                k,
                ActionKind::Submit | ActionKind::Resubmit | ActionKind::Withdraw
            ) {
                used.push(format!("review-done-{}", k.as_str()));
            }
        }
        for s in [
            "open",
            "claimed",
            "approved",
            "returned",
            "rejected",
            "cancelled",
            "removed",
        ] {
            used.push(format!("review-task-{s}"));
        }
        // Every kind of mail, named in the delivery log.
        for kind in crate::mail::render::kinds() {
            used.push(format!("mail-{kind}"));
        }
        let missing: Vec<_> = used
            .iter()
            .filter(|k| !zh.contains(k) || !en.contains(k))
            .collect();
        assert!(missing.is_empty(), "keys missing in a catalog: {missing:?}");
    }

    #[test]
    fn every_template_compiles() {
        let t = Templates::load().expect("templates compile");
        assert!(t.names().iter().any(|n| n == "pages/app_section"));
    }
}
