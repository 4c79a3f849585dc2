//! Notification preferences: which events mail the user, and the daily digest.

use poem::Route;

use crate::settings::Settings;

/// Adds this area's pages to the portal's routes.
pub fn mount(route: Route, _settings: &Settings) -> Route {
    route
}
