//! The bundle's `policy/` directory: one file per tier plus the live overlay.
//!
//! Reading: a missing file is an empty tier; a bad line fails with the file's path and the
//! line number. Writing: atomic (temp file + rename) and only when the content changes, so
//! mtimes stay meaningful as the freshness reference of the resolution caches.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use terok_shield_policy::{parse_policy, render_policy, Entry, Tier, TierSet};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// `<state_dir>/policy`.
pub fn policy_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("policy")
}

/// Path of one tier's file.
pub fn tier_path(state_dir: &Path, tier: Tier) -> PathBuf {
    policy_dir(state_dir).join(tier.file_name())
}

/// Create `state_dir` and `policy/` and force both to 0700 (umask-proof).
pub fn ensure_dirs(state_dir: &Path) -> Result<()> {
    crate::fsutil::mkdir_700(state_dir)?;
    crate::fsutil::mkdir_700(&policy_dir(state_dir))
}

/// Read one tier; a missing file is an empty tier.
pub fn read_tier(state_dir: &Path, tier: Tier) -> Result<Vec<Entry>> {
    let path = tier_path(state_dir, tier);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse_policy(&text, &path.display().to_string())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Read every tier.
pub fn read_tiers(state_dir: &Path) -> Result<TierSet> {
    let mut set = TierSet::default();
    for tier in Tier::ALL {
        *set.get_mut(tier) = read_tier(state_dir, tier)?;
    }
    Ok(set)
}

/// Write one tier in canonical form; returns whether the file changed.
pub fn write_tier(state_dir: &Path, tier: Tier, entries: &[Entry]) -> Result<bool> {
    let path = tier_path(state_dir, tier);
    let text = render_policy(entries);
    if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(false);
    }
    write_atomic(&path, text.as_bytes(), 0o600)?;
    Ok(true)
}

/// Newest mtime among the tier files (UNIX_EPOCH when none exists): the freshness reference
/// of resolution caches.
pub fn policy_mtime(state_dir: &Path) -> SystemTime {
    Tier::ALL
        .iter()
        .filter_map(|t| std::fs::metadata(tier_path(state_dir, *t)).and_then(|m| m.modified()).ok())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use terok_shield_policy::overlay::upsert;
    use terok_shield_policy::{Action, Target};

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn round_trip_with_modes_and_unchanged_writes() -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmp();
        let sd = dir.path().join("containers/web");
        ensure_dirs(&sd)?;
        assert_eq!(read_tiers(&sd)?, TierSet::default());
        assert_eq!(policy_mtime(&sd), SystemTime::UNIX_EPOCH);
        let entries = parse_policy("+B.example\n-10.1.2.3/8\n", "t")?;
        assert!(write_tier(&sd, Tier::ProjectAllow, &entries)?);
        assert!(!write_tier(&sd, Tier::ProjectAllow, &entries)?, "unchanged content is not rewritten");
        assert_eq!(
            std::fs::read_to_string(tier_path(&sd, Tier::ProjectAllow)).unwrap_or_default(),
            "+b.example\n-10.0.0.0/8\n"
        );
        assert_eq!(read_tiers(&sd)?.project_allow, entries);
        assert!(policy_mtime(&sd) > SystemTime::UNIX_EPOCH);
        let mode = std::fs::metadata(policy_dir(&sd)).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o700);
        Ok(())
    }

    #[test]
    fn live_overlay_last_writer_wins_on_disk() -> Result<()> {
        let dir = tmp();
        ensure_dirs(dir.path())?;
        let mut live = read_tier(dir.path(), Tier::Live)?;
        upsert(&mut live, Entry::new(Action::Allow, Target::parse("198.51.100.10")?));
        upsert(&mut live, Entry::new(Action::Deny, Target::parse("198.51.100.10/32")?));
        write_tier(dir.path(), Tier::Live, &live)?;
        let again = read_tiers(dir.path())?;
        assert_eq!(render_policy(&again.live), "-198.51.100.10\n");
        assert_eq!(again.effective().denies.len(), 1);
        Ok(())
    }

    #[test]
    fn a_bad_line_names_the_file_and_line() {
        let dir = tmp();
        let _ = ensure_dirs(dir.path());
        let path = tier_path(dir.path(), Tier::SecurityDeny);
        let _ = std::fs::write(&path, "-ok.example\n-1.2.3\n");
        let e = read_tiers(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(e, format!("{}: line 2: Invalid IP/CIDR: '1.2.3' ('-1.2.3')", path.display()));
    }
}
