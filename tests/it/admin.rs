//! Integration tests of the admin area.
