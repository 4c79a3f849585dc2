//! Integration tests of the review area.
