//! Reports: aggregate queries behind the dashboards and CSV exports (see `web::reports`).
