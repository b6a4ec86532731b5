//! `logs [--container NAME] [-n N] [--json]`: audit entries, one JSON object per line (or
//! one compact JSON array with `--json`), merged across containers by time.
//!
//! Reads `<state root>/containers/*/audit.jsonl`; lines that are not JSON objects are
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

/// The last `n` JSON-object lines of `path` (none when it is missing or unreadable).
fn tail(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let entries: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.is_object())
        .collect();
    let start = entries.len().saturating_sub(n);
    entries[start..].to_vec()
}

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
