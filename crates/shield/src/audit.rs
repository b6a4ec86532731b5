//! The audit log `<state_dir>/audit.jsonl`: compact JSON lines, UTC seconds.

use std::io::Write;
use std::path::Path;

use crate::bundle::layout::AUDIT_LOG;
use crate::report::{Report, Reporter};

/// One audit row: `ts`, `container`, `action`, then `dest` and `detail` when given.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub container: &'a str,
    pub action: &'a str,
    pub dest: Option<&'a str>,
    pub detail: Option<&'a str>,
}

impl<'a> Row<'a> {
    pub fn new(container: &'a str, action: &'a str) -> Self {
        Row { container, action, dest: None, detail: None }
    }

    pub fn dest(self, dest: &'a str) -> Self {
        Row { dest: Some(dest), ..self }
    }

    pub fn detail(self, detail: &'a str) -> Self {
        Row { detail: Some(detail), ..self }
    }
}

/// Append one row. Auditing never fails the operation it records; a failed write is
/// reported as a warning.
pub fn append(state_dir: &Path, row: Row, report: Reporter) {
    let Row { container, action, dest, detail } = row;
    let mut row = serde_json::Map::new();
    row.insert("ts".into(), now_utc().into());
    row.insert("container".into(), container.into());
    row.insert("action".into(), action.into());
    if let Some(d) = dest {
        row.insert("dest".into(), d.into());
    }
    if let Some(d) = detail {
        row.insert("detail".into(), d.into());
    }
    append_line(state_dir, &serde_json::Value::Object(row).to_string(), report);
}

/// The audit log's size before it moves to `audit.jsonl.1` (the older generation, which
/// `logs` reads too): a container's audit rows take at most about twice this on disk.
pub const AUDIT_MAX: u64 = 8 << 20;

/// Append one ready JSON line (no newline). Lines are short and written with one `write`
/// on an `O_APPEND` descriptor, so concurrent writers never interleave.
pub fn append_line(state_dir: &Path, json: &str, report: Reporter) {
    let line = format!("{json}\n");
    let path = state_dir.join(AUDIT_LOG);
    let written = crate::fsutil::open_append_rotating(&path, AUDIT_MAX).and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        report(Report::Warning(format!("cannot write {}: {e}", path.display())));
    }
}

/// `2026-05-09T12:00:00+00:00`.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format_utc(secs)
}

/// `2026-05-09T12:00:00.123456+00:00` (hub events carry microseconds).
pub fn now_utc_micros() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = format_utc(d.as_secs());
    format!("{}.{:06}+00:00", &secs[..19], d.subsec_micros())
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp (civil-from-days, no dependency).
pub fn format_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(format_utc(1_778_328_000), "2026-05-09T12:00:00+00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00+00:00");
    }
}
