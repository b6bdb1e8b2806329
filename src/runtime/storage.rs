//! Disk usage of a tenant's data directory, as `du` counts it (allocated blocks, each hard
//! linked file once, symlinks not followed, other file systems not entered). A walk of the
//! tree: run on a blocking thread, at the pace of health checks, never per request.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Bytes allocated under `dir` (0 when it does not exist).
pub(crate) fn usage_bytes(dir: &Path) -> io::Result<u64> {
    let root = match fs::symlink_metadata(dir) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut seen = HashSet::new();
    let mut total = root.blocks() * 512;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(listing) = fs::read_dir(&current) else {
            continue;
        };
        for entry in listing.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.dev() != root.dev() {
                continue;
            }
            if metadata.nlink() > 1
                && !metadata.is_dir()
                && !seen.insert((metadata.dev(), metadata.ino()))
            {
                continue;
            }
            total += metadata.blocks() * 512;
            if metadata.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// Megabytes, rounded up, for messages.
pub(crate) fn megabytes(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_allocated_blocks_and_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(usage_bytes(&dir.path().join("missing")).unwrap(), 0);
        let empty = usage_bytes(dir.path()).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/data"), vec![7u8; 1024 * 1024]).unwrap();
        fs::hard_link(dir.path().join("sub/data"), dir.path().join("again")).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
        // A sparse file takes no blocks for its hole.
        let sparse = fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(100 * 1024 * 1024).unwrap();
        let used = usage_bytes(dir.path()).unwrap() - empty;
        assert!((1024 * 1024..2 * 1024 * 1024).contains(&used), "{used}");
        assert_eq!(
            (megabytes(0), megabytes(1), megabytes(1024 * 1024 + 1)),
            (0, 1, 2)
        );
    }
}
