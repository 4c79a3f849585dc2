//! The integration test binary: one binary, a module per area.

mod cli;
mod filing;
mod helpers;
mod mail;
mod store;
mod web;
