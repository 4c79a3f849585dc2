//! Integration tests of the reports area.
