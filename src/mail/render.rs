//! Rendering: the handlebars templates under `templates/email/`, compiled into the binary
//! so a deployed portal cannot lose them.
//!
//! Each kind has one small file per language defining four inline partials — `subject`,
//! `happened` (what happened), `next` (what to do, by when) and `action` (the label of the
//! link) — and the language's HTML and plain-text layouts put them together with the
//! details every kind shares (items to revise, comment, reason, message, link). The same
//! kind file is rendered twice: once by a registry that escapes HTML, once by one that
//! does not (plain text and the subject).

use handlebars::Handlebars;
use serde_json::Value;

/// Builds `[(kind, zh-CN source, en source)]`; a missing file fails the build.
macro_rules! kinds {
    ($($kind:literal),* $(,)?) => {
        &[$((
            $kind,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/email/zh-CN/", $kind, ".hbs")),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/email/en/", $kind, ".hbs")),
        )),*]
    };
}

/// Every kind of email the portal sends, with its templates.
const KIND_SOURCES: &[(&str, &str, &str)] = kinds!(
    // Applicant events.
    "submitted",
    "resubmitted",
    "returned",
    "approved",
    "rejected",
    "withdrawn",
    "message",
    "revision_due_soon",
    // Reviewer events.
    "task_arrived",
    "cc",
    "task_transferred",
    "task_delegated",
    "delegation_returned",
    "reminder",
    "task_due_soon",
    "task_due_today",
    "task_escalated",
    "signer_removed",
    "sibling_returned",
    "sibling_rejected",
    "low_rating",
    // The reviewers' daily digest of new tasks.
    "digest",
    // Account and security.
    "verification",
    "password_reset",
    "password_changed",
    "invitation",
);

const LAYOUTS: [(Lang, &str, &str); 2] = [
    (
        Lang::Zh,
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/templates/email/zh-CN/layout.html.hbs"
        )),
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/templates/email/zh-CN/layout.txt.hbs"
        )),
    ),
    (
        Lang::En,
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/templates/email/en/layout.html.hbs"
        )),
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/templates/email/en/layout.txt.hbs"
        )),
    ),
];

/// The kinds that have templates.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    KIND_SOURCES.iter().map(|(k, _, _)| *k)
}

/// A language of the portal's email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Simplified Chinese, the default.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The language for a user's locale: anything starting with `en` is English, everything
    /// else Chinese (the same rule as the workflow definitions' texts).
    pub fn of(locale: &str) -> Self {
        if locale.starts_with("en") {
            Self::En
        } else {
            Self::Zh
        }
    }

    /// The locale tag (`zh-CN`, `en`).
    pub fn tag(self) -> &'static str {
        match self {
            Self::Zh => "zh-CN",
            Self::En => "en",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Zh => "zh",
            Self::En => "en",
        }
    }
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, whitespace collapsed.
    pub subject: String,
    /// The HTML part (every value escaped).
    pub html: String,
    /// The plain-text part.
    pub text: String,
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No template for this kind.
    #[error("no email template for the kind \"{0}\"")]
    UnknownKind(String),
    /// The template failed (a bug in a template, or data it cannot use).
    #[error("template {name}: {source}")]
    Template {
        /// The template's name.
        name: String,
        /// The cause.
        #[source]
        source: handlebars::RenderError,
    },
}

/// The compiled templates.
pub struct Renderer {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

impl Renderer {
    /// Compiles every template; fails on a syntax error in any of them.
    pub fn new() -> anyhow::Result<Self> {
        let mut html = Handlebars::new();
        let mut text = Handlebars::new();
        text.register_escape_fn(handlebars::no_escape);
        for (lang, layout_html, layout_text) in LAYOUTS {
            let layout = format!("layout_{}", lang.key());
            html.register_partial(&layout, layout_html)?;
            text.register_partial(&layout, layout_text)?;
            for (kind, zh, en) in KIND_SOURCES {
                let src = match lang {
                    Lang::Zh => zh,
                    Lang::En => en,
                };
                // The kind file only defines inline partials; appending the call makes them
                // visible to the layout.
                let name = format!("{}/{kind}", lang.key());
                let body = format!("{src}{{{{> {layout}}}}}");
                html.register_template_string(&name, &body)?;
                text.register_template_string(&name, &body)?;
                text.register_template_string(
                    &format!("{name}/subject"),
                    format!("{src}{{{{> subject}}}}"),
                )?;
            }
        }
        Ok(Self { html, text })
    }

