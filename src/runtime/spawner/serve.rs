//! The spawner process's side: read a request, start a child among ten's children, answer.
//!
//! The child's parent is ten, not the spawner (`CLONE_PARENT`). Between its start and its
//! exec it only makes system calls on memory prepared before ([`Prepared::exec`]); the
//! spawner has one thread, so no lock can be held by another when the child starts. Whether
//! the exec worked comes back the way `std::process` does it: a pipe closed on exec
//! (success), or carrying the step and errno (failure).
//!
//! ten sends the write end of that pipe with its request (`SCM_RIGHTS`) and reads the outcome
//! itself, after the answer: the pid, as soon as the child exists. The child shares the
//! spawner's memory and runs on a stack of its own ([`clone_sharing`], as `posix_spawn`):
//! nothing is copied for it, and nothing torn down at its exec (a fork of the spawner cost
//! about 100 µs in the spawner, copying its page tables and then faulting in its written
//! pages again, and 80 µs in the child's exec, unmapping the copy). The spawner is suspended
//! until the child executed or exited, so the child answers with its own pid
//! ([`started_reply`]) before its setup: ten notes it and gives the go-ahead meanwhile. A
//! child started in a v2 cgroup (`clone3` with `CLONE_INTO_CGROUP`, see `clone`) is forked
//! instead, the spawner answers and takes the next request while it sets itself up. A
//! request without a pipe (a client that sends none) is forked and answered once the outcome
//! is known, from a pipe of the spawner's own.

use std::ffi::{CString, c_char};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;

use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow};
use std::sync::atomic::{AtomicBool, Ordering};

use super::clone::{ChildStack, Clone, clone_child, clone_sharing};
use super::{MAX_REQUEST, Reply, Request};
use crate::runtime::cgroup::join_cgroup;
use crate::runtime::spare::{resolve_program, to_cstrings};

/// Serves requests on stdin until ten closes it.
pub(crate) fn main() -> ! {
    // SAFETY: fd 0 is the socket ten gave; nothing else here uses stdin.
    let mut socket = File::from(unsafe { OwnedFd::from_raw_fd(0) });
    let mut request = vec![0; MAX_REQUEST];
    // Without one (no memory for it), children are forked.
    let stack = ChildStack::new().ok();
    loop {
        let (length, pipes) = match receive(&socket, &mut request) {
            Ok((0, _)) | Err(_) => std::process::exit(0),
            Ok(received) => received,
        };
        let reply = match serde_json::from_slice::<Request>(&request[..length]) {
            Ok(request) => match start(&request, pipes, stack.as_ref(), socket.as_raw_fd()) {
                Some(reply) => reply,
                // The child answered itself.
                None => continue,
            },
            Err(error) => Reply::Failed {
                pid: None,
                error: format!("the spawner could not read the request: {error}"),
            },
        };
        let reply = serde_json::to_vec(&reply).expect("a reply encodes");
        if socket.write_all(&reply).is_err() {
            std::process::exit(0);
        }
    }
}

/// The descriptors a request comes with: the write end of its status pipe, and the read end
/// of its go-ahead pipe (both close-on-exec: only a child that has not executed yet holds
/// them).
#[derive(Default)]
struct Pipes {
    status: Option<OwnedFd>,
    go: Option<OwnedFd>,
}

/// Reads one request into `buffer`, and the pipes sent with it. Its length, 0 at end-of-file.
fn receive(socket: &File, buffer: &mut [u8]) -> io::Result<(usize, Pipes)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
    let mut iov = [io::IoSliceMut::new(buffer)];
    let received = loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other?,
        }
    };
    let mut pipes = Pipes::default();
    for message in received.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = message {
            for fd in fds {
                // SAFETY: the kernel just gave us this descriptor; it is ours alone.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                if pipes.status.is_none() {
                    pipes.status = Some(fd);
                } else if pipes.go.is_none() {
                    pipes.go = Some(fd);
                }
            }
        }
    }
    Ok((received.bytes, pipes))
}

/// What the child needs, made before the fork (the child must not allocate).
struct Prepared {
    program: CString,
    /// Each list ends with a null pointer into the strings it is made from.
    argv: (Vec<CString>, Vec<*const c_char>),
    env: (Vec<CString>, Vec<*const c_char>),
    cwd: CString,
    procs: Vec<CString>,
    /// The v2 cgroup directory to start in (`clone3`), open.
    cgroup_dir: Option<OwnedFd>,
    /// Files stdout and stderr append to (none: /dev/null).
    stdout: Option<CString>,
    stderr: Option<CString>,
    user: Option<(u32, u32)>,
}

