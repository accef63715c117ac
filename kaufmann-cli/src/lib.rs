//! The `kaufmann` command's library: the local schema registry server (a development stand-in for
//! a Confluent-compatible registry, also used by the test suite), the schemas folder reader of
//! the `schemas` commands, the `schemas.lock` commands, and the new-service writer of
//! `kaufmann new`. A service does not depend on this crate.

pub mod folder;
pub mod lock;
pub mod new;
pub mod registry_server;
