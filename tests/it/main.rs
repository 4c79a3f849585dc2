//! The integration test binary: one binary, a module per area.

mod access;
mod admin;
mod api;
mod browser;
mod cli;
mod config_cache;
mod engine_fixture;
mod engine_props;
mod engine_table;
mod faults;
mod filing;
mod helpers;
mod inbox;
mod instances;
mod mail;
mod notify;
mod org_admin;
mod reports;
mod review;
mod s3;
mod security;
mod store;
mod web;
