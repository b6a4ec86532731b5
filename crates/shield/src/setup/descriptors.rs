//! OCI hook descriptors (hooks.md §1): one per (program, stage), triggered by the
//! `terok.shield.profiles` annotation, absolute paths, setup's PATH baked in.

use std::path::Path;

use crate::helper::HELPER_BINARY as HOOK_BINARY;

/// (descriptor file, program argument, stage).
pub const DESCRIPTORS: [(&str, &str, &str); 4] = [
    ("terok-shield-createRuntime.json", "nft", "createRuntime"),
    ("terok-shield-poststop.json", "nft", "poststop"),
    ("terok-shield-bridge-createRuntime.json", "bridge", "createRuntime"),
    ("terok-shield-bridge-poststop.json", "bridge", "poststop"),
];

/// The descriptor text: pretty JSON, 2-space indent, trailing newline.
pub fn render(hooks_dir: &Path, program: &str, stage: &str, path_env: &str) -> String {
    let binary = hooks_dir.join(HOOK_BINARY);
    let value = serde_json::json!({
        "version": "1.0.0",
        "hook": {
            "path": binary,
            "args": [HOOK_BINARY, program, stage],
            "env": [format!("PATH={path_env}")],
        },
        "when": {"annotations": {"terok.shield.profiles": ".*"}},
        "stages": [stage],
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// The absolute entries of a PATH value, joined again (what the hook may search).
pub fn absolute_path_entries(path: Option<&std::ffi::OsStr>) -> String {
    let entries: Vec<String> = path
        .map(|p| std::env::split_paths(p).filter(|d| d.is_absolute()).map(|d| d.display().to_string()).collect())
        .unwrap_or_default();
    if entries.is_empty() {
        crate::procenv::FALLBACK_PATH.to_string()
    } else {
        entries.join(":")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_shape() {
        let text = render(Path::new("/h"), "nft", "createRuntime", "/usr/bin:/bin");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(v["hook"]["path"], "/h/terok-shield-hook");
        assert_eq!(v["hook"]["args"], serde_json::json!(["terok-shield-hook", "nft", "createRuntime"]));
        assert_eq!(v["hook"]["env"], serde_json::json!(["PATH=/usr/bin:/bin"]));
        assert_eq!(v["when"]["annotations"]["terok.shield.profiles"], ".*");
        assert_eq!(v["stages"], serde_json::json!(["createRuntime"]));
        assert!(text.ends_with("}\n") && text.contains("\n  \"hook\": {"));
        assert_eq!(absolute_path_entries(Some(std::ffi::OsStr::new("bin:/usr/bin::/bin"))), "/usr/bin:/bin");
    }
}
