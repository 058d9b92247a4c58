//! The real `Procs`: /proc/PID/{cgroup,root,cwd,mem} of the host's pid namespace.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::watch::Procs;

/// ELF identification plus e_type/e_machine: all the judgement reads.
const HEADER_LEN: usize = 64;
/// Longest path read out of a process (PATH_MAX).
const PATH_MAX: usize = 4096;

pub struct ProcFs;

impl Procs for ProcFs {
    fn cgroup(&self, pid: i32) -> Option<String> {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()
    }

    fn header(&self, pid: i32, filename: &str) -> Option<Vec<u8>> {
        // The name is as the process gave it: resolve it in the process's own root (its
        // container's filesystem) or, if relative, its working directory.
        let path = match filename.strip_prefix('/') {
            Some(rel) => PathBuf::from(format!("/proc/{pid}/root")).join(rel),
            None => PathBuf::from(format!("/proc/{pid}/cwd")).join(filename),
        };
        let mut buf = Vec::with_capacity(HEADER_LEN);
        File::open(path)
            .ok()?
            .take(HEADER_LEN as u64)
            .read_to_end(&mut buf)
            .ok()?;
        Some(buf)
    }

    fn string_at(&self, pid: i32, addr: u64) -> Option<String> {
        let mem = File::open(format!("/proc/{pid}/mem")).ok()?;
        let mut buf = vec![0u8; PATH_MAX];
        // A read may stop at the end of a mapping: whatever came back up to the NUL.
        let n = mem.read_at(&mut buf, addr).ok()?;
        let end = buf[..n].iter().position(|&b| b == 0)?;
        // Empty: the caller already reused the memory; no path beats a wrong one.
        (end > 0).then_some(())?;
        String::from_utf8(buf[..end].to_vec()).ok()
    }
}
