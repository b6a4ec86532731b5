//! Registering a hooks dir in the user's `containers.conf` (hooks.md §2.2 step 5), as a
//! textual edit that keeps comments and formatting, and undoing exactly that edit.
//!
//! Detection parses the file as TOML (`[engine].hooks_dir`, string or list); the edit is
//! textual; the result is parsed again and must list the dir.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SetupError;
use crate::error::{Error, Result};

/// What `register` did, recorded in the receipt so `unregister` can undo exactly that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "kebab-case")]
pub enum Edit {
    /// The dir was listed already.
    None,
    /// The file did not exist; we wrote `content`.
    Created { content: String },
    /// We inserted `line` right after the `[engine]` header.
    Inserted { line: String },
    /// We appended `text` (a new `[engine]` section) at the end.
    Appended { text: String },
    /// We replaced the `hooks_dir` line `original` by `edited`.
    Extended { original: String, edited: String },
}

/// `$XDG_CONFIG_HOME/containers/containers.conf`, else `~/.config/containers/containers.conf`.
pub fn user_conf_path(env: &crate::paths::Env) -> Result<PathBuf> {
    let base = match env.get("XDG_CONFIG_HOME").map(Path::new).filter(|p| p.is_absolute()) {
        Some(p) => p.to_path_buf(),
        None => env.home()?.join(".config"),
    };
    Ok(base.join("containers/containers.conf"))
}

fn dir_entry(dir: &Path) -> String {
    let s = dir.display().to_string();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `[engine].hooks_dir` entries of a TOML text (`None` when absent).
pub fn hooks_dirs(text: &str) -> Result<Option<Vec<String>>> {
    let doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        Error::from(SetupError::ConfNotToml(crate::exec::one_line(&e.to_string())))
    })?;
    let Some(item) = doc.get("engine").and_then(|e| e.get("hooks_dir")) else { return Ok(None) };
    if let Some(s) = item.as_str() {
        return Ok(Some(vec![s.to_string()]));
    }
    match item.as_array() {
        Some(a) => Ok(Some(a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())),
        None => Err(SetupError::ConfHooksDirType.into()),
    }
}

fn lists(dirs: &[String], dir: &Path, home: Option<&Path>) -> bool {
    dirs.iter().any(|d| {
        let expanded = match (d.strip_prefix("~/"), home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ => PathBuf::from(d),
        };
        expanded == dir
    })
}

/// True when the file at `path` lists `dir` in `[engine].hooks_dir`.
pub fn is_registered(path: &Path, dir: &Path, home: Option<&Path>) -> bool {
    std::fs::read_to_string(path).ok().and_then(|t| hooks_dirs(&t).ok().flatten()).is_some_and(|d| lists(&d, dir, home))
}

fn is_engine_header(line: &str) -> bool {
    line.split('#').next().is_some_and(|l| l.trim() == "[engine]")
}

/// The new text and the edit that produced it; `text` is `None` when the file is absent.
pub fn plan(text: Option<&str>, dir: &Path, home: Option<&Path>) -> Result<(String, Edit)> {
    let entry = dir_entry(dir);
    let line = format!("hooks_dir = [{entry}]");
    let Some(text) = text else {
        let content = format!("[engine]\n{line}\n");
        return Ok((content.clone(), Edit::Created { content }));
    };
    let (new_text, edit) = match hooks_dirs(text)? {
        Some(dirs) if lists(&dirs, dir, home) => return Ok((text.to_string(), Edit::None)),
        None => match text.lines().position(is_engine_header) {
            Some(i) => {
                let mut out = String::with_capacity(text.len() + line.len() + 1);
                for (n, l) in text.split_inclusive('\n').enumerate() {
                    out.push_str(l);
                    if n == i {
                        if !l.ends_with('\n') {
                            out.push('\n');
                        }
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
                (out, Edit::Inserted { line })
            }
            None => {
                let appended = format!("\n[engine]\n{line}\n");
                (format!("{text}{appended}"), Edit::Appended { text: appended })
            }
        },
        Some(_) => {
            let (original, edited) = extend_line(text, &entry)?;
            (replace_line(text, &original, &edited), Edit::Extended { original, edited })
        }
    };
    let registered = hooks_dirs(&new_text)?.is_some_and(|d| lists(&d, dir, home));
    if !registered {
        return Err(SetupError::ConfNotRegistered.into());
    }
    Ok((new_text, edit))
}

/// Find the single `hooks_dir = …` line of the `[engine]` table and append `entry` to it,
/// keeping a trailing comment; a string value becomes a two-element list.
fn extend_line(text: &str, entry: &str) -> Result<(String, String)> {
    let mut in_engine = false;
    for l in text.lines() {
        let t = l.trim_start();
        if t.starts_with('[') {
            in_engine = is_engine_header(l);
            continue;
        }
        if !in_engine || !t.starts_with("hooks_dir") {
            continue;
        }
        let (code, comment) = split_comment(l);
        let code_trim = code.trim_end();
        let (key, value) = code_trim.split_once('=').ok_or(SetupError::ConfUnreadableLine)?;
        let value = value.trim();
        let new_value = if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            let inner = inner.trim().trim_end_matches(',').trim_end();
            if inner.is_empty() {
                format!("[{entry}]")
            } else {
                format!("[{inner}, {entry}]")
            }
        } else if value.starts_with('"') || value.starts_with('\'') {
            format!("[{value}, {entry}]")
        } else {
            return Err(SetupError::ConfMultiLine.into());
        };
        let ws = &code[code_trim.len()..];
        let edited = format!("{}= {new_value}{ws}{comment}", key);
        return Ok((l.to_string(), edited));
    }
    Err(SetupError::ConfNoLine.into())
}

/// Split a line at a `#` outside quotes.
fn split_comment(line: &str) -> (&str, &str) {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return (&line[..i], &line[i..]),
            _ => {}
        }
    }
    (line, "")
}