/// The step of the child's setup that failed, sent with its errno.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Step {
    Group = 1,
    Cgroup,
    Stdio,
    Directory,
    User,
    Exec,
    Output,
    /// ten did not give the go-ahead (it could not note the process, or is gone).
    Cancelled,
}

/// What a status pipe carried: nothing (the exec worked), or why it failed.
pub(super) fn outcome(message: &[u8]) -> io::Result<()> {
    match *message {
        [] => Ok(()),
        [step, a, b, c, d] => {
            let error = io::Error::from_raw_os_error(i32::from_ne_bytes([a, b, c, d]));
            Err(io::Error::new(
                error.kind(),
                format!("{}: {error}", Step::from_byte(step)),
            ))
        }
        _ => Err(io::Error::other("its setup ended unexpectedly")),
    }
}

impl Step {
    fn from_byte(byte: u8) -> &'static str {
        match byte {
            1 => "cannot make its process group",
            2 => "cannot join its cgroup",
            3 => "cannot open /dev/null",
            4 => "cannot change to its directory",
            5 => "cannot switch to its user",
            7 => "cannot open its output file",
            8 => "not started: ten withdrew the go-ahead",
            _ => "cannot execute it",
        }
    }
}

fn pointers(strings: Vec<CString>) -> (Vec<CString>, Vec<*const c_char>) {
    let mut pointers: Vec<*const c_char> = strings.iter().map(|string| string.as_ptr()).collect();
    pointers.push(std::ptr::null());
    (strings, pointers)
}

impl Prepared {
    fn new(request: &Request) -> io::Result<Prepared> {
        let first = request
            .argv
            .first()
            .ok_or_else(|| io::Error::other("an empty command"))?;
        let program = resolve_program(first, &request.env, &request.cwd)?;
        let cstring = |bytes: &[u8]| CString::new(bytes).map_err(io::Error::other);
        Ok(Prepared {
            program: cstring(program.as_os_str().as_bytes())?,
            argv: pointers(to_cstrings(request.argv.iter().map(String::as_bytes))?),
            env: pointers(to_cstrings(
                request
                    .env
                    .iter()
                    .map(|(name, value)| format!("{name}={value}").into_bytes()),
            )?),
            cwd: cstring(request.cwd.as_os_str().as_bytes())?,
            procs: request
                .cgroup_procs
                .iter()
                .map(|path| cstring(path.as_os_str().as_bytes()))
                .collect::<io::Result<_>>()?,
            cgroup_dir: match &request.clone_into {
                Some(dir) => Some(open_directory(dir)?),
                None => None,
            },
            stdout: request
                .stdout
                .as_ref()
                .map(|path| cstring(path.as_os_str().as_bytes()))
                .transpose()?,
            stderr: request
                .stderr
                .as_ref()
                .map(|path| cstring(path.as_os_str().as_bytes()))
                .transpose()?,
            user: request.user,
        })
    }

