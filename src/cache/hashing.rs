//! A writer into a cache temp file that hashes the bytes on their way (so they are read
//! once) and starts writeback early, so the fsync before commit has little left to do
//! and disk writes overlap the network instead of following it.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

use sha2::{Digest, Sha256};

/// Bytes between early-writeback requests.
const WRITEBACK_EVERY: u64 = 8 << 20;

pub struct HashingFile<'a> {
    file: &'a mut File,
    hash: Sha256,
    n: u64,
    queued: u64,
}

impl<'a> HashingFile<'a> {
    /// Writes start at the file's current position; callers pass an empty file.
    pub fn new(file: &'a mut File) -> HashingFile<'a> {
        HashingFile {
            file,
            hash: Sha256::new(),
            n: 0,
            queued: 0,
        }
    }

    /// (sha256 hex, bytes written).
    pub fn finish(self) -> (String, u64) {
        (crate::fetch::hex(&self.hash.finalize()), self.n)
    }
}

impl Write for HashingFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.file.write(buf)?;
        self.hash.update(&buf[..k]);
        self.n += k as u64;
        if self.n - self.queued >= WRITEBACK_EVERY {
            // SAFETY: a valid fd and a byte range inside the file. Only a hint: errors
            // surface at the fsync that commit does anyway.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.queued as libc::off64_t,
                    (self.n - self.queued) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.queued = self.n;
        }
        Ok(k)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
