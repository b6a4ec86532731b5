//! `logs [--container NAME] [-n N] [--json]`: audit entries, one JSON object per line (or
//! one compact JSON array with `--json`), merged across containers by time.
//!
//! Reads `<state root>/containers/*/audit.jsonl` (after its older generation
//! `audit.jsonl.1`), streamed; lines that are not JSON objects are
//! skipped, and every entry is re-serialised, so no raw byte of the file reaches the terminal.

use std::path::Path;

use terok_shield::paths::container_dir;
use terok_shield_policy::names::validate_container_name;

use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::output;

pub fn run(ctx: &Context, container: Option<&str>, n: i64, json: bool) -> CliResult {
    let n = usize::try_from(n.max(0)).unwrap_or(0);
    match container {
        Some(name) => {
            validate_container_name(name).map_err(|e| CliError::Shield(e.into()))?;
            let entries = tail(&container_dir(&ctx.state_root, name).join("audit.jsonl"), n);
            if json {
                return print_json(&entries);
            }
            output::lines(&entries.iter().map(render).collect::<Vec<_>>())
        }
        None => {
            let mut all = Vec::new();
            if let Ok(dirs) = std::fs::read_dir(ctx.state_root.join("containers")) {
                let mut dirs: Vec<_> = dirs.flatten().map(|d| d.path()).collect();
                dirs.sort();
                for d in dirs {
                    all.extend(tail(&d.join("audit.jsonl"), n));
                }
            }
            all.sort_by(|a, b| ts(a).cmp(ts(b)));
            let start = all.len().saturating_sub(n);
            let shown = &all[start..];
            if json {
                return print_json(shown);
            }
            if shown.is_empty() {
                return output::print("No audit logs found.\n");
            }
            output::lines(&shown.iter().map(render).collect::<Vec<_>>())
        }
    }
}

/// `[entry, …]`, compact, with the same escaping as the line output.
fn print_json(entries: &[serde_json::Value]) -> CliResult {
    let items: Vec<String> = entries
        .iter()
        .map(|e| {
            let mut out = String::new();
            write_value(e, COMPACT, &mut out);
            out
        })
        .collect();
    output::print(&format!("[{}]\n", items.join(",")))
}

fn ts(v: &serde_json::Value) -> &str {
    v.get("ts").and_then(|t| t.as_str()).unwrap_or("")
}

/// The last `n` JSON-object lines of `path`, after those of its older generation
/// `<path>.1` (none when missing or unreadable). The files are streamed: at most `n` rows
/// are held, and a line longer than [`MAX_LINE`] is skipped.
fn tail(path: &Path, n: usize) -> Vec<serde_json::Value> {
    use std::io::{BufRead as _, Read as _};
    let mut last: std::collections::VecDeque<serde_json::Value> = std::collections::VecDeque::new();
    if n == 0 {
        return Vec::new();
    }
    let mut older = path.as_os_str().to_owned();
    older.push(".1");
    for file in [std::path::PathBuf::from(older), path.to_path_buf()] {
        let Ok(f) = std::fs::File::open(&file) else { continue };
        let mut reader = std::io::BufReader::new(f);
        let mut line = Vec::new();
        let mut skipping = false;
        loop {
            line.clear();
            match (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let complete = line.ends_with(b"\n");
            // A line longer than any row is skipped to its end.
            if skipping || line.len() > MAX_LINE {
                skipping = !complete;
                continue;
            }
            let Some(row) = serde_json::from_slice::<serde_json::Value>(&line).ok().filter(|v| v.is_object()) else {
                continue;
            };
            if last.len() == n {
                last.pop_front();
            }
            last.push_back(row);
        }
    }
    last.into()
}

/// The longest audit line `logs` reads (rows are far shorter).
const MAX_LINE: usize = 64 * 1024;

/// JSON with `", "` and `": "` separators and every non-ASCII or control character escaped.
fn render(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_value(v, SPACED, &mut out);
    out
}

/// Item and key separators.
type Separators = (&'static str, &'static str);
const SPACED: Separators = (", ", ": ");
const COMPACT: Separators = (",", ":");

fn write_value(v: &serde_json::Value, sep: Separators, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            out.push('{');
            for (i, (k, val)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep.0);
                }
                write_str(k, out);
                out.push_str(sep.1);
                write_value(val, sep, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep.0);
                }
                write_value(item, sep, out);
            }
            out.push(']');
        }
        serde_json::Value::String(s) => write_str(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_spans_both_generations_and_skips_what_is_not_a_row() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let row = |i: usize| format!("{{\"ts\":\"t{i:03}\",\"action\":\"blocked\"}}\n");
        let older: String = (0..5).map(row).collect();
        let long = format!("{{\"ts\":\"{}\"}}\n", "x".repeat(MAX_LINE * 2));
        let current = format!("{}not json\n{long}[1]\n{}", row(5), (6..8).map(row).collect::<String>());
        std::fs::write(dir.path().join("audit.jsonl.1"), older).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("audit.jsonl"), current).unwrap_or_else(|e| panic!("{e}"));
        let ts = |n| tail(&dir.path().join("audit.jsonl"), n).iter().map(|v| ts(v).to_string()).collect::<Vec<_>>();
        assert_eq!(ts(100), (0..8).map(|i| format!("t{i:03}")).collect::<Vec<_>>());
        // Lines that are not rows do not count.
        assert_eq!(ts(3), ["t005", "t006", "t007"]);
        assert!(ts(0).is_empty());
    }
}
