//! supervisord's INI (`supervisord.conf`), and Supervice's, which follows it: `[program:x]`
//! sections become services (workers: supervisord proxies nothing), `numprocs` a process
//! set, `[group:g]` a group; `[supervisord]` (`[supervice]`) and the control sections are
//! supervisord's own and reported.

mod file;
mod program;
mod sections;
mod values;

pub(crate) use file::read;
