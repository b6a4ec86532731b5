//! What every verb needs: the environment, the roots and the loaded `config.yml`.

use std::path::PathBuf;

use terok_shield::config::{self, Config};
use terok_shield::paths::{self, Env};
use terok_shield::profiles::ProfileDirs;

use terok_shield::helper::{Helper, HELPER_BINARY};

use crate::error::{CliError, CliResult};
use crate::output;

pub struct Context {
    pub env: Env,
    pub state_root: PathBuf,
    pub config_root: PathBuf,
    pub config: Config,
}

impl Context {
    /// Resolve the roots and load `config.yml`; warnings go to stderr, schema errors fail.
    pub fn load(state_dir_flag: Option<&std::path::Path>) -> CliResult<Context> {
        let env = Env::from_process();
        let state_root = paths::state_root(state_dir_flag, &env)?;
        let config_root = paths::config_root(&env)?;
        let loaded = config::load(&config::config_path(&config_root))?;
        for w in &loaded.warnings {
            output::warn(w);
        }
        Ok(Context { env, state_root, config_root, config: loaded.config })
    }

    pub fn profile_dirs(&self) -> ProfileDirs {
        ProfileDirs::new(&self.config_root)
    }

    pub fn namespace_dir(&self) -> CliResult<PathBuf> {
        Ok(paths::namespace_dir(&self.env)?)
    }

    /// The helper executable, `terok-shield-hook`, installed next to this binary (cargo
    /// install puts both in one directory).
    pub fn helper(&self) -> CliResult<Helper> {
        let exe =
            std::env::current_exe().map_err(|e| CliError::Message(format!("cannot locate the running binary: {e}")))?;
        let helper = exe.with_file_name(HELPER_BINARY);
        if !terok_shield::tools::is_executable(&helper) {
            return Err(CliError::Message(format!(
                "{HELPER_BINARY} not found next to {}; reinstall terok-shield (cargo install installs both)",
                exe.display()
            )));
        }
        Ok(Helper::at(helper))
    }

    /// The `_default` bundle: where checks that need a state dir run.
    pub fn default_state_dir(&self) -> PathBuf {
        paths::container_dir(&self.state_root, "_default")
    }
}
