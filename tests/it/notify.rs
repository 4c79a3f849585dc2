//! Integration tests of the notify area.
