//! Capture of tenant output.
//!
//! A tenant's stdout and stderr are files it appends to directly
//! (`{data_dir}/.ten/capture/<service>/<id>/stdout.raw`, `stderr.raw`): no pipe, so a tenant
//! never gets EPIPE from us and keeps running if ten dies. ten tails them (inotify events on
//! the capture directory, no polling), cuts the bytes into lines (invalid UTF-8 shown lossily,
//! lines longer than [`MAX_LINE`] cut), timestamps them, keeps the last lines of each instance
//! in memory for `ten logs`, and appends them to a rotated
//! `{data_dir}/.ten/logs/<service>/<id>/output.log`. Bytes already read are released from the
//! raw files by punching holes, so they take no disk space.
//!
//! A tenant flooding its output costs ten bounded memory and disk: a poll's batch is bounded
//! by bytes and by lines, the ring by lines and bytes, the broadcast by lines; `output.log`
//! is rotated before an append that would pass its size. A tenant cannot be slowed down (it
//! writes to its file), so what is unread past `log_retention`'s `max_bytes` is skipped
//! unread (its disk released), and a line `[ten: N bytes of stdout dropped: ...]` says so:
//! what is read after it would have pushed it out of the retention anyway.
//!
//! Each line reaches `output.log` exactly once, even across a kill -9 of ten. After every
//! append to `output.log`, `offsets` next to it records (one positioned write of a fixed-width
//! `"STDOUT STDERR LOG_LENGTH"`) where the first line not yet in `output.log` begins in each
//! raw file (an unfinished line is read again whole, so its bytes are not counted as read) and
//! the length of `output.log` that holds exactly the lines before. A ten killed after an append
//! and before its record left lines past the recorded length: the next ten cuts `output.log`
//! back to it when it attaches (before loading its tail into memory) and reads those bytes
//! again, and it captures what was written while no ten ran. A rotation comes after the record
//! of the append that filled the file and is followed by a record of its own, so a ten killed
//! in between finds no `output.log` (the recorded length is the rotated file's) and cuts
//! nothing.
//! An `offsets` of an earlier version (two numbers, no length) is resumed from with nothing
//! cut. Nothing is fsynced: a machine crash may lose the last lines. (Only the capture
//! directory is watched, so ten's own writes cause no events.)
//!
//! A service may name log files (`stdout_log`, `stderr_log`): the hub writes each captured
//! line to them too, as the tenant wrote it (no timestamp), rotated by size (`log_file`). ten
//! is their only writer, so a rotation is a rename between two whole lines and nothing is
//! lost or cut; the tenant never holds them, so sandboxed tenants and tenants running as
//! another user need no access to them. They are written before the `offsets` record: a ten
//! killed between the two writes the lines of that one read again (repeated, never lost).
//!
//! What is kept on disk is searchable (`ten logs --search/--since/--until`): `output.log` is
//! rotated to `output.log.<UNIX_MS of its first line>` (no older file is renamed), so the
//! files of an instance are ordered by time and a search skips those outside its range by
//! their first line and last write; `log_retention` (`[settings]`) bounds them by size and
//! age, after each rotation and in a periodic sweep.
//!
//! `hub`: the capture of every instance (attach, poll, the ring, queries, the broadcast,
//! the sweep, searches); `source`: tailing one raw file; `output`: `output.log` and its
//! rotation; `store`: the kept files, their time index and retention; `search`: reading them
//! for a query; `log_file`: a log file a service names, and its rotation; `record`: the
//! `offsets` record; `line`: captured lines, their text form, queries and time bounds.
//! Imports nothing of `runtime` outside `logs`.

mod hub;
mod line;
mod log_file;
mod output;
mod record;
mod search;
mod source;
mod store;

pub use hub::{CapturePaths, LogHub, RING_LINES};
pub use line::{LogLine, LogQuery, Stream, parse_time_bound, unix_millis};
pub use record::{Recorded, read_record};
pub use search::{DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT};
pub use source::{MAX_LINE, open_for_tenant};
pub use store::{OUTPUT_LOG, ROTATE_BYTES, keep_rotated, kept_files, rotate_bytes, sweep_interval};
