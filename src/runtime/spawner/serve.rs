//! The spawner process's side: read a request, fork a child into ten's children, answer.
//!
//! The child is made with the raw `clone` system call (`CLONE_PARENT`: its parent is ten, not
//! the spawner; see `clone` for `clone3` into a v2 cgroup) and, between the fork and the exec,
//! only makes system calls on memory prepared before the fork ([`Prepared::exec`]); the
//! spawner has one thread, so no lock can be held by another at the fork. Whether the exec
//! worked comes back the way `std::process` does it: a pipe closed on exec (success), or
//! carrying the step and errno (failure).
//!
//! ten sends the write end of that pipe with its request (`SCM_RIGHTS`) and reads the outcome
//! itself: the spawner answers with the pid as soon as the child exists and takes the next
//! request while the child sets itself up and executes, so a burst of starts is not one exec
//! after another. A request without a pipe (a client that sends none) is answered once the
//! outcome is known, from a pipe of the spawner's own.

use std::ffi::{CString, c_char};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;

use nix::libc;

use super::clone::{Clone, clone_child};
use super::{MAX_REQUEST, Reply, Request};
use crate::runtime::cgroup::join_cgroup;
use crate::runtime::spare::{resolve_program, to_cstrings};

/// Serves requests on stdin until ten closes it.
pub(crate) fn main() -> ! {
    // SAFETY: fd 0 is the socket ten gave; nothing else here uses stdin.
    let mut socket = File::from(unsafe { OwnedFd::from_raw_fd(0) });
    let mut request = vec![0; MAX_REQUEST];
    loop {
        let (length, pipes) = match receive(&socket, &mut request) {
            Ok((0, _)) | Err(_) => std::process::exit(0),
            Ok(received) => received,
        };
        let reply = match serde_json::from_slice::<Request>(&request[..length]) {
            Ok(request) => start(&request, pipes),
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
            if let Some((uid, gid)) = self.user
                && let Err(error) = become_user(uid, gid)
            {
                return (Step::User, error.raw_os_error().unwrap_or(0));
            }
            // The spawner ignores SIGPIPE (as every Rust program), and what ten inherited.
            crate::runtime::signal::default_signals();
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
/// With a `go` pipe, the child executes only once the caller says so on it.
fn start(request: &Request, pipes: Pipes) -> Reply {
    let Pipes { status, go } = pipes;
    let failed = |pid, error: io::Error| Reply::Failed {
        pid,
        error: error.to_string(),
    };
    let prepared = match Prepared::new(request) {
        Ok(prepared) => prepared,
        Err(error) => return failed(None, error),
    };
    let (status_read, status_write) = match status {
        Some(theirs) => (None, theirs),
        None => match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok((read, write)) => (Some(read), write),
            Err(error) => return failed(None, error.into()),
        },
    };
    let cgroup = prepared.cgroup_dir.as_ref().map(AsRawFd::as_raw_fd);
    // SAFETY: this process has one thread; the child only makes system calls on memory made
    // before the fork, then executes or exits.
    let (pid, in_cgroup) = match unsafe { clone_child(cgroup) } {
        Ok(Clone::Parent { pid, in_cgroup }) => (pid, in_cgroup),
        Ok(Clone::Child { in_cgroup }) => (0, in_cgroup),
        Err(error) => return failed(None, error),
    };
    if pid == 0 {
        let (step, errno) = prepared.exec(in_cgroup, go.as_ref().map(AsRawFd::as_raw_fd));
        let mut message = [0u8; 5];
        message[0] = step as u8;
        message[1..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: a write to our pipe, then the end of the child without running any exit
        // handler of the spawner.
        unsafe {
            libc::write(
                status_write.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
            );
            libc::_exit(127);
        }
    }
    // Only the child holds these now: the caller's ends tell it the outcome and the go-ahead.
    drop((status_write, go));
    let Some(status_read) = status_read else {
        return Reply::Started { pid };
    };
    let mut message = Vec::new();
    let _ = File::from(status_read).read_to_end(&mut message);
    match outcome(&message) {
        Ok(()) => Reply::Started { pid },
        Err(error) => failed(Some(pid), error),
    }
}
