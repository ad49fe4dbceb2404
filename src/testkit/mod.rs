//! Test and demo harness (filled in on the harness branch).