    /// Renders `kind` in `lang` with `data` (the context described in [`super::compose`]).
    pub fn render(&self, kind: &str, lang: Lang, data: &Value) -> Result<Rendered, RenderError> {
        let name = format!("{}/{kind}", lang.key());
        if !self.html.has_template(&name) {
            return Err(RenderError::UnknownKind(kind.to_string()));
        }
        let run = |reg: &Handlebars<'static>, name: &str| {
            reg.render(name, data)
                .map_err(|source| RenderError::Template {
                    name: name.to_string(),
                    source,
                })
        };
        let subject = run(&self.text, &format!("{name}/subject"))?;
        let html = run(&self.html, &name)?;
        let text = run(&self.text, &name)?;
        Ok(Rendered {
            // A header is one line: collapse whatever the data contained.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            html: html.trim().to_string() + "\n",
            text: tidy_text(&text),
        })
    }
}

/// Trims the blank lines the inline-partial definitions leave at the top, and squeezes
/// runs of blank lines to one.
fn tidy_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "recipient": "张三 <script>",
            "reference": "YQYC-2026-000001",
            "company": "天津&智能",
            "app_type": "一企一策",
            "link": "http://portal.test/applications/x?a=1&b=2",
            "org": "市工业和信息化委",
            "step": "牵头审核",
            "due": "2026年12月3日",
            "case_due": null,
            "revision_due": "2026年12月30日",
            "items": [{ "n": 1, "label": "发展计划", "note": "补充<b>产能</b>数据" }],
            "comment": "请一次补齐",
            "reason": null,
            "text": null,
            "for_applicant": true,
            "overdue_days": null,
            "expires": null,
            "inviter": null,
            "inviter_org": null,
        })
    }

    #[test]
    fn every_kind_renders_in_both_languages() {
        let r = Renderer::new().expect("templates compile");
        for kind in kinds() {
            for lang in [Lang::Zh, Lang::En] {
                let out = r.render(kind, lang, &sample()).expect("renders");
                assert!(!out.subject.is_empty(), "{kind}");
                assert!(!out.subject.contains('\n'), "{kind}");
                assert!(
                    out.text
                        .contains("http://portal.test/applications/x?a=1&b=2"),
                    "{kind}: {}",
                    out.text
                );
                assert!(
                    out.html.contains(
                        "href=\"http://portal.test/applications/x?a&#x3D;1&amp;b&#x3D;2\""
                    ),
                    "{kind}: {}",
                    out.html
                );
                assert!(!out.html.contains("<script>"), "{kind}");
                assert!(!out.html.contains("<b>产能"), "{kind}");
            }
        }
    }

    #[test]
    fn the_returned_notice_lists_every_item_and_the_deadline() {
        let r = Renderer::new().expect("templates compile");
        let out = r.render("returned", Lang::Zh, &sample()).expect("renders");
        assert_eq!(out.subject, "【智港】申请需要补正 YQYC-2026-000001");
        assert!(
            out.text.contains("1. 发展计划:补充<b>产能</b>数据"),
            "{}",
            out.text
        );
        assert!(out.text.contains("2026年12月30日"), "{}", out.text);
        assert!(
            out.html.contains("补充&lt;b&gt;产能&lt;/b&gt;数据"),
            "{}",
            out.html
        );
        let en = r.render("returned", Lang::En, &sample()).expect("renders");
        assert_eq!(en.subject, "[Zhigang] Revision needed: YQYC-2026-000001");
    }

    #[test]
    fn an_unknown_kind_is_an_error() {
        let r = Renderer::new().expect("templates compile");
        assert!(matches!(
            r.render("nonsense", Lang::En, &sample()),
            Err(RenderError::UnknownKind(_))
        ));
    }
}
