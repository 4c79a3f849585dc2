//! 智港 (zhigang): an enterprise support application portal with a workflow engine.
//!
//! Rooms of the house: [`workflow`] (definitions and the pure engine), [`store`]
//! (persistence: applies the engine's transitions in one transaction), [`web`]
//! (HTTP), [`calendar`] (working days), [`audit`] (the hash-chained history).

pub mod accounts;
pub mod admin;
pub mod api;
pub mod attachments;
pub mod audit;
pub mod calendar;
pub mod cli;
pub mod db;
pub mod forms;
pub mod ids;
pub mod mail;
pub mod org_admin;
pub mod organizations;
pub mod passwords;
pub mod reports;
pub mod seed;
pub mod settings;
pub mod startup;
pub mod store;
pub mod uscc;
pub mod web;
pub mod workflow;
