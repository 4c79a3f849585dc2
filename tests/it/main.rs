//! The integration test binary: one binary, a module per area.

mod cli;
mod helpers;
mod store;
