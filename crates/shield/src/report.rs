//! What the library tells its caller while it works. The library prints nothing: warnings,
//! notes and progress go to a caller-supplied [`Reporter`], and the binary decides how
//! (and whether) to show them.

use std::time::Duration;

/// One thing worth telling the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Report {
    /// A problem that did not stop the work (the CLI prints `Warning [shield]: …`).
    Warning(String),
    /// Something the operator should know (printed as it is).
    Note(String),
    /// Long work going on.
    Progress(Progress),
}

/// Progress of a long resolution (static DNS tiers: many names looked up at prepare).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// `total` names of the `what` list (allowlist, denylist, override) to look up, taking
    /// at most about `max_secs`.
    Resolving { total: usize, what: String, max_secs: u64 },
    /// `done` of `total` looked up.
    Looked { done: usize, total: usize },
    /// All looked up: `addresses` found in `elapsed`.
    Resolved { addresses: usize, elapsed: Duration },
}

/// Where reports go. Shared by the threads that look names up in parallel.
pub type Reporter<'a> = &'a (dyn Fn(Report) + Sync);

/// A reporter that drops everything.
pub fn quiet(_: Report) {}
