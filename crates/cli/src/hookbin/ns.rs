//! `ns <operation> …`: one operation inside a container's namespaces (the CLI started this
//! process there). Exit codes: `terok_shield::helper`.

use std::path::PathBuf;

use terok_shield::helper::NsOp;
use terok_shield_policy::IpNet;
use terok_shield_ruleset::SetId;

/// The longest table listing `end-flows` reads.
const MAX_LISTING: u64 = 64 << 20;

/// Parse the arguments after `ns`.
pub fn parse(args: &[String]) -> Result<NsOp, String> {
    let set = |name: &str| SetId::parse(name).ok_or_else(|| format!("unknown set {name:?}"));
    match args.split_first() {
        Some((op, rest)) if op == "set-element" => {
            let [into, out_of, addr] = rest else {
                return Err("usage: ns set-element <into> <out_of> <address>".into());
            };
            let address =
                addr.parse().map_err(|_| format!("Invalid IP: {}", terok_shield_policy::sanitize::quoted(addr)))?;
            Ok(NsOp::SetElement { into: set(into)?, out_of: set(out_of)?, address })
        }
        Some((op, rest)) if op == "scoped" => {
            let [into, out_of, words @ ..] = rest else {
                return Err("usage: ns scoped <into> <out_of> ELEMENT…".into());
            };
            let elements = words
                .iter()
                .map(|w| {
                    terok_shield_ruleset::Scoped::from_arg(w)
                        .ok_or_else(|| format!("Invalid element: {}", terok_shield_policy::sanitize::quoted(w)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (into, out_of) = (set(into)?, set(out_of)?);
            if !into.is_scoped() || !out_of.is_scoped() || elements.is_empty() {
                return Err("usage: ns scoped <into> <out_of> ELEMENT… (port-scoped sets)".into());
            }
            Ok(NsOp::Scoped { into, out_of, elements })
        }
        Some((op, rest)) if op == "kill-flows" => {
            let nets: Result<Vec<IpNet>, _> = rest.iter().map(|a| a.parse::<IpNet>()).collect();
            Ok(NsOp::KillFlows(nets.map_err(|e| e.to_string())?))
        }
        Some((op, [])) if op == "end-flows" => Ok(NsOp::EndFlows(String::new())),
        Some((op, rest)) if op == "restart-dnsmasq" => match rest {
            [dir] => Ok(NsOp::RestartDnsmasq { state_dir: PathBuf::from(dir) }),
            _ => Err("usage: ns restart-dnsmasq <state_dir>".into()),
        },
        _ => Err("usage: ns set-element|scoped|kill-flows|end-flows|restart-dnsmasq …".into()),
    }
}

pub fn main(args: &[String]) -> u8 {
    let mut op = match parse(args) {
        Ok(op) => op,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    if let NsOp::EndFlows(listing) = &mut op {
        // A listing of the largest allowlists is a few MiB; more is not a listing.
        use std::io::Read as _;
        let mut stdin = std::io::stdin().lock().take(MAX_LISTING + 1);
        if stdin.read_to_string(listing).is_err() || listing.len() as u64 > MAX_LISTING {
            eprintln!("end-flows: stdin is not a table listing of at most {MAX_LISTING} bytes");
            return 2;
        }
    }
    match op.run(std::env::var_os("PATH").as_deref()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            NsOp::exit_code(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_parses_back_from_its_arguments() {
        let host: IpNet = "198.51.100.7".parse().unwrap_or_else(|_| unreachable!());
        for op in [
            NsOp::SetElement {
                into: SetId::live_change(false, host),
                out_of: SetId::live_change(true, host),
                address: host.addr(),
            },
            NsOp::KillFlows(vec![]),
            NsOp::KillFlows(vec![host, "2001:db8::/32".parse().unwrap_or(host)]),
            NsOp::RestartDnsmasq { state_dir: "/s/web".into() },
            NsOp::EndFlows(String::new()),
        ] {
            assert_eq!(parse(&op.args()), Ok(op));
        }
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(parse(&s(&["set-element", "t40_project_allow_v4", "nope", "1.2.3.4"])).is_err());
        assert!(parse(&s(&["set-element", "t40_project_allow_v4", "t20_security_deny_v4", "1.2.3"])).is_err());
        assert!(parse(&s(&["kill-flows", "300.1.1.1"])).is_err());
        assert!(parse(&s(&["bogus"])).is_err());
        assert!(parse(&[]).is_err());
    }
}