fn replace_line(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len() + to.len());
    let mut done = false;
    for l in text.split_inclusive('\n') {
        let body = l.strip_suffix('\n').unwrap_or(l);
        if !done && body == from {
            out.push_str(to);
            if l.ends_with('\n') {
                out.push('\n');
            }
            done = true;
        } else {
            out.push_str(l);
        }
    }
    out
}

/// Register `dir` in the file at `path`; returns the edit made.
pub fn register(path: &Path, dir: &Path, home: Option<&Path>) -> Result<Edit> {
    let current = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    let (new_text, edit) = plan(current.as_deref(), dir, home)?;
    if edit != Edit::None {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mode = std::fs::metadata(path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .unwrap_or(0o644);
        crate::fsutil::write_atomic(path, new_text.as_bytes(), mode)?;
    }
    Ok(edit)
}

/// The text with `edit` undone, or `None` when the file no longer holds our edit (then it
/// is left alone).
pub fn unplan(text: &str, edit: &Edit) -> Option<Option<String>> {
    match edit {
        Edit::None => Some(Some(text.to_string())),
        Edit::Created { content } => (text == content).then_some(None),
        Edit::Appended { text: appended } => text.strip_suffix(appended.as_str()).map(|t| Some(t.to_string())),
        Edit::Inserted { line } => {
            let mut out = String::with_capacity(text.len());
            let mut removed = false;
            let mut after_header = false;
            for l in text.split_inclusive('\n') {
                let body = l.strip_suffix('\n').unwrap_or(l);
                if after_header && !removed && body == line {
                    removed = true;
                    after_header = false;
                    continue;
                }
                after_header = is_engine_header(body);
                out.push_str(l);
            }
            removed.then_some(Some(out))
        }
        Edit::Extended { original, edited } => {
            text.lines().any(|l| l == edited).then(|| Some(replace_line(text, edited, original)))
        }
    }
}

/// Undo `edit` in the file at `path`. Returns false when the file no longer holds it.
pub fn unregister(path: &Path, edit: &Edit) -> Result<bool> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(matches!(edit, Edit::None | Edit::Created { .. }))
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    match unplan(&text, edit) {
        None => Ok(false),
        Some(None) => std::fs::remove_file(path).map(|()| true).map_err(|e| Error::io(path, e)),
        Some(Some(t)) if t == text => Ok(true),
        Some(Some(t)) => {
            let mode = std::fs::metadata(path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                .unwrap_or(0o644);
            crate::fsutil::write_atomic(path, t.as_bytes(), mode).map(|()| true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "/home/u/.local/share/terok/shield/hooks";

    fn round_trip(before: Option<&str>, expect_after: &str) {
        let (after, edit) =
            plan(before, Path::new(DIR), Some(Path::new("/home/u"))).unwrap_or_else(|e| panic!("{before:?}: {e}"));
        assert_eq!(after, expect_after, "{before:?}");
        let undone = unplan(&after, &edit).unwrap_or_else(|| panic!("{before:?}: our edit not found"));
        assert_eq!(undone.as_deref(), before, "{before:?}: not byte-identical after undo");
    }

    #[test]
    fn every_case_round_trips_byte_for_byte() {
        let d = format!("\"{DIR}\"");
        round_trip(None, &format!("[engine]\nhooks_dir = [{d}]\n"));
        round_trip(
            Some("# my conf\n[engine]\ncgroup_manager = \"cgroupfs\" # why\n"),
            &format!("# my conf\n[engine]\nhooks_dir = [{d}]\ncgroup_manager = \"cgroupfs\" # why\n"),
        );
        round_trip(Some("[engine] # the engine\nx = 1"), &format!("[engine] # the engine\nhooks_dir = [{d}]\nx = 1"));
        round_trip(
            Some("[containers]\n# keep\nlog_size_max = 1\n"),
            &format!("[containers]\n# keep\nlog_size_max = 1\n\n[engine]\nhooks_dir = [{d}]\n"),
        );
        round_trip(
            Some("[engine]\nhooks_dir = [\"/a\", '/b']  # mine\n"),
            &format!("[engine]\nhooks_dir = [\"/a\", '/b', {d}]  # mine\n"),
        );
        round_trip(
            Some("[engine]\nhooks_dir = \"/a\"\n[network]\n"),
            &format!("[engine]\nhooks_dir = [\"/a\", {d}]\n[network]\n"),
        );
        round_trip(Some("[engine]\nhooks_dir = []\n"), &format!("[engine]\nhooks_dir = [{d}]\n"));
        round_trip(
            Some("[engine]\nhooks_dir = [\"~/.local/share/terok/shield/hooks\"]\n"),
            "[engine]\nhooks_dir = [\"~/.local/share/terok/shield/hooks\"]\n",
        );
        round_trip(Some(&format!("[engine]\nhooks_dir = [{d}]\n")), &format!("[engine]\nhooks_dir = [{d}]\n"));
    }

    #[test]
    fn refuses_what_it_cannot_edit_safely() {
        for bad in ["[engine\n", "[engine]\nhooks_dir = [\n  \"/a\",\n]\n", "[engine]\nhooks_dir = 5\n"] {
            assert!(plan(Some(bad), Path::new(DIR), None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn undo_leaves_a_changed_file_alone() {
        let (after, edit) = plan(Some("[engine]\n"), Path::new(DIR), None).unwrap_or_else(|e| panic!("{e}"));
        let user_changed = after.replace(DIR, "/elsewhere");
        assert_eq!(unplan(&user_changed, &edit), None);
    }
}