    /// In the child: sets it up and executes the program; returns only on failure, with the
    /// step that failed and its errno. `in_cgroup`: it was started in its cgroup already.
    /// With `go`, waits for one byte on it before the exec: end-of-file (ten dropped its end,
    /// or died) means the program is never executed. System calls only.
    fn exec(&self, in_cgroup: bool, go: Option<RawFd>) -> (Step, i32) {
        let errno = || io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY: system calls on strings and pointer lists that live until the exec.
        unsafe {
            if libc::setpgid(0, 0) != 0 {
                return (Step::Group, errno());
            }
            if !in_cgroup && let Err(error) = join_cgroup(&self.procs) {
                return (Step::Cgroup, error.raw_os_error().unwrap_or(0));
            }
            // Each output file is opened before anything is moved onto fds 0 to 2, so that
            // none of them is closed under another.
            let append = |path: &Option<CString>| match path {
                Some(path) => libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
                    0o640,
                ),
                None => libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC),
            };
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if null < 0 {
                return (Step::Stdio, errno());
            }
            let stdout = append(&self.stdout);
            if stdout < 0 {
                return (Step::Output, errno());
            }
            let stderr = append(&self.stderr);
            if stderr < 0 {
                return (Step::Output, errno());
            }
            // dup2 onto a standard descriptor clears its close-on-exec flag; the originals
            // close at the exec. Opened after fd 2 exists, none of them is 0 to 2.
            for (fd, target) in [(null, 0), (stdout, 1), (stderr, 2)] {
                if libc::dup2(fd, target) < 0 {
                    return (Step::Stdio, errno());
                }
            }
            if libc::chdir(self.cwd.as_ptr()) != 0 {
                return (Step::Directory, errno());
            }
            // Waited for before it becomes the tenant's user: a child that shares the
            // spawner's memory must not wait as a user who may stop or trace it.
            if let Some(go) = go {
                let mut byte = 0u8;
                let read = loop {
                    let read = libc::read(go, (&raw mut byte).cast(), 1);
                    if read >= 0 || errno() != libc::EINTR {
                        break read;
                    }
                };
                if read != 1 {
                    return (Step::Cancelled, 0);
                }
            }
            if let Some((uid, gid)) = self.user
                && let Err(error) = become_user(uid, gid)
            {
                return (Step::User, error.raw_os_error().unwrap_or(0));
            }
            // The spawner ignores SIGPIPE (as every Rust program), and what ten inherited;
            // and a child that shares its memory starts with every signal blocked.
            crate::runtime::signal::default_signals();
            libc::execve(
                self.program.as_ptr(),
                self.argv.1.as_ptr(),
                self.env.1.as_ptr(),
            );
        }
        (Step::Exec, errno())
    }
}

/// Drops supplementary groups and switches to `uid`/`gid` (after joining the cgroup, which
/// needs root), with the raw system calls: the C library's wrappers would try to change the
/// credentials of every thread of the process, which in a child forked from a multi-threaded
/// one are not there. System calls only: for use between fork and exec, here and in
/// `process`'s forks.
pub(crate) fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain system calls.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
            || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
            || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A directory opened to name it to the kernel (a v2 cgroup for `clone3`).
fn open_directory(path: &std::path::Path) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))?;
    Ok(OwnedFd::from(file))
}

/// Starts `request`'s command as a child of ten. With the caller's `status` pipe, answers as
/// soon as the child exists (the caller reads how its exec went); without, once that is known.
/// With a `go` pipe, the child executes only once the caller says so on it. `None`: the child
/// answered on `socket` itself (see [`run_child`]).
fn start(
    request: &Request,
    pipes: Pipes,
    stack: Option<&ChildStack>,
    socket: RawFd,
) -> Option<Reply> {
    let Pipes { status, go } = pipes;
    let failed = |pid, error: io::Error| Reply::Failed {
        pid,
        error: error.to_string(),
    };
    let prepared = match Prepared::new(request) {
        Ok(prepared) => prepared,
        Err(error) => return Some(failed(None, error)),
    };
    if let (Some(stack), None, Some(status)) = (stack, &prepared.cgroup_dir, &status) {
        let child = Child {
            prepared: &prepared,
            status: status.as_raw_fd(),
            go: go.as_ref().map(AsRawFd::as_raw_fd),
            socket,
            answered: AtomicBool::new(false),
        };
        // Every signal blocked in the child until its handlers are back to their defaults:
        // a handler of the spawner's must not run in it, on the spawner's memory (what
        // `posix_spawn` does). The child inherits the mask; this process restores its own.
        let restore = SigSet::all().thread_swap_mask(SigmaskHow::SIG_SETMASK).ok();
        // SAFETY: one thread; `run_child` only makes system calls on `child` and what it
        // refers to, which live until it executed or exited (this process waits for that).
        let started =
            unsafe { clone_sharing(stack, run_child, (&raw const child).cast_mut().cast()) };
        if let Some(mask) = restore {
            let _ = mask.thread_set_mask();
        }
        return match started {
            // It answered with its pid: how its setup and exec went is on the status pipe.
            Ok(_) if child.answered.load(Ordering::Acquire) => None,
            // It ended (killed, or its answer could not be sent) before it answered.
            Ok(pid) => Some(failed(
                Some(pid),
                io::Error::other("it ended before it could answer"),
            )),
            Err(error) => Some(failed(None, error)),
        };
    }
    let (status_read, status_write) = match status {
        Some(theirs) => (None, theirs),
        None => match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok((read, write)) => (Some(read), write),
            Err(error) => return Some(failed(None, error.into())),
        },
    };
    let cgroup = prepared.cgroup_dir.as_ref().map(AsRawFd::as_raw_fd);
    // SAFETY: this process has one thread; the child only makes system calls on memory made
    // before the fork, then executes or exits.
    let (pid, in_cgroup) = match unsafe { clone_child(cgroup) } {
        Ok(Clone::Parent { pid, in_cgroup }) => (pid, in_cgroup),
        Ok(Clone::Child { in_cgroup }) => (0, in_cgroup),
        Err(error) => return Some(failed(None, error)),
    };
    if pid == 0 {
        let (step, errno) = prepared.exec(in_cgroup, go.as_ref().map(AsRawFd::as_raw_fd));
        fail_child(status_write.as_raw_fd(), step, errno);
    }
    // Only the child holds these now: the caller's ends tell it the outcome and the go-ahead.
    drop((status_write, go));
    let Some(status_read) = status_read else {
        return Some(Reply::Started { pid });
    };
    let mut message = Vec::new();
    let _ = File::from(status_read).read_to_end(&mut message);
    Some(match outcome(&message) {
        Ok(()) => Reply::Started { pid },
        Err(error) => failed(Some(pid), error),
    })
}

