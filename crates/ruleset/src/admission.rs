//! Would a listed table accept a flow? An interpreter of the output chain of `nft list table
//! inet terok_shield`, used to end the flows a stricter posture (or a `reset`) no longer
//! admits: conntrack carries an established flow past the rules, so the controller lists
//! the flows and asks, per flow, what the table now in the kernel says of a new packet
//! with the same destination.
//!
//! The table judged is the kernel's own listing, not the generator's intent, and every
//! doubt resolves towards ending the flow: a condition this interpreter does not know
//! counts as not matching in an accepting rule and as matching in a rejecting one.

use std::net::IpAddr;

use terok_shield_policy::IpNet;

/// A tracked flow, by what the output chain looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6, …).
    pub proto: u8,
    pub dst: IpAddr,
    /// The destination port of a tcp or udp flow.
    pub dport: Option<u16>,
    /// The flow leaves through `lo` (its destination is one of the namespace's own addresses).
    pub local: bool,
}

const TCP: u8 = 6;
const UDP: u8 = 17;

/// An element of a set: one network, or a range nft printed as `a-b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    Net(IpNet),
    Range(IpAddr, IpAddr),
}

impl Element {
    fn parse(word: &str) -> Option<Element> {
        if let Ok(net) = word.parse::<IpNet>() {
            return Some(Element::Net(net));
        }
        let (lo, hi) = word.split_once('-')?;
        Some(Element::Range(lo.parse().ok()?, hi.parse().ok()?))
    }

    fn contains(&self, a: IpAddr) -> bool {
        match *self {
            Element::Net(n) => n.contains(&IpNet::host(a)),
            Element::Range(lo, hi) => lo.is_ipv4() == a.is_ipv4() && lo <= a && a <= hi,
        }
    }
}

/// The elements of one listed set: single addresses hashed (a set can hold a large
/// allowlist, and every flow is looked up), networks and ranges in a list, and whether an
/// element could not be read (a doubt).
#[derive(Debug, Default)]
struct Elements {
    hosts: std::collections::HashSet<IpAddr>,
    others: Vec<Element>,
    /// Port-scoped elements: address part, protocol number, port range.
    scoped: Vec<(Element, u8, u16, u16)>,
    /// A port map's elements: first and last address, the mark (sorted, disjoint).
    mapped: Vec<(IpAddr, IpAddr, u32)>,
    /// A scope set's elements: mark, protocol number, port range.
    marked: Vec<(u32, u8, u16, u16)>,
    unreadable: bool,
}

impl Elements {
    fn contains(&self, a: IpAddr) -> bool {
        self.hosts.contains(&a) || self.others.iter().any(|e| e.contains(a))
    }

    fn admits(&self, flow: &Flow) -> bool {
        let Some(port) = flow.dport else { return false };
        self.scoped
            .iter()
            .any(|(e, proto, lo, hi)| *proto == flow.proto && *lo <= port && port <= *hi && e.contains(flow.dst))
    }

    /// The mark a port map gives `a`; `None` when no range holds it.
    fn mark_of(&self, a: IpAddr) -> Option<u32> {
        let at = self.mapped.partition_point(|(_, hi, _)| *hi < a);
        self.mapped.get(at).filter(|(lo, _, _)| *lo <= a).map(|(_, _, m)| *m)
    }

    fn admits_marked(&self, mark: u32, flow: &Flow) -> bool {
        let Some(port) = flow.dport else { return false };
        self.marked.iter().any(|(m, proto, lo, hi)| *m == mark && *proto == flow.proto && *lo <= port && port <= *hi)
    }

    /// Read `a . tcp . 443`, `a . udp . 8000-8100` or `0x5e400001 . tcp . 443` (the words
    /// of one listed element).
    fn push_scoped(&mut self, words: &[&str]) {
        let parsed = match words {
            [key, ".", proto, ".", ports, ..] => (|| {
                let proto = match *proto {
                    "tcp" => TCP,
                    "udp" => UDP,
                    n => n.parse().ok()?,
                };
                let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
                let (lo, hi) = (lo.parse().ok()?, hi.parse().ok()?);
                match mark(key) {
                    Some(m) => self.marked.push((m, proto, lo, hi)),
                    None => self.scoped.push((Element::parse(key)?, proto, lo, hi)),
                }
                Some(())
            })(),
            _ => None,
        };
        if parsed.is_none() {
            self.unreadable = true;
        }
    }

