//! Translations (Fluent message catalogs under `templates/locales/`) and the choice of
//! language: the user's remembered choice, else the browser's Accept-Language, else zh-CN.

use std::borrow::Cow;
use std::collections::HashMap;

use fluent_templates::{Loader, fluent_bundle::FluentValue, static_loader};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderErrorReason,
};
use unic_langid::LanguageIdentifier;

static_loader! {
    static LOCALES = {
        locales: "./templates/locales",
        fallback_language: "zh-CN",
        // Isolation marks around placeables would show up as stray characters in
        // plain-text email and form values.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// The languages of the portal, default first.
pub const SUPPORTED: [&str; 2] = ["zh-CN", "en"];

/// The supported language closest to `tag` (`en-GB` → `en`, `zh-Hans-CN` → `zh-CN`).
pub fn supported(tag: &str) -> Option<&'static str> {
    let lower = tag.trim().to_ascii_lowercase();
    if lower.starts_with("zh") {
        Some("zh-CN")
    } else if lower.starts_with("en") {
        Some("en")
    } else {
        None
    }
}

/// Picks a language from an Accept-Language header, honouring q-values.
pub fn negotiate(accept_language: Option<&str>) -> &'static str {
    let Some(header) = accept_language else {
        return SUPPORTED[0];
    };
    let mut best: Option<(f32, &'static str)> = None;
    for part in header.split(',') {
        let mut pieces = part.split(';');
        let tag = pieces.next().unwrap_or("").trim();
        let q = pieces
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if let Some(lang) = supported(tag)
            && q > 0.0
            && best.is_none_or(|(bq, _)| q > bq)
        {
            best = Some((q, lang));
        }
    }
    best.map_or(SUPPORTED[0], |(_, l)| l)
}

fn langid(lang: &str) -> LanguageIdentifier {
    lang.parse()
        .unwrap_or_else(|_| unic_langid::langid!("zh-CN"))
}

/// Looks up a message.
pub fn t(lang: &str, key: &str) -> String {
    LOCALES.lookup(&langid(lang), key)
}

/// Looks up a message with arguments.
pub fn t_args(lang: &str, key: &str, args: &[(&str, String)]) -> String {
    let map: HashMap<Cow<'static, str>, FluentValue<'_>> = args
        .iter()
        .map(|(k, v)| (Cow::Owned((*k).to_string()), FluentValue::from(v.clone())))
        .collect();
    LOCALES.lookup_with_args(&langid(lang), key, &map)
}

/// Every message key of a language's catalog (for the completeness test).
pub fn keys(lang: &str) -> Vec<String> {
    // Each area of the portal keeps its messages in its own file; all are loaded.
    let sources: [&str; 7] = match lang {
        "en" => [
            include_str!("../../templates/locales/en/main.ftl"),
            include_str!("../../templates/locales/en/review.ftl"),
            include_str!("../../templates/locales/en/admin.ftl"),
            include_str!("../../templates/locales/en/reports.ftl"),
            include_str!("../../templates/locales/en/notify.ftl"),
            include_str!("../../templates/locales/en/orgadmin.ftl"),
            include_str!("../../templates/locales/en/api.ftl"),
        ],
        _ => [
            include_str!("../../templates/locales/zh-CN/main.ftl"),
            include_str!("../../templates/locales/zh-CN/review.ftl"),
            include_str!("../../templates/locales/zh-CN/admin.ftl"),
            include_str!("../../templates/locales/zh-CN/reports.ftl"),
            include_str!("../../templates/locales/zh-CN/notify.ftl"),
            include_str!("../../templates/locales/zh-CN/orgadmin.ftl"),
            include_str!("../../templates/locales/zh-CN/api.ftl"),
        ],
    };
    sources
        .iter()
        .flat_map(|s| s.lines())
        .filter_map(|l| {
            let (key, _) = l.split_once(" =")?;
            let ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            ok.then(|| key.to_string())
        })
        .collect()
}

/// The `{{t "key" name=value}}` helper: looks the key up in the context's `lang` and
/// writes it HTML-escaped (Fluent's own handlebars helper writes unescaped text, and
/// arguments may carry user input).
pub struct TranslateHelper;

impl HelperDef for TranslateHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        reg: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let key = h
            .param(0)
            .and_then(|p| p.value().as_str())
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("t", 0))?;
        let lang = ctx
            .data()
            .get("lang")
            .and_then(|l| l.as_str())
            .unwrap_or(SUPPORTED[0]);
        let args: Vec<(&str, String)> = h
            .hash()
            .iter()
            .map(|(k, v)| {
                let value = match v.value() {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (*k, value)
            })
            .collect();
        let text = if args.is_empty() {
            t(lang, key)
        } else {
            t_args(lang, key, &args)
        };
        out.write(&reg.get_escape_fn()(&text))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        assert_eq!(negotiate(None), "zh-CN");
        assert_eq!(negotiate(Some("en-US,en;q=0.9")), "en");
        assert_eq!(negotiate(Some("fr-FR, en;q=0.5, zh-CN;q=0.8")), "zh-CN");
        assert_eq!(negotiate(Some("fr, de")), "zh-CN");
        assert_eq!(negotiate(Some("zh-TW;q=0.1, en;q=0")), "zh-CN");
    }

    #[test]
    fn every_message_exists_in_both_languages() {
        let zh: std::collections::BTreeSet<_> = keys("zh-CN").into_iter().collect();
        let en: std::collections::BTreeSet<_> = keys("en").into_iter().collect();
        assert!(zh.len() > 10, "the catalog parses");
        let only_zh: Vec<_> = zh.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&zh).collect();
        assert!(
            only_zh.is_empty() && only_en.is_empty(),
            "missing in en: {only_zh:?}; missing in zh-CN: {only_en:?}"
        );
    }
}
