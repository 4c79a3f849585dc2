//! System administration: organizations, users and roles, workflow definitions, the
//! holiday calendar, the mail outbox, the audit log, stuck applications.

use poem::Route;

use crate::settings::Settings;

/// Adds this area's pages to the portal's routes.
pub fn mount(route: Route, _settings: &Settings) -> Route {
    route
}
