//! The bundle's `ruleset.nft`: the UP table followed by the seed statements. prepare writes
//! it; the hook splits it again and loads the table (the seeds it derives afresh).

use crate::constants::TABLE;
use crate::posture::{render_table, Posture};
use crate::seeds::{seed_statements, Seeds, MAX_ELEMENTS_PER_STATEMENT};
use crate::NetFacts;

/// The complete `ruleset.nft` of a bundle: the UP table, then the seed statements.
pub fn ruleset_nft(facts: &NetFacts, seeds: &Seeds) -> String {
    let mut out = render_table(Posture::Up, facts);
    for stmt in seed_statements(seeds, MAX_ELEMENTS_PER_STATEMENT, MAX_ELEMENTS_PER_STATEMENT) {
        out.push_str(&stmt);
        out.push('\n');
    }
    out
}

/// Why a `ruleset.nft` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptRuleset {
    /// A line after the table that is not one of our seed statements (shown sanitised).
    #[error("ruleset.nft is corrupted: unexpected line {0}")]
    UnexpectedLine(String),
    #[error("ruleset.nft is corrupted: it does not hold the terok_shield table")]
    NoTable,
}

/// The table part of `ruleset.nft`: everything before the seed statements. Every line after
/// the table must be one of our `add element` statements; anything else means the file was
/// tampered with or truncated.
pub fn table_of(text: &str) -> Result<&str, CorruptRuleset> {
    let end = text.find("\nadd element ").map_or(text.len(), |i| i + 1);
    let (table, rest) = text.split_at(end);
    let seed_prefix = format!("add element {TABLE} ");
    for line in rest.lines().filter(|l| !l.trim().is_empty()) {
        if !line.starts_with(&seed_prefix) {
            return Err(CorruptRuleset::UnexpectedLine(terok_shield_policy::sanitize::quoted(line)));
        }
    }
    if !table.trim_start().starts_with(&format!("table {TABLE} {{")) || !table.trim_end().ends_with('}') {
        return Err(CorruptRuleset::NoTable);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_seed_sections() {
        let ok = "table inet terok_shield {\n}\nadd element inet terok_shield t40_project_allow_v4 { 1.2.3.4 }\n";
        assert_eq!(table_of(ok), Ok("table inet terok_shield {\n}\n"));
        assert!(table_of("table inet terok_shield {\n}\n").is_ok());
        assert!(matches!(
            table_of("table inet terok_shield {\n}\nadd element inet terok_shield x { 1.1.1.1 }\nflush ruleset\n"),
            Err(CorruptRuleset::UnexpectedLine(_))
        ));
        assert_eq!(table_of("table inet terok_shield {\n"), Err(CorruptRuleset::NoTable));
        assert_eq!(table_of(""), Err(CorruptRuleset::NoTable));
        assert!(table_of("flush ruleset\n").is_err());
        let generated = ruleset_nft(&NetFacts::pasta(), &Seeds::default());
        assert_eq!(table_of(&generated), Ok(generated.as_str()));
    }
}
