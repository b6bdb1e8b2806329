//! The only module that touches processes and the OS process table.
//!
//! `proc`: facts read from /proc (liveness with start time).

pub mod proc;
