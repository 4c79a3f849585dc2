//! The documented operations, read once from the OpenAPI document: which methods each path
//! template below `/api/v1` has. The middlewares use it to treat only documented POSTs as
//! idempotent and to answer a wrong method with the path's own `Allow` list.

use std::sync::LazyLock;

use poem::http::Method;

/// Path templates (segments; `None` for a `{parameter}`) with their methods.
pub struct Operations(Vec<(Vec<Option<String>>, Vec<Method>)>);

static OPERATIONS: LazyLock<Operations> =
    LazyLock::new(|| Operations::from_spec(&super::spec_json()));

impl Operations {
    /// The operations of the API's own document.
    pub fn get() -> &'static Self {
        &OPERATIONS
    }

    /// Reads the `paths` of an OpenAPI document.
    pub fn from_spec(spec: &str) -> Self {
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut out = Vec::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (template, ops) in paths {
                let segments = template
                    .trim_start_matches('/')
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                    .collect();
                let methods = ops
                    .as_object()
                    .map(|o| {
                        o.keys()
                            .filter_map(|m| {
                                Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok()
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((segments, methods));
            }
        }
        Self(out)
    }

    /// The methods of the operation at `path` (as requested, with or without the
    /// `/api/v1` prefix); `None` when no documented path matches.
    pub fn methods(&self, path: &str) -> Option<&[Method]> {
        let below = path.strip_prefix("/api").unwrap_or(path);
        let below = below.strip_prefix("/v1")?;
        let segments: Vec<&str> = below.trim_start_matches('/').split('/').collect();
        self.0
            .iter()
            .find(|(template, _)| {
                template.len() == segments.len()
                    && template
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t.as_deref().is_none_or(|t| t == *s) && !s.is_empty())
            })
            .map(|(_, m)| m.as_slice())
    }

    /// The `Allow` header value for `path`, when it is documented.
    pub fn allow(&self, path: &str) -> Option<String> {
        let mut methods: Vec<&str> = self.methods(path)?.iter().map(Method::as_str).collect();
        methods.sort_unstable();
        Some(methods.join(", "))
    }

    /// Whether `method path` is a documented operation.
    pub fn is_documented(&self, method: &Method, path: &str) -> bool {
        self.methods(path).is_some_and(|m| m.contains(method))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_templates_only() {
        let ops = Operations::get();
        assert!(ops.is_documented(&Method::POST, "/api/v1/applications"));
        assert!(ops.is_documented(
            &Method::POST,
            "/v1/applications/0190a3c5-0000-7000-8000-000000000000/submit"
        ));
        assert!(!ops.is_documented(
            &Method::POST,
            "/api/v1/applications/0190a3c5-0000-7000-8000-000000000000"
        ));
        assert!(!ops.is_documented(&Method::POST, "/api/v1/applications//submit"));
        assert_eq!(ops.allow("/api/v1/companies").as_deref(), Some("POST"));
        assert_eq!(
            ops.allow("/api/v1/applications/x").as_deref(),
            Some("GET, PATCH")
        );
        assert_eq!(ops.allow("/api/v1/nowhere"), None);
        // The document itself: bodies only where there are bodies, strict request objects.
        let doc: serde_json::Value = serde_json::from_str(&crate::api::spec_json()).expect("json");
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for (method, op) in ops.as_object().expect("ops") {
                if let Some(b) = op.get("requestBody") {
                    assert!(b["content"].is_object(), "{method} {path}: {b}");
                }
            }
        }
        assert_eq!(
            doc["components"]["schemas"]["Decision"]["additionalProperties"],
            serde_json::Value::Bool(false)
        );
        assert!(doc["components"]["schemas"]["Application"]["additionalProperties"].is_null());
        assert_eq!(ops.allow("/elsewhere/v1/companies"), None);
    }
}
