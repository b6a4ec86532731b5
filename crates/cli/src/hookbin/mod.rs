//! The parts of the helper executable: argument parsing, exit codes and output for each of
//! its entry points; the work itself is the library's.

pub mod hook;
pub mod ns;
pub mod reader;

/// The path of this executable, which is the helper (it starts `<itself> reader …`).
pub fn myself() -> terok_shield::helper::Helper {
    terok_shield::helper::Helper::at(std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into()))
}