/// What a child that shares the spawner's memory needs: all made before it starts.
struct Child<'a> {
    prepared: &'a Prepared,
    /// The caller's status pipe, and its go-ahead pipe.
    status: RawFd,
    go: Option<RawFd>,
    /// The spawner's socket: the child answers the request with its own pid.
    socket: RawFd,
    /// Set by the child once its answer is sent; read by the spawner after the child
    /// executed or ended: unset, the spawner answers.
    answered: AtomicBool,
}

/// A child that shares the spawner's memory (the spawner waits until it executed or exited):
/// answers the request with its pid, so that ten can note it while the spawner waits, then
/// sets itself up and executes as a forked child does. System calls only.
extern "C" fn run_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `start` passes a `Child` that outlives this child's use of the spawner's memory.
    let child = unsafe { &*arg.cast::<Child<'_>>() };
    let mut reply = [0u8; 40];
    // SAFETY: a plain system call; the raw one, since a C library that caches its pid would
    // cache the child's in the spawner's memory.
    let pid = unsafe { libc::syscall(libc::SYS_getpid) } as u32;
    let length = started_reply(pid, &mut reply);
    // SAFETY: a write of a buffer on this stack.
    let written = unsafe { libc::write(child.socket, reply.as_ptr().cast(), length) };
    if usize::try_from(written) != Ok(length) {
        // Not answered (ten is gone, or the socket refused it): it never executes, and the
        // spawner answers for it once it ended.
        // SAFETY: the end of the child without running any exit handler of the spawner.
        unsafe { libc::_exit(127) };
    }
    child.answered.store(true, Ordering::Release);
    let (step, errno) = child.prepared.exec(false, child.go);
    fail_child(child.status, step, errno)
}

/// The reply `{"Started":{"pid":PID}}` written into `buffer` without allocating (in a child
/// that shares the spawner's memory); its length.
fn started_reply(pid: u32, buffer: &mut [u8; 40]) -> usize {
    const HEAD: &[u8] = b"{\"Started\":{\"pid\":";
    buffer[..HEAD.len()].copy_from_slice(HEAD);
    let mut digits = [0u8; 10];
    let mut count = 0;
    let mut rest = pid;
    loop {
        digits[count] = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut length = HEAD.len();
    for digit in digits[..count].iter().rev() {
        buffer[length] = *digit;
        length += 1;
    }
    buffer[length..length + 2].copy_from_slice(b"}}");
    length + 2
}

/// Ends a child whose setup or exec failed: the step and errno on its status pipe, then the
/// end of the child without running any exit handler of the spawner.
fn fail_child(status: RawFd, step: Step, errno: i32) -> ! {
    let mut message = [0u8; 5];
    message[0] = step as u8;
    message[1..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: a write to our pipe, then `_exit`.
    unsafe {
        libc::write(status, message.as_ptr().cast(), message.len());
        libc::_exit(127);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_childs_own_reply_is_the_spawners_reply() {
        for pid in [0, 7, 42, 4_194_304, u32::MAX] {
            let mut buffer = [0u8; 40];
            let length = started_reply(pid, &mut buffer);
            assert_eq!(
                buffer[..length],
                serde_json::to_vec(&Reply::Started { pid }).unwrap()[..],
                "{pid}"
            );
        }
    }
}
