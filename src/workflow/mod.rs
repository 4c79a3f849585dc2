//! The workflow: definitions as data, the pure engine, and diagrams.

pub mod definition;
pub mod engine;
pub mod graph;
pub mod svg;
