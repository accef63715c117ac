//! The `kaufmann` command's library: the local schema registry server (a development stand-in for
//! a Confluent-compatible registry, also used by the test suite) and the schemas folder reader of
//! the `schemas` commands. A service does not depend on this crate.

pub mod folder;
pub mod registry_server;
