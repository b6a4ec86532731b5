//! `terok-shield-hook <nft|bridge> <createRuntime|poststop>`: the OCI hook entry point.
//! Podman runs it from the descriptors `terok-shield setup` installs; the OCI state comes
//! on stdin. The nft hook exits non-zero on any failure, so podman refuses the start.
//! `terok-shield-hook reader …` is the per-container NFLOG reader the bridge hook starts.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.split_first() {
        Some((verb, rest)) if verb == "reader" => terok_shield::observe::reader::main(rest),
        _ => terok_shield::hook::main(&args),
    };
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