    /// Read `10.0.0.0/16 : 0x5e400001` or `10.1.0.0-10.1.0.9 : 0x5e400002`.
    fn push_mapped(&mut self, words: &[&str]) {
        let parsed = match words {
            [key, ":", value, ..] => (|| {
                let (lo, hi) = match Element::parse(key)? {
                    Element::Net(n) => (n.addr(), n.last()),
                    Element::Range(lo, hi) => (lo, hi),
                };
                Some((lo, hi, mark(value)?))
            })(),
            _ => None,
        };
        match parsed {
            Some(el) => self.mapped.push(el),
            None => self.unreadable = true,
        }
    }
}

/// A mark as nft prints it (`0x5e400001`).
fn mark(word: &str) -> Option<u32> {
    u32::from_str_radix(word.strip_prefix("0x")?, 16).ok()
}

/// What the interpreter knows of the packet mark. A flow's packet is judged with mark 0:
/// the table clears a mark in the scope-id range before its first port map, and no scope
/// set holds a mark outside that range, so any mark the socket set reads the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Known(u32),
    Unknown,
}

/// The parts of a listing the output chain's verdict depends on; each rule split into its
/// words once.
#[derive(Debug, Default)]
pub struct Listing {
    sets: Vec<(String, Elements)>,
    output: Vec<Vec<String>>,
    policy_accepts: bool,
}

/// What one condition says of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Says {
    Yes,
    No,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Refuse,
    /// `jump`, `goto`, `return`, `continue`, …: not ours.
    Other,
}

impl Listing {
    /// Read a listing (the text of `nft list table inet terok_shield`).
    pub fn parse(text: &str) -> Listing {
        let mut l = Listing::default();
        let mut depth = 0usize;
        let mut set: Option<(String, String)> = None;
        let mut in_output = false;
        for raw in text.lines() {
            let line = raw.trim();
            let opens = line.matches('{').count();
            let closes = line.matches('}').count();
            if depth == 1 && opens > 0 && opens == closes {
                // A set declared on one line (as the generator writes it).
                let declared = line.strip_prefix("set ").or_else(|| line.strip_prefix("map "));
                if let Some(name) = declared.and_then(|r| r.split_whitespace().next()) {
                    l.sets.push((name.to_string(), elements(line)));
                }
            } else if depth == 1 && opens > closes {
                let mut words = line.split_whitespace();
                match (words.next(), words.next()) {
                    (Some("set" | "map"), Some(name)) => set = Some((name.to_string(), String::new())),
                    (Some("chain"), Some(name)) => in_output = name == "output",
                    _ => {}
                }
            } else if let Some((_, body)) = set.as_mut() {
                body.push_str(line);
                body.push(' ');
            } else if depth == 2 && in_output && !line.is_empty() {
                if line.starts_with("type ") {
                    l.policy_accepts = line.contains("policy accept");
                } else {
                    l.output.push(tokens(line));
                }
            }
            depth = (depth + opens).saturating_sub(closes);
            if depth < 2 {
                if let Some((name, body)) = set.take() {
                    l.sets.push((name, elements(&body)));
                }
                in_output = false;
            }
        }
        l
    }

    /// True when a new packet of `flow` would pass the output chain.
    pub fn admits(&self, flow: &Flow) -> bool {
        let mut mark = Mark::Known(0);
        for rule in &self.output {
            let (says, verdict) = self.judge(rule, flow, &mut mark);
            let Some(verdict) = verdict else { continue };
            let matched = match says {
                Says::Yes => true,
                Says::No => false,
                // Doubt ends the flow: an unknown accept does not match, anything else does.
                Says::Unknown => verdict != Verdict::Accept,
            };
            if matched {
                return verdict == Verdict::Accept;
            }
        }
        self.policy_accepts
    }

