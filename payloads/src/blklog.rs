//! The disk log `blklog.elf` writes through virtio-blk, and its checker: record `n` is sector
//! `n`, written in order, each flushed before the next. A log checks clean when it is a run of
//! valid records from sector 0 followed by nothing but zeros: no torn, stale or out-of-order
//! sector. The tests run the checker on the image after the guest was saved, restored and wrote
//! on (the log's `fsck`).
use crate::fnv::fnv1a32;

pub const SECTOR: usize = 512;
pub const MAGIC: &[u8; 16] = b"MINNOW-BLKLOG\0\0\0";
/// How many records the payload writes before it exits.
pub const RECORDS: u64 = 32;
/// The console line after each record: `MINNOW-BLKLOG wrote=N`; and at the end.
pub const WROTE: &str = "MINNOW-BLKLOG wrote=";
pub const DONE: &str = "MINNOW-BLKLOG done";

const INDEX: usize = 16;
const CHECKSUM: usize = SECTOR - 4;

/// Record `n`: the magic, `n`, a filler that depends on `n`, and the FNV-1a of all that.
pub fn record(n: u64) -> [u8; SECTOR] {
    let mut s = [0u8; SECTOR];
    s[..INDEX].copy_from_slice(MAGIC);
    s[INDEX..INDEX + 8].copy_from_slice(&n.to_le_bytes());
    for (i, b) in s[INDEX + 8..CHECKSUM].iter_mut().enumerate() {
        *b = (n as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    let sum = fnv1a32(&s[..CHECKSUM]);
    s[CHECKSUM..].copy_from_slice(&sum.to_le_bytes());
    s
}

/// What is wrong with a log, at which sector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogError {
    /// Sector `n` is neither record `n` nor zeros.
    Corrupt(u64),
    /// Sector `n` holds data after the log's end (an earlier sector was zeros).
    AfterTheEnd(u64),
}

/// Checks `image` as a log: the number of records, or the first thing wrong.
pub fn check(image: &[u8]) -> Result<u64, LogError> {
    let mut records = 0;
    for (n, sector) in image.chunks(SECTOR).enumerate() {
        let n = n as u64;
        let zeros = sector.iter().all(|&b| b == 0);
        match (records == n, zeros) {
            (true, true) | (false, true) => {}
            (true, false) if sector == record(n) => records += 1,
            (true, false) => return Err(LogError::Corrupt(n)),
            (false, false) => return Err(LogError::AfterTheEnd(n)),
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(records: u64, sectors: usize) -> Vec<u8> {
        let mut image = vec![0u8; sectors * SECTOR];
        for n in 0..records {
            let at = n as usize * SECTOR;
            image[at..at + SECTOR].copy_from_slice(&record(n));
        }
        image
    }

    #[test]
    fn a_log_written_in_order_checks_clean() {
        assert_eq!(check(&log(0, 8)), Ok(0));
        assert_eq!(check(&log(5, 8)), Ok(5));
        assert_eq!(check(&log(8, 8)), Ok(8));
    }

    #[test]
    fn torn_misplaced_and_stray_sectors_are_found() {
        let mut torn = log(5, 8);
        torn[3 * SECTOR + 100] ^= 1;
        assert_eq!(check(&torn), Err(LogError::Corrupt(3)));
        let mut misplaced = log(5, 8);
        misplaced[2 * SECTOR..3 * SECTOR].copy_from_slice(&record(7));
        assert_eq!(check(&misplaced), Err(LogError::Corrupt(2)));
        let mut stray = log(3, 8);
        stray[6 * SECTOR..7 * SECTOR].copy_from_slice(&record(6));
        assert_eq!(check(&stray), Err(LogError::AfterTheEnd(6)));
    }

    #[test]
    fn records_differ_and_carry_their_index() {
        assert_ne!(record(1), record(2));
        assert_eq!(&record(9)[INDEX..INDEX + 8], &9u64.to_le_bytes());
    }
}
