//! Container names: they become directory names and nft/podman arguments.

use crate::sanitize::quoted;

/// A name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unsafe {kind} name: {}", quoted(.value))]
pub struct NameError {
    pub kind: &'static str,
    pub value: String,
}

/// `^[A-Za-z0-9_][A-Za-z0-9_.-]*$`, at most 253 characters (podman's own limit is lower).
pub fn validate_container_name(name: &str) -> Result<&str, NameError> {
    validate(name, "container", |b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]*$`, at most 128 characters.
pub fn validate_profile_name(name: &str) -> Result<&str, NameError> {
    let checked = validate(name, "profile", |b| b.is_ascii_alphanumeric())?;
    if checked.len() > 128 {
        return Err(NameError { kind: "profile", value: name.to_string() });
    }
    Ok(checked)
}

fn validate<'a>(name: &'a str, kind: &'static str, first_ok: fn(u8) -> bool) -> Result<&'a str, NameError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 253
        && first_ok(bytes[0])
        && bytes[1..].iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(NameError { kind, value: name.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        for good in ["web", "_x", "a.b-c_d", "0"] {
            assert!(validate_container_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".x", "-x", "a/b", "a b", "../x", "x\n", "é"] {
            assert!(validate_container_name(bad).is_err(), "{bad}");
        }
        let e = validate_container_name("a/b").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("Unsafe container name: 'a/b'"));
    }

    #[test]
    fn profile_names() {
        assert!(validate_profile_name("dev-standard").is_ok());
        assert!(validate_profile_name("_x").is_err());
        assert!(validate_profile_name("../etc").is_err());
        assert!(validate_profile_name(&"a".repeat(129)).is_err());
    }
}