    /// What a rule's conditions say of `flow`, and its verdict (`None`: it has none, like
    /// a rule that only logs).
    /// `mark` is the packet mark before the rule and after it (a rule may set it).
    fn judge(&self, words: &[String], flow: &Flow, mark: &mut Mark) -> (Says, Option<Verdict>) {
        let mut says = Says::Yes;
        let mut verdict = None;
        let mut i = 0;
        let word = |k: usize| words.get(k).map(String::as_str);

        while let Some(w) = word(i) {
            i += 1;
            match w {
                "ip" | "ip6"
                    if word(i) == Some("daddr")
                        && words
                            .get(i + 1..i + 7)
                            .is_some_and(|w| w == [".", "meta", "l4proto", ".", "th", "dport"]) =>
                {
                    let v6 = w == "ip6";
                    both(
                        &mut says,
                        match word(i + 7).and_then(|v| v.strip_prefix('@')) {
                            _ if v6 != flow.dst.is_ipv6() => Says::No,
                            Some(name) => self.scoped(name, flow),
                            None => Says::Unknown,
                        },
                    );
                    i += 8;
                }
                "ip" | "ip6" if word(i) == Some("daddr") => {
                    let v6 = w == "ip6";
                    let negated = word(i + 1) == Some("!=");
                    let value = word(i + if negated { 2 } else { 1 });
                    both(
                        &mut says,
                        match (v6 != flow.dst.is_ipv6(), self.daddr(value, flow.dst)) {
                            (true, _) => Says::No,
                            (false, Says::Yes) if negated => Says::No,
                            (false, Says::No) if negated => Says::Yes,
                            (false, says) => says,
                        },
                    );
                    i += if negated { 3 } else { 2 };
                }
                "meta" if word(i) == Some("mark") => {
                    let (s, used) = self.meta_mark(&words[i + 1..], says, flow, mark);
                    both(&mut says, s);
                    i += 1 + used;
                }
                "tcp" | "udp" if word(i) == Some("dport") => {
                    let proto = if w == "tcp" { TCP } else { UDP };
                    both(
                        &mut says,
                        match word(i + 1).map(str::parse::<u16>) {
                            _ if flow.proto != proto => Says::No,
                            Some(Ok(p)) => yes(flow.dport == Some(p)),
                            _ => Says::Unknown,
                        },
                    );
                    i += 2;
                }
                // Neighbour discovery and MLD are never tracked flows.
                "icmp" | "icmpv6" if word(i) == Some("type") => {
                    both(&mut says, Says::No);
                    i += 2;
                }
                "oifname" => {
                    both(&mut says, if word(i) == Some("\"lo\"") { yes(flow.local) } else { Says::Unknown });
                    i += 1;
                }
                // The flow is judged as a new packet would be.
                "ct" if word(i) == Some("state") => {
                    both(&mut says, yes(word(i + 1).is_some_and(|s| s.split(',').any(|s| s == "new"))));
                    i += 2;
                }
                "log" => {
                    while let Some(arg) = word(i) {
                        match arg {
                            "prefix" | "group" | "level" | "flags" | "snaplen" | "queue-threshold" => i += 2,
                            _ => break,
                        }
                    }
                }
                "counter" => {
                    while matches!(word(i), Some("packets" | "bytes")) {
                        i += 2;
                    }
                }
                "accept" => verdict = Some(Verdict::Accept),
                "drop" | "reject" => {
                    verdict = Some(Verdict::Refuse);
                    break;
                }
                "jump" | "goto" | "return" | "continue" | "queue" => {
                    verdict = Some(Verdict::Other);
                    break;
                }
                _ => both(&mut says, Says::Unknown),
            }
        }
        // A verdict that is not ours decides nothing this interpreter can vouch for.
        match verdict {
            Some(Verdict::Other) => (Says::Unknown, Some(Verdict::Refuse)),
            v => (says, v),
        }
    }

