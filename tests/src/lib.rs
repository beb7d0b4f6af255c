//! Harness for fresco's end-to-end tests.
