//! The dossier attached to clearance events (observe.md §4.7): the container's static
//! `dossier.*` annotations, overlaid with the non-empty values of the JSON object at
//! `meta_path` (re-read for every event, so an orchestrator can update it).

use serde_json::{Map, Value};

/// `dossier.*` annotations, prefix stripped, values as strings; `meta_path` left out.
pub(crate) fn from_annotations<'a>(annotations: impl Iterator<Item = (&'a str, &'a str)>) -> Map<String, Value> {
    annotations
        .filter_map(|(k, v)| Some((k.strip_prefix("dossier.")?, v)))
        .filter(|(k, _)| *k != "meta_path" && !k.is_empty())
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect()
}

/// `base` overlaid with the file's non-empty values; any error leaves `base` as it is.
pub fn overlay(base: &Map<String, Value>, meta_path: Option<&std::path::Path>) -> Map<String, Value> {
    let mut out = base.clone();
    let Some(path) = meta_path else { return out };
    let Ok(text) = std::fs::read(path) else { return out };
    if text.len() > 64 * 1024 {
        return out;
    }
    if let Ok(Value::Object(meta)) = serde_json::from_slice::<Value>(&text) {
        for (k, v) in meta {
            let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            if !s.is_empty() && v != Value::Null && v != Value::Bool(false) {
                out.insert(k, s.into());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_floor_and_overlay() -> std::io::Result<()> {
        let ann = [("dossier.task", "build"), ("dossier.meta_path", "/x"), ("other", "y"), ("dossier.", "z")];
        let base = from_annotations(ann.into_iter());
        assert_eq!(Value::Object(base.clone()).to_string(), r#"{"task":"build"}"#);
        let dir = tempfile::tempdir()?;
        let meta = dir.path().join("meta.json");
        std::fs::write(&meta, r#"{"task":"","owner":"ann","n":3}"#)?;
        assert_eq!(Value::Object(overlay(&base, Some(&meta))).to_string(), r#"{"task":"build","owner":"ann","n":"3"}"#);
        std::fs::write(&meta, "[1]")?;
        assert_eq!(overlay(&base, Some(&meta)), base);
        assert_eq!(overlay(&base, Some(&dir.path().join("missing"))), base);
        Ok(())
    }
}
