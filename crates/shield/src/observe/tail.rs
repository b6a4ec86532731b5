//! Following a log file as it grows: complete lines only, a truncated or replaced file
//! followed from its new start, reads bounded so a flood cannot balloon memory.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Read at most this much per poll; the rest waits for the next one.
const MAX_READ: u64 = 1 << 20;

#[derive(Debug)]
pub struct Tail {
    pub path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// Follow `path` from its start.
    pub fn from_start(path: PathBuf) -> Self {
        Tail { path, offset: 0, partial: Vec::new() }
    }

    /// Follow `path` from its current end.
    pub fn at_end(path: PathBuf) -> Self {
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Tail { path, offset, partial: Vec::new() }
    }

    /// Everything the file holds now has been read.
    pub fn caught_up(&self) -> bool {
        std::fs::metadata(&self.path).map_or(true, |m| m.len() <= self.offset)
    }

    /// Empty the file once everything it holds has been read and it holds more than `max`
    /// bytes (for a log whose writer appends with `O_APPEND`, as dnsmasq does: its next line
    /// goes to the new start). A line written between the last read and the truncation is
    /// lost; the log only enriches reports.
    pub fn truncate_past(&mut self, max: u64) {
        use std::os::unix::fs::OpenOptionsExt;
        let len = std::fs::symlink_metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if len <= max || len > self.offset || !self.partial.is_empty() {
            return;
        }
        let opened =
            std::fs::OpenOptions::new().write(true).custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits()).open(&self.path);
        if opened.and_then(|f| f.set_len(0)).is_ok() {
            self.offset = 0;
        }
    }

    /// The complete lines written since the last poll (invalid UTF-8 replaced); read errors
    /// report nothing.
    pub fn lines(&mut self) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(&self.path) else { return Vec::new() };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        if len == self.offset || f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut chunk = Vec::new();
        let Ok(n) = f.take(MAX_READ).read_to_end(&mut chunk) else { return Vec::new() };
        self.offset += n as u64;
        self.partial.extend_from_slice(&chunk);
        super::take_lines(&mut self.partial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_read_through_is_emptied_past_its_limit() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("dnsmasq.log");
        let mut w = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..10 {
            writeln!(w, "line {i} of the log").unwrap_or_else(|e| panic!("{e}"));
        }
        let mut t = Tail::from_start(path.clone());
        t.truncate_past(10);
        assert!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) > 0, "not read yet: kept");
        assert_eq!(t.lines().len(), 10);
        t.truncate_past(1000);
        assert!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) > 0, "under the limit: kept");
        t.truncate_past(10);
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(1), 0);
        writeln!(w, "after").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.lines(), ["after"]);
    }
}
