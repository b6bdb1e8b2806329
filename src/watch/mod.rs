//! Watching the desired-state files: notify events in, "the files changed, read them" out,
//! as soon as nothing is known to be incomplete. No parsing here; the reconciler reloads.
//!
//! Watches tenement.toml's directory (not the file: editors save by writing a temporary file
//! and renaming it over the old one, which replaces the inode) and the instances directory
//! recursively, including service directories created, deleted or renamed later, and the
//! instances directory itself appearing after start.
//!
//! A change is told at once when the event that brings it says the file is whole (a close
//! after writing, a rename into place) and no watched file is being written; a file held
//! open by its writer is waited for until it is closed; events that do not say wait for
//! [`QUIET`] (at most [`MAX_DELAY`] under a stream of them); a file that went away gets
//! [`QUIET`] to come back (editors save by moving the old file aside). The decision is
//! [`settle`]'s, pure; [`relevance`] says which events matter and what they mean; [`Unread`]
//! makes the changes seen during a reload one more reload.
//!
//! Must not parse files or import the reconciler.

mod relevance;
pub mod settle;
mod unread;
mod watcher;

pub use settle::{MAX_DELAY, QUIET, WRITER_PATIENCE};
pub use unread::Unread;
pub use watcher::{FileWatcher, watch_files};
