//! A reader's command line: what the hook starts it with.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// What a reader is started with, as the hooks write it after `<helper> reader`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderSpec {
    pub state_dir: PathBuf,
    /// The name audit rows and events carry.
    pub container: String,
    /// `--emit=json`: events as lines to the caller instead of the hub socket.
    pub json: bool,
    pub annotations: Map<String, Value>,
    pub container_id: String,
    pub hub_socket: Option<PathBuf>,
    /// Enter this process's network namespace first.
    pub netns_pid: Option<u32>,
    /// `--dns=<addr>`: also be the container's resolver, listening on `<addr>:53`.
    pub dns: Option<IpAddr>,
}

impl ReaderSpec {
    /// The arguments after `reader`.
    pub fn args(&self) -> Vec<String> {
        let mut v = vec![
            self.state_dir.display().to_string(),
            self.container.clone(),
            format!("--emit={}", if self.json { "json" } else { "socket" }),
            format!("--annotations={}", Value::Object(self.annotations.clone())),
            format!("--container-id={}", self.container_id),
        ];
        if let Some(h) = &self.hub_socket {
            v.push(format!("--hub-socket={}", h.display()));
        }
        if let Some(pid) = self.netns_pid {
            v.push(format!("--netns-pid={pid}"));
        }
        if let Some(dns) = self.dns {
            v.push(format!("--dns={dns}"));
        }
        v
    }

    /// `argv` (a process's command line) is a socket-emitting reader of `state_dir`:
    /// `<helper> reader <state_dir> <container> … --emit=socket …`.
    pub fn is_socket_reader_of(argv: &[Vec<u8>], state_dir: &Path) -> bool {
        argv.len() >= 4
            && argv[1] == b"reader"
            && argv[2] == state_dir.as_os_str().as_encoded_bytes()
            && argv[4..].iter().any(|a| a == b"--emit=socket")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[String]) -> Vec<Vec<u8>> {
        ["/h/terok-shield-hook", "reader"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .chain(args.iter().map(|a| a.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn arguments_and_recognition() {
        let spec = ReaderSpec {
            state_dir: "/s/web".into(),
            container: "web".into(),
            annotations: serde_json::from_str(r#"{"dossier.x":"1"}"#).unwrap_or_default(),
            container_id: "0123456789ab".into(),
            netns_pid: Some(42),
            dns: Some([127, 0, 0, 1].into()),
            ..ReaderSpec::default()
        };
        let args = spec.args();
        assert_eq!(args[..3], ["/s/web", "web", "--emit=socket"]);
        for want in ["--netns-pid=42", r#"--annotations={"dossier.x":"1"}"#, "--dns=127.0.0.1"] {
            assert!(args.contains(&want.to_string()), "{want}: {args:?}");
        }
        assert!(ReaderSpec::is_socket_reader_of(&argv(&args), Path::new("/s/web")));
        assert!(!ReaderSpec::is_socket_reader_of(&argv(&args), Path::new("/s/other")));
        let json = ReaderSpec { json: true, ..spec }.args();
        assert!(!ReaderSpec::is_socket_reader_of(&argv(&json), Path::new("/s/web")));
    }
}