    /// The words after `meta mark`: a condition on the mark (`0x5e000000/8`), a match of
    /// mark, protocol and port against a scope set (`. meta l4proto . th dport @s`), or a
    /// statement setting the mark (`set 0x00000000`, `set ip daddr map @m`), which acts
    /// only when the rule's conditions so far (`so_far`) hold. Returns what it says and how
    /// many words it used.
    fn meta_mark(&self, rest: &[String], so_far: Says, flow: &Flow, mark: &mut Mark) -> (Says, usize) {
        let w = |k: usize| rest.get(k).map(String::as_str);
        let set_to = |mark: &mut Mark, value: Mark| {
            *mark = match so_far {
                Says::Yes => value,
                Says::No => *mark,
                Says::Unknown if value == *mark => value,
                Says::Unknown => Mark::Unknown,
            }
        };
        if rest.get(..6).is_some_and(|r| r == [".", "meta", "l4proto", ".", "th", "dport"]) {
            let says = match (w(6).and_then(|v| v.strip_prefix('@')), *mark) {
                (Some(name), Mark::Known(m)) => match self.sets.iter().find(|(n, _)| n == name) {
                    Some((_, e)) if e.admits_marked(m, flow) => Says::Yes,
                    Some((_, e)) if !e.unreadable => Says::No,
                    _ => Says::Unknown,
                },
                _ => Says::Unknown,
            };
            return (says, 7);
        }
        if w(0) == Some("set") {
            if matches!(w(1), Some("ip" | "ip6")) && w(2) == Some("daddr") && w(3) == Some("map") {
                if (w(1) == Some("ip6")) == flow.dst.is_ipv6() {
                    match w(4).and_then(|v| v.strip_prefix('@')).and_then(|n| self.sets.iter().find(|(s, _)| s == n)) {
                        Some((_, e)) => match e.mark_of(flow.dst) {
                            Some(m) => set_to(mark, Mark::Known(m)),
                            None if e.unreadable => set_to(mark, Mark::Unknown),
                            None => {}
                        },
                        None => set_to(mark, Mark::Unknown),
                    }
                }
                return (Says::Yes, 5);
            }
            set_to(mark, w(1).and_then(self::mark).map_or(Mark::Unknown, Mark::Known));
            return (Says::Yes, 2);
        }
        // `meta mark VALUE/BITS` or `meta mark VALUE`.
        let says = match (w(0).map(|v| v.split_once('/').unwrap_or((v, "32"))), *mark) {
            (Some((value, bits)), Mark::Known(m)) => match (self::mark(value), bits.parse::<u32>()) {
                (Some(v), Ok(bits @ 0..=32)) => {
                    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                    yes(m & mask == v & mask)
                }
                _ => Says::Unknown,
            },
            _ => Says::Unknown,
        };
        (says, 1)
    }

    /// `daddr . meta l4proto . th dport @name`: a port-scoped set.
    fn scoped(&self, name: &str, flow: &Flow) -> Says {
        let Some((_, elements)) = self.sets.iter().find(|(n, _)| n == name) else { return Says::Unknown };
        if elements.admits(flow) {
            return Says::Yes;
        }
        if elements.unreadable {
            Says::Unknown
        } else {
            Says::No
        }
    }

    /// `daddr VALUE`: a set (`@name`), a network, or a range.
    fn daddr(&self, value: Option<&str>, dst: IpAddr) -> Says {
        let Some(value) = value else { return Says::Unknown };
        if let Some(name) = value.strip_prefix('@') {
            let Some((_, elements)) = self.sets.iter().find(|(n, _)| n == name) else { return Says::Unknown };
            if elements.contains(dst) {
                return Says::Yes;
            }
            return if elements.unreadable { Says::Unknown } else { Says::No };
        }
        match Element::parse(value) {
            Some(e) => yes(e.contains(dst)),
            None => Says::Unknown,
        }
    }
}

/// `says` and `s` both.
fn both(says: &mut Says, s: Says) {
    *says = match (*says, s) {
        (Says::No, _) | (_, Says::No) => Says::No,
        (Says::Unknown, _) | (_, Says::Unknown) => Says::Unknown,
        _ => Says::Yes,
    }
}

fn yes(b: bool) -> Says {
    if b {
        Says::Yes
    } else {
        Says::No
    }
}

/// The elements of a set body (`… elements = { a, b timeout 1h expires 59m, c-d } …`); an
/// element that does not parse is a doubt.
fn elements(body: &str) -> Elements {
    let mut out = Elements::default();
    let Some(inner) = body.split("elements = {").nth(1).and_then(|b| b.split('}').next()) else {
        return out;
    };
    for atom in inner.split(',') {
        let words: Vec<&str> = atom.split_whitespace().collect();
        let Some(word) = words.first().copied() else { continue };
        if words.get(1) == Some(&":") {
            out.push_mapped(&words);
            continue;
        }
        if words.get(1) == Some(&".") {
            out.push_scoped(&words);
            continue;
        }
        match Element::parse(word) {
            Some(Element::Net(n)) if n.is_host() => {
                out.hosts.insert(n.addr());
            }
            Some(e) => out.others.push(e),
            None => out.unreadable = true,
        }
    }
    out.mapped.sort_unstable();
    out
}

