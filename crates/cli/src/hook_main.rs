//! `terok-shield-hook`: the helper executable (its interface: `terok_shield::helper`).
//!
//! * `nft|bridge <createRuntime|poststop>`: the OCI hooks podman runs from the descriptors
//!   `terok-shield setup` installs, with the OCI state on stdin. The nft hook exits non-zero
//!   on any failure (panics included), so the runtime refuses the start.
//! * `reader …`: the per-container NFLOG reader the bridge hook starts.
//! * `ns …`: one operation inside a container's namespaces, for the CLI's live verbs.
//!
//! It links no command-line machinery: it is on every container start.

mod hookbin;
mod process;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.split_first() {
        Some((verb, rest)) if verb == "reader" => hookbin::reader::main(rest),
        Some((verb, rest)) if verb == "ns" => hookbin::ns::main(rest),
        _ => hookbin::hook::main(&args),
    };
    std::process::ExitCode::from(code)
}
