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
