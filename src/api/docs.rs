//! Swagger UI at `/api/docs`, served under the portal's Content Security Policy (no
//! inline script or style): the page loads the UI's stylesheet and script and a small
//! start script from `/api/docs/…`, which reads the document from `/api/openapi.json`.

use poem::{Endpoint, Response, Route, endpoint::make_sync};
use poem_openapi::{OpenApi, OpenApiService, Webhook};

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>智港 zhigang API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/start.js"></script>
</body>
</html>
"#;

const START: &str =
    "SwaggerUIBundle({ dom_id: '#ui', url: '/api/openapi.json', deepLinking: true });\n";

/// The text between `open` and the next `close` after it.
fn between<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    html.find(open)
        .map(|i| &html[i + open.len()..])
        .and_then(|rest| rest.find(close).map(|j| &rest[..j]))
        .unwrap_or("")
}

fn asset(body: String, mime: &'static str) -> impl Endpoint<Output = Response> {
    make_sync(move |_| {
        Response::builder()
            .content_type(mime)
            .header("cache-control", "public, max-age=3600")
            .body(body.clone())
    })
}

/// The documentation's routes.
pub fn endpoint<T: OpenApi, W: Webhook>(service: &OpenApiService<T, W>) -> Route {
    // poem-openapi's own page inlines the UI; take its stylesheet and script apart.
    let html = service.swagger_ui_html();
    let css = between(&html, "<style charset=\"UTF-8\">", "</style>").to_string();
    let js = between(&html, "<script charset=\"UTF-8\">", "</script>").to_string();
    Route::new()
        .at(
            "/",
            make_sync(|_| {
                Response::builder()
                    .content_type("text/html; charset=utf-8")
                    .body(PAGE)
            }),
        )
        .at("/swagger-ui.css", asset(css, "text/css; charset=utf-8"))
        .at(
            "/swagger-ui-bundle.js",
            asset(js, "text/javascript; charset=utf-8"),
        )
        .at(
            "/start.js",
            asset(START.to_string(), "text/javascript; charset=utf-8"),
        )
}
