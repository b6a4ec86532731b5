//! What the container's OCI configuration (`<bundle>/config.json`) must not grant: the
//! hook refuses to start a container whose process could undo or bypass its firewall.
//!
//! * **Capabilities.** CAP_NET_ADMIN rewrites or deletes the table; CAP_NET_RAW sends
//!   packets that no socket rule sees the way the ruleset assumes (raw and packet sockets,
//!   forged neighbour discovery); CAP_SYS_ADMIN can join another process's network
//!   namespace where one is visible (`--pid=host`). None of them may be in any of the five
//!   sets (effective, permitted, bounding, inheritable, ambient): the bounding set also
//!   stops a file capability inside the image from granting them.
//! * **Its own network and process namespaces.** A container without a `network` namespace
//!   entry runs in the host's: the hook would load the table there. One without a `pid`
//!   namespace sees the host's processes, a way out as the same user.
//! * **A capabilities object**: without one the runtime keeps its full set.
//!
//! `run` refuses the podman flags that lead here (`--privileged`, `--cap-add`, `--network`,
//! `--pod`, `--pid`); this check holds for a container started any other way, with the shield's
//! annotations.

use serde_json::Value;

/// The capabilities a shielded process must not have.
pub const FORBIDDEN_CAPS: [&str; 3] = ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"];

const SETS: [&str; 5] = ["effective", "permitted", "bounding", "inheritable", "ambient"];

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigRefusal {
    #[error("bad OCI config.json: {0}")]
    Malformed(String),
    /// Each forbidden capability held, with its sets: `CAP_NET_RAW (bounding, ambient)`.
    #[error("the container's process would hold {0}: start it without --privileged or --cap-add")]
    Capability(String),
    #[error(
        "the container has no network namespace of its own (it shares the host's): a shielded container needs one"
    )]
    HostNetwork,
    #[error(
        "the container shares the host's process namespace (--pid=host): its processes could act outside the firewall"
    )]
    HostPids,
    #[error("the container's config.json names no capabilities: the runtime would keep its full set")]
    NoCapabilities,
}

/// Check a `config.json`.
pub fn check(bytes: &[u8]) -> Result<(), ConfigRefusal> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ConfigRefusal::Malformed(e.to_string()))?;
    let malformed = |what: &str| ConfigRefusal::Malformed(what.to_string());
    // No capabilities object would leave the runtime's own full set in place (runc drops
    // nothing then): refused.
    let caps = match value.pointer("/process/capabilities") {
        None | Some(Value::Null) => return Err(ConfigRefusal::NoCapabilities),
        Some(Value::Object(c)) => c,
        Some(_) => return Err(malformed("process.capabilities is not an object")),
    };
    let mut holds = Vec::new();
    for cap in FORBIDDEN_CAPS {
        let mut held = Vec::new();
        for set in SETS {
            let list = match caps.get(set) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(list)) => list,
                Some(_) => return Err(ConfigRefusal::Malformed(format!("process.capabilities.{set} is not a list"))),
            };
            for item in list {
                let Value::String(name) = item else {
                    return Err(ConfigRefusal::Malformed(format!("process.capabilities.{set} holds a non-string")));
                };
                if name.eq_ignore_ascii_case(cap) || name.eq_ignore_ascii_case(&cap[4..]) {
                    held.push(set);
                    break;
                }
            }
        }
        if !held.is_empty() {
            holds.push(format!("{cap} ({})", held.join(", ")));
        }
    }
    if !holds.is_empty() {
        return Err(ConfigRefusal::Capability(holds.join(", ")));
    }
    let namespaces = match value.pointer("/linux/namespaces") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(n)) => n,
        Some(_) => return Err(malformed("linux.namespaces is not a list")),
    };
    let has = |kind: &str| namespaces.iter().any(|n| n.get("type").and_then(Value::as_str) == Some(kind));
    if !has("network") {
        return Err(ConfigRefusal::HostNetwork);
    }
    // The host's processes in view (`--pid=host`) are a way out of the namespace: their
    // `/proc/<pid>/root` and their files, as the same user.
    if !has("pid") {
        return Err(ConfigRefusal::HostPids);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(caps: &str, namespaces: &str) -> Vec<u8> {
        format!(r#"{{"ociVersion":"1.0.2","process":{{"capabilities":{caps}}},"linux":{{"namespaces":{namespaces}}}}}"#)
            .into_bytes()
    }

    const NET: &str = r#"[{"type":"pid"},{"type":"network","path":"/run/netns/netns-1"}]"#;

    #[test]
    fn a_plain_container_passes() {
        let caps = r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_CHOWN"],"permitted":["CAP_CHOWN"]}"#;
        assert_eq!(check(&config(caps, NET)), Ok(()));
        assert_eq!(check(&config("{}", NET)), Ok(()), "an empty set of each kind");
    }

    #[test]
    fn a_forbidden_capability_in_any_set_is_refused() {
        for set in SETS {
            for cap in FORBIDDEN_CAPS {
                let caps = format!(r#"{{"{set}":["CAP_CHOWN","{cap}"]}}"#);
                assert_eq!(
                    check(&config(&caps, NET)),
                    Err(ConfigRefusal::Capability(format!("{cap} ({set})"))),
                    "{set} {cap}"
                );
            }
        }
        let two = r#"{"bounding":["cap_net_raw","CAP_SYS_ADMIN"],"ambient":["NET_RAW"]}"#;
        assert_eq!(
            check(&config(two, NET)),
            Err(ConfigRefusal::Capability("CAP_NET_RAW (bounding, ambient), CAP_SYS_ADMIN (bounding)".into()))
        );
    }

    #[test]
    fn the_host_network_and_garbage_are_refused() {
        assert_eq!(check(&config("{}", r#"[{"type":"pid"}]"#)), Err(ConfigRefusal::HostNetwork));
        assert_eq!(check(&config("{}", r#"[{"type":"network"}]"#)), Err(ConfigRefusal::HostPids));
        assert_eq!(check(&config("null", NET)), Err(ConfigRefusal::NoCapabilities));
        assert_eq!(check(br#"{"ociVersion":"1.0.2"}"#), Err(ConfigRefusal::NoCapabilities));
        for bad in [
            &b"not json"[..],
            br#"{"process":{"capabilities":[]}}"#,
            br#"{"process":{"capabilities":{"bounding":"CAP_NET_RAW"}}}"#,
            br#"{"process":{"capabilities":{"bounding":[1]}}}"#,
            br#"{"process":{"capabilities":{}},"linux":{"namespaces":{}}}"#,
        ] {
            assert!(matches!(check(bad), Err(ConfigRefusal::Malformed(_))), "{}", String::from_utf8_lossy(bad));
        }
    }
}
