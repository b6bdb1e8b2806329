//! Facts about processes read from /proc: whether a pid still names the process we started
//! (pid and start time both match), so a recycled pid is never taken for a tenant; the boot
//! they belong to; what one process uses; which processes hold a file open.

use std::fs;

/// Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), or `None`
/// when there is no such process or it is a zombie.
pub fn process_start_time(pid: u32) -> Option<u64> {
    // Read at once into a buffer that holds any stat line (52 numbers and a name of at most
    // 64 bytes): `read_to_string` asks for its size first and then reads in growing pieces,
    // nine system calls instead of three, once per start.
    let mut buffer = [0u8; 2048];
    let stat = read_small(&format!("/proc/{pid}/stat"), &mut buffer)?;
    // The command name (field 2) is in parentheses and may contain spaces, ')' or bytes that
    // are not UTF-8 (a process names itself): what follows it is ASCII.
    let name_end = stat.iter().rposition(|byte| *byte == b')')?;
    let after_name = std::str::from_utf8(&stat[name_end + 1..]).ok()?;
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // After the name: state is field 3, so field 22 is the 19th from here (index 18).
    fields.nth(18)?.parse().ok()
}

/// The whole of a small file (a /proc file read at once), if it fits in `buffer`.
fn read_small<'a>(path: &str, buffer: &'a mut [u8]) -> Option<&'a [u8]> {
    use std::io::Read;
    let mut file = fs::File::open(path).ok()?;
    let mut length = 0;
    while length < buffer.len() {
        match file.read(&mut buffer[length..]) {
            Ok(0) => return Some(&buffer[..length]),
            Ok(read) => length += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    None
}

/// This boot of the machine (`/proc/sys/kernel/random/boot_id`): start times count from
/// boot, so a pid and start time identify a process only within one boot.
pub fn boot_id() -> &'static str {
    static BOOT_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOT_ID.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|text| text.trim().to_string())
            .unwrap_or_default()
    })
}

/// What one process uses (for tenants without a cgroup): its resident memory and CPU time.
pub fn usage(pid: u32) -> crate::observed::Usage {
    // SAFETY: sysconf only reads a constant of the system.
    let (page, ticks_per_second) = unsafe {
        (
            nix::libc::sysconf(nix::libc::_SC_PAGESIZE).max(1) as u64,
            nix::libc::sysconf(nix::libc::_SC_CLK_TCK).max(1) as u64,
        )
    };
    let memory_bytes = fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|text| text.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page);
    let cpu_usec = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
            // utime and stime are fields 14 and 15; after the name, field 3 is the first.
            let user: u64 = fields.nth(11)?.parse().ok()?;
            let system: u64 = fields.next()?.parse().ok()?;
            Some((user + system) * 1_000_000 / ticks_per_second)
        });
    crate::observed::Usage {
        memory_bytes,
        cpu_usec,
        ..Default::default()
    }
}

/// Whether `pid` is alive and, when `start_time` is known, is the same process.
pub fn process_alive(pid: u32, start_time: Option<u64>) -> bool {
    match (process_start_time(pid), start_time) {
        (Some(actual), Some(expected)) => actual == expected,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Whether `pid` is still one of ten's own helpers that had not become a tenant: a spare
/// (`ten __spare`) or a child of the spawner (`ten __spawner`) before its exec. A process
/// table entry for such a process is one whose start never finished.
pub fn is_unfinished_start(pid: u32) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|byte| *byte == 0);
    let _program = args.next();
    matches!(args.next(), Some(b"__spare" | b"__spawner"))
}

/// How many file descriptors this process has open (the entries of /proc/self/fd, less the
/// one that lists them).
pub fn open_fds() -> Option<u64> {
    let entries = fs::read_dir("/proc/self/fd").ok()?;
    Some((entries.count() as u64).saturating_sub(1))
}

/// The soft limit on this process's open file descriptors (`RLIMIT_NOFILE`).
pub fn max_fds() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// The other processes that have `file` open (by device and inode, through
/// `/proc/*/fd`), each with its command line. Reads every process's descriptors: for error
/// paths only (a lock that outlived the server that took it).
pub(crate) fn processes_holding(file: &fs::File) -> Vec<(u32, String)> {
    use std::os::unix::fs::MetadataExt;
    let (Ok(wanted), Ok(processes)) = (file.metadata(), fs::read_dir("/proc")) else {
        return Vec::new();
    };
    let own = std::process::id();
    let mut holders = Vec::new();
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(descriptors) = fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let holds = pid != own
            && descriptors.flatten().any(|fd| {
                fs::metadata(fd.path())
                    .is_ok_and(|open| open.dev() == wanted.dev() && open.ino() == wanted.ino())
            });
        if holds {
            let command = fs::read(process.path().join("cmdline"))
                .map(|bytes| {
                    String::from_utf8_lossy(&bytes)
                        .split('\0')
                        .filter(|word| !word.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            holders.push((pid, command));
        }
    }
    holders
}

/// Whether process `pid` has the file of `metadata` open (by device and inode).
pub(crate) fn has_open(pid: u32, metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    entries.flatten().any(|entry| {
        fs::metadata(entry.path())
            .is_ok_and(|open| open.dev() == metadata.dev() && open.ino() == metadata.ino())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_with_its_start_time() {
        let pid = std::process::id();
        let start = process_start_time(pid).expect("own start time");
        assert!(process_alive(pid, Some(start)));
        assert!(
            !process_alive(pid, Some(start + 1)),
            "a different start time is another process"
        );
    }

    #[test]
    fn a_process_named_with_bytes_that_are_not_utf8_has_a_start_time() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        // A process's name is its program's file name: here "\xff) x", not UTF-8.
        let program = dir.path().join(std::ffi::OsStr::from_bytes(b"\xff) x"));
        std::os::unix::fs::symlink("/bin/sleep", &program).unwrap();
        let mut child = std::process::Command::new(&program)
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut named = false;
        for _ in 0..200 {
            if fs::read(format!("/proc/{pid}/comm"))
                .unwrap_or_default()
                .starts_with(b"\xff")
            {
                named = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let start = process_start_time(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(named, "the child never took its name");
        assert!(start.is_some(), "no start time for {pid}");
    }

    #[test]
    fn a_process_uses_some_memory_and_cpu() {
        let mut spin = 0u64;
        for i in 0..5_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        assert!(spin > 0);
        let usage = usage(std::process::id());
        assert!(usage.memory_bytes.unwrap() > 1024 * 1024, "{usage:?}");
        assert!(usage.cpu_usec.is_some(), "{usage:?}");
        assert_eq!(super::usage(u32::MAX).memory_bytes, None);
    }

    #[test]
    fn our_own_file_descriptors_are_counted() {
        let before = open_fds().unwrap();
        let file = fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(open_fds().unwrap(), before + 1);
        drop(file);
        assert!(max_fds().unwrap() > before);
    }

    #[test]
    fn the_boot_id_is_known_and_stable() {
        assert_eq!(boot_id().len(), 36, "{:?}", boot_id());
        assert_eq!(boot_id(), boot_id());
    }

    #[test]
    fn a_reaped_child_is_gone() {
        let reaper = crate::runtime::reaper::Reaper::global();
        let (child, exit) = reaper
            .spawn(&mut std::process::Command::new("true"))
            .unwrap();
        exit.blocking_recv().unwrap();
        assert!(!process_alive(child.id(), None));
    }
}
