//! How the CLI fails: one line on stderr, exit 2 for usage errors and 1 for everything else.

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad command line: the message is printed as is (clap's own, or ours), exit 2.
    #[error("{0}")]
    Usage(String),
    /// Help or a clap-rendered message that is not an error (exit 0).
    #[error("{0}")]
    Display(String),
    #[error(transparent)]
    Shield(#[from] terok_shield::Error),
    #[error("{0}")]
    Message(String),
    /// stdout went away (`| head`): not an error.
    #[error("broken pipe")]
    BrokenPipe,
}

impl From<terok_shield_policy::TargetError> for CliError {
    fn from(e: terok_shield_policy::TargetError) -> Self {
        CliError::Shield(e.into())
    }
}

impl CliError {
    pub fn report(&self) -> ExitCode {
        match self {
            CliError::BrokenPipe => ExitCode::SUCCESS,
            CliError::Display(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            CliError::Usage(msg) => {
                eprintln!("{}", msg.trim_end());
                ExitCode::from(2)
            }
            CliError::Shield(e @ terok_shield::Error::Config { .. }) => {
                eprintln!("Error [shield]: {e}");
                ExitCode::from(1)
            }
            other => {
                eprintln!("Error: {other}");
                ExitCode::from(1)
            }
        }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
