//! The reviewer workbench: inbox, task page, actions.

use poem::Route;

use crate::settings::Settings;

/// Adds this area's pages to the portal's routes.
pub fn mount(route: Route, _settings: &Settings) -> Route {
    route
}
