//! Organization administration: an org admin's reviewers (invite, deactivate, reactivate),
//! their workload, and reassigning the tasks of an absent colleague.

use poem::Route;

use crate::settings::Settings;

/// Adds this area's pages to the portal's routes.
pub fn mount(route: Route, _settings: &Settings) -> Route {
    route
}