/// A rule's words: quoted strings and `{ … }` groups kept whole.
fn tokens(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut braces = 0usize;
    for c in rule.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '{' if !quoted => {
                braces += 1;
                cur.push(c);
            }
            '}' if !quoted => {
                braces = braces.saturating_sub(1);
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted && braces == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::NetFacts;
    use crate::posture::{render_table, Posture};

    fn flow(dst: &str, proto: u8, dport: Option<u16>) -> Flow {
        Flow { proto, dst: dst.parse().unwrap_or_else(|e| panic!("{dst}: {e}")), dport, local: false }
    }

    /// What `nft list table` printed for an UP table on this project's test machine (nft
    /// 1.0.6, kernel 6.1), trimmed to the rules and sets the cases use.
    const LISTED_UP: &str = r#"table inet terok_shield {
	set t10_override_v4 {
		type ipv4_addr
		elements = { 10.222.222.10 }
	}
	set t20_security_deny_v4 {
		type ipv4_addr
		elements = { 198.51.100.12 }
	}
	set t40_project_allow_v4 {
		type ipv4_addr
		elements = { 198.51.100.10, 198.51.100.20,
			     198.51.100.21 }
	}
	set t40_project_allow_net_v6 {
		type ipv6_addr
		flags interval
		elements = { 2001:db8:100::/64 }
	}
	set t40_dns_v4 {
		type ipv4_addr
		flags timeout
		timeout 30m
		elements = { 198.51.100.30 timeout 30m expires 29m58s764ms }
	}
	set t40_window_v4 {
		type ipv4_addr
		flags interval,timeout
		elements = { 198.51.100.40-198.51.100.42 timeout 5m expires 4m2s }
	}

	chain output {
		type filter hook output priority filter; policy drop;
		oifname "lo" accept
		ct state established,related accept
		icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
		tcp dport 8080 ip daddr 10.0.2.2 accept
		ip daddr 169.254.0.0/16 log prefix "TEROK_SHIELD_PRIVATE: " group 100 reject with icmpx admin-prohibited
		ip daddr @t10_override_v4 log prefix "TEROK_SHIELD_ALLOWED: " group 100 counter packets 0 bytes 0 accept
		ip daddr @t20_security_deny_v4 log prefix "TEROK_SHIELD_DENIED: " group 100 counter packets 0 bytes 0 reject with icmpx admin-prohibited
		ip daddr 10.0.0.0/8 log prefix "TEROK_SHIELD_PRIVATE: " group 100 reject with icmpx admin-prohibited
		ip daddr @t40_project_allow_v4 log prefix "TEROK_SHIELD_ALLOWED: " group 100 counter packets 3 bytes 180 accept
		ip6 daddr @t40_project_allow_net_v6 log prefix "TEROK_SHIELD_ALLOWED: " group 100 counter packets 0 bytes 0 accept
		ip daddr @t40_dns_v4 log prefix "TEROK_SHIELD_ALLOWED: " group 100 counter packets 0 bytes 0 accept
		ip daddr @t40_window_v4 log prefix "TEROK_SHIELD_BYPASS: " group 100 counter packets 0 bytes 0 accept
		log prefix "TEROK_SHIELD_BLOCKED: " group 100 counter packets 9 bytes 540 reject with icmpx admin-prohibited
	}

	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ct state established,related accept
		drop
	}
}
"#;

    #[test]
    fn an_up_listing_admits_exactly_its_allowlist() {
        let l = Listing::parse(LISTED_UP);
        for (dst, proto, port) in [
            ("198.51.100.10", TCP, Some(443)),
            ("198.51.100.21", UDP, Some(7000)),
            ("2001:db8:100::11", TCP, Some(80)),
            ("198.51.100.30", TCP, Some(80)),
            ("198.51.100.41", TCP, Some(80)),
            ("10.222.222.10", TCP, Some(80)),
            ("10.0.2.2", TCP, Some(8080)),
            ("198.51.100.10", 1, None),
        ] {
            assert!(l.admits(&flow(dst, proto, port)), "{dst} {proto} {port:?} is allowed");
        }
        for (dst, proto, port) in [
            ("198.51.100.11", TCP, Some(7000)),
            ("198.51.100.11", UDP, Some(7000)),
            ("198.51.100.12", TCP, Some(80)),
            ("198.51.100.43", TCP, Some(80)),
            ("10.0.2.2", TCP, Some(22)),
            ("10.0.2.2", UDP, Some(8080)),
            ("10.222.222.11", TCP, Some(80)),
            ("169.254.169.254", TCP, Some(80)),
            ("2001:db8:101::1", TCP, Some(80)),
            ("198.51.100.11", 1, None),
        ] {
            assert!(!l.admits(&flow(dst, proto, port)), "{dst} {proto} {port:?} is not allowed");
        }
        assert!(l.admits(&Flow { local: true, ..flow("198.51.100.11", TCP, Some(80)) }), "lo is accepted");
    }

    #[test]
    fn every_posture_the_generator_renders_is_judged() {
        let f =
            NetFacts { dns: Some("10.0.2.3".parse().unwrap_or_else(|_| unreachable!())), ..NetFacts::slirp4netns() };
        let judge = |p: Posture, dst: &str, proto: u8, port: u16| {
            Listing::parse(&render_table(p, &f)).admits(&flow(dst, proto, Some(port)))
        };
        // UP with empty sets: only DNS to the forwarder.
        assert!(judge(Posture::Up, "10.0.2.3", UDP, 53));
        assert!(!judge(Posture::Up, "10.0.2.3", UDP, 54));
        assert!(!judge(Posture::Up, "198.51.100.11", TCP, 80));
        // DOWN: anything but the floors.
        assert!(judge(Posture::Down, "198.51.100.11", TCP, 80));
        for floor in ["10.222.222.10", "169.254.77.10", "168.63.129.16", "100.100.100.200", "192.0.0.192", "fc00::1"] {
            assert!(!judge(Posture::Down, floor, TCP, 80), "{floor}");
        }
        // DISENGAGED: everything; QUARANTINE: nothing.
        assert!(judge(Posture::Disengaged, "169.254.77.10", TCP, 80));
        assert!(!judge(Posture::Quarantine, "10.0.2.3", UDP, 53));
        assert!(!judge(Posture::Quarantine, "198.51.100.10", TCP, 443));
    }

    #[test]
    fn doubt_ends_the_flow() {
        let rule = |r: &str, policy: &str| {
            Listing::parse(&format!(
                "table inet terok_shield {{\n\tchain output {{\n\t\ttype filter hook output priority filter; policy {policy};\n\t\t{r}\n\t}}\n}}\n"
            ))
        };
        let f = flow("198.51.100.11", TCP, Some(80));
        // An unknown condition in an accept does not match; in a reject it does.
        assert!(!rule("meta skuid 0 accept", "drop").admits(&f));
        assert!(!rule("meta skuid 0 reject", "accept").admits(&f));
        assert!(!rule("jump elsewhere", "accept").admits(&f));
        // A negated set match.
        let gw = "table inet terok_shield {\n\tset o {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.2.2 }\n\t}\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tip daddr 10.0.2.2 ip daddr != @o reject\n\t}\n}\n";
        let to_gw = flow("10.0.2.2", TCP, Some(22));
        assert!(Listing::parse(gw).admits(&to_gw), "named exactly: admitted");
        assert!(!Listing::parse(&gw.replace("10.0.2.2 }", "10.0.2.9 }")).admits(&to_gw), "not named: refused");
        // A rule that only logs decides nothing.
        assert!(rule("ct state new log prefix \"x y\" group 100 counter", "accept").admits(&f));
        // A set the listing lacks, or an element it cannot read, is a doubt.
        assert!(!rule("ip daddr @missing accept", "drop").admits(&f));
        assert!(!rule("ip daddr @missing reject", "accept").admits(&f));
        let garbled = "table inet terok_shield {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { zz }\n\t}\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tip daddr @s reject\n\t}\n}\n";
        assert!(!Listing::parse(garbled).admits(&f));
        // An empty listing (no table) has no output chain: nothing is admitted.
        assert!(!Listing::parse("").admits(&f));
    }
}
