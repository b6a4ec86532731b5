//! The OCI state a runtime passes on stdin: `id`, `pid`, `annotations`. Unknown fields are
//! ignored; what we read must have the right type.

use std::collections::BTreeMap;

use serde_json::Value;

/// Why an OCI state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadOciState {
    #[error("bad OCI state: not JSON ({0})")]
    NotJson(String),
    #[error("bad OCI state: not a JSON object")]
    NotObject,
    #[error("bad OCI state: {0}")]
    Field(&'static str),
    #[error("bad OCI state: annotation {0:?} is not a string")]
    Annotation(String),
    #[error("bad OCI state: larger than 4 MiB")]
    TooLarge,
}

/// The parts of the OCI state the hooks use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OciState {
    pub id: String,
    pub pid: Option<u32>,
    /// The container's OCI bundle directory (where its `config.json` is); empty when the
    /// state names none.
    pub bundle: String,
    pub annotations: BTreeMap<String, String>,
}

impl OciState {
    pub fn parse(bytes: &[u8]) -> Result<OciState, BadOciState> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| BadOciState::NotJson(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(BadOciState::NotObject);
        };
        let id = match map.get("id") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(BadOciState::Field("id is not a string")),
        };
        let pid = match map.get("pid") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_u64()
                    .and_then(|p| u32::try_from(p).ok())
                    .filter(|p| *p > 0)
                    .ok_or(BadOciState::Field("pid is not a positive integer"))?,
            ),
            Some(_) => return Err(BadOciState::Field("pid is not a number")),
        };
        let bundle = match map.get("bundle") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(BadOciState::Field("bundle is not a string")),
        };
        let mut annotations = BTreeMap::new();
        match map.get("annotations") {
            None | Some(Value::Null) => {}
            Some(Value::Object(a)) => {
                for (k, v) in a {
                    let Value::String(s) = v else {
                        return Err(BadOciState::Annotation(k.clone()));
                    };
                    annotations.insert(k.clone(), s.clone());
                }
            }
            Some(_) => return Err(BadOciState::Field("annotations is not an object")),
        }
        Ok(OciState { id, pid, bundle, annotations })
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let s = OciState::parse(
            br#"{"ociVersion":"1.0.2","id":"abc","pid":42,"status":"created","annotations":{"k":"v"}}"#,
        );
        assert_eq!(s.map(|s| (s.id, s.pid, s.annotations.len())), Ok(("abc".into(), Some(42), 1)));
        assert_eq!(OciState::parse(b"{}").map(|s| s.pid), Ok(None));
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{\"annotations\": []}",
            b"{\"annotations\": {\"k\": 1}}",
            b"{\"pid\": -1}",
            b"{\"pid\": \"1\"}",
            b"{\"id\": 5}",
            b"{\"pid\": 0}",
            b"{\"bundle\": 7}",
        ] {
            assert!(OciState::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
