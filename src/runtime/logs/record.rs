//! The `offsets` record of one instance's capture: where the first line not yet in
//! `output.log` begins in each raw file, and the length of `output.log` then, written as one
//! fixed-width text so that a killed ten leaves the old record or the new one.
//!
//! Imports nothing else of `logs`.

use std::fs;
use std::path::Path;

/// What `offsets` records: how far the lines of stdout and stderr reached `output.log`, and
/// how long `output.log` was then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Where the first line not yet in `output.log` begins, in each raw file.
    pub offsets: [u64; 2],
    /// The length of `output.log` that holds exactly the lines before `offsets`; `None` in
    /// the format of earlier versions, which did not record it.
    pub log_length: Option<u64>,
}

const RECORD_WIDTH: usize = 64;

/// `"STDOUT STDERR LOG_LENGTH\n"`, padded to a fixed width so one positioned write replaces
/// the old text whole (and one page holds it: a killed ten leaves the old or the new record).
pub(super) fn encode_record(record: Recorded) -> [u8; RECORD_WIDTH] {
    let mut bytes = [b' '; RECORD_WIDTH];
    let text = format!(
        "{} {} {}",
        record.offsets[0],
        record.offsets[1],
        record.log_length.unwrap_or(0)
    );
    bytes[..text.len()].copy_from_slice(text.as_bytes());
    bytes[RECORD_WIDTH - 1] = b'\n';
    bytes
}

/// Reads both formats: `"STDOUT STDERR LOG_LENGTH"` and the earlier `"STDOUT STDERR"`.
pub(super) fn decode_record(text: &str) -> Option<Recorded> {
    let numbers: Vec<u64> = text
        .split_whitespace()
        .map(|number| number.parse().ok())
        .collect::<Option<_>>()?;
    match numbers[..] {
        [stdout, stderr] => Some(Recorded {
            offsets: [stdout, stderr],
            log_length: None,
        }),
        [stdout, stderr, log_length] => Some(Recorded {
            offsets: [stdout, stderr],
            log_length: Some(log_length),
        }),
        _ => None,
    }
}

/// The record of an instance's capture, if any.
pub fn read_record(path: &Path) -> Option<Recorded> {
    decode_record(&fs::read_to_string(path).ok()?)
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::os::unix::fs::FileExt;

    use super::*;

    #[test]
    fn records_round_trip_and_shrinking_numbers_leave_no_old_digits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets");
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        let record = |stdout, stderr, log_length| Recorded {
            offsets: [stdout, stderr],
            log_length,
        };
        file.write_all_at(&encode_record(record(123456789, 42, Some(987654321))), 0)
            .unwrap();
        file.write_all_at(&encode_record(record(7, 0, Some(3))), 0)
            .unwrap();
        assert_eq!(read_record(&path), Some(record(7, 0, Some(3))));
        let largest = record(u64::MAX, u64::MAX, Some(u64::MAX));
        let text = encode_record(largest);
        assert_eq!(
            decode_record(std::str::from_utf8(&text).unwrap()),
            Some(largest)
        );
        // The format of earlier versions: no length of output.log.
        assert_eq!(decode_record("12 34"), Some(record(12, 34, None)));
        assert_eq!(decode_record("12"), None);
        assert_eq!(decode_record("1 2 3 4"), None);
        assert_eq!(decode_record("1 x 3"), None);
    }
}
