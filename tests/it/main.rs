//! The integration test binary: one binary, a module per area.

mod browser;
mod cli;
mod engine_fixture;
mod engine_props;
mod engine_table;
mod filing;
mod helpers;
mod mail;
mod store;
mod web;
