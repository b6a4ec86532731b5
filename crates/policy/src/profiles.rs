//! Profiles: named allowlists in the policy grammar, composed in the requested order.

use std::collections::HashSet;

use crate::grammar::{parse_policy, Action, Entry, PolicyError};
use crate::names::{validate_profile_name, NameError};
use crate::sanitize::quoted;

/// Why a composition failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("Profile not found: {}", quoted(.0))]
    NotFound(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// A profile's text and where it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSource {
    pub origin: String,
    pub text: String,
}

/// The allow entries of one profile, in file order. Deny lines are ignored (a profile is an
/// allowlist); ports and markers are kept, so `+localhost:8000` stays valid.
pub fn profile_entries(source: &ProfileSource) -> Result<Vec<Entry>, PolicyError> {
    Ok(parse_policy(&source.text, &source.origin)?.into_iter().filter(|e| e.action == Action::Allow).collect())
}

/// Compose profiles in order, dropping repeated entries (first wins). `lookup` returns a
/// profile's source, or `None` when no profile of that name exists.
pub fn compose<F>(names: &[String], mut lookup: F) -> Result<Vec<Entry>, ProfileError>
where
    F: FnMut(&str) -> Option<ProfileSource>,
{
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for name in names {
        validate_profile_name(name)?;
        let source = lookup(name).ok_or_else(|| ProfileError::NotFound(name.clone()))?;
        for entry in profile_entries(&source)? {
            if seen.insert(entry.to_string()) {
                out.push(entry);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::render_policy;

    fn lookup(name: &str) -> Option<ProfileSource> {
        let text = match name {
            "a" => "# A\n+one.example\n+two.example\n-ignored.example\n",
            "b" => "+two.example\n+three.example\n+localhost:8000\n",
            "broken" => "+one.example\nnot-an-entry\n",
            _ => return None,
        };
        Some(ProfileSource { origin: format!("profiles/{name}.txt"), text: text.into() })
    }

    #[test]
    fn order_is_kept_and_duplicates_dropped() {
        let out = compose(&["b".into(), "a".into()], lookup).unwrap_or_default();
        assert_eq!(render_policy(&out), "+two.example\n+three.example\n+localhost:8000\n+one.example\n");
    }

    #[test]
    fn errors() {
        let e = |names: &[&str]| {
            compose(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>(), lookup)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(e(&["nope"]), "Profile not found: 'nope'");
        assert_eq!(e(&["../x"]), "Unsafe profile name: '../x'");
        assert!(e(&["broken"]).starts_with("profiles/broken.txt: line 2: entry must start with"));
    }
}
