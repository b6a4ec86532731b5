//! Every other piece of nft text the shield sends: live element changes, table replacement,
//! flushes, the arguments of the nft queries it runs, and the set names dnsmasq fills. With
//! [`crate::posture`] and [`crate::seeds`] this is the one place that spells the table.

use terok_shield_policy::IpNet;

use crate::constants::{TABLE, TABLE_FAMILY, TABLE_NAME};
use crate::portmap::{MapRange, ScopeElement};
use crate::scoped::Scoped;
use crate::sets::SetId;

/// `add element inet terok_shield <set> { e1, e2, … }` as one statement line.
pub fn add_elements(set: SetId, elements: &[IpNet]) -> String {
    let mut s = String::with_capacity(elements.len() * 16 + 64);
    s.push_str("add element ");
    s.push_str(TABLE);
    s.push(' ');
    s.push_str(set.name());
    s.push_str(" { ");
    for (i, e) in elements.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&e.to_string());
    }
    s.push_str(" }\n");
    s
}

/// `add element inet terok_shield <set> { a . tcp . 443, … }` for a port-scoped set.
pub fn add_scoped(set: SetId, elements: &[Scoped]) -> String {
    let list: Vec<String> = elements.iter().map(Scoped::to_string).collect();
    format!("add element {TABLE} {set} {{ {} }}\n", list.join(", "))
}

/// `add element` of port-map ranges (`a-b : 0x5e400001`) to the port map `set`.
pub fn add_mapped(set: SetId, ranges: &[MapRange]) -> String {
    let list: Vec<String> = ranges.iter().map(MapRange::to_string).collect();
    format!("add element {TABLE} {set} {{ {} }}\n", list.join(", "))
}

/// `add element` of scope elements (`0x5e400001 . tcp . 443`) to the scope set `set`.
pub fn add_scopes(set: SetId, elements: &[ScopeElement]) -> String {
    let list: Vec<String> = elements.iter().map(ScopeElement::to_string).collect();
    format!("add element {TABLE} {set} {{ {} }}\n", list.join(", "))
}

/// One transaction moving `element` into `into`, out of `out_of` first when given.
pub fn move_element(out_of: Option<SetId>, into: SetId, element: IpNet) -> String {
    let mut s = String::new();
    if let Some(from) = out_of {
        s.push_str(&format!("delete element {TABLE} {from} {{ {element} }}\n"));
    }
    s.push_str(&add_elements(into, &[element]));
    s
}

/// One transaction emptying `sets`.
pub fn flush(sets: &[SetId]) -> String {
    sets.iter()
        .map(|s| {
            let what = if s.is_map() { "map" } else { "set" };
            format!("flush {what} {TABLE} {s}\n")
        })
        .collect()
}

/// A script that puts `table` (a rendered `table inet terok_shield { … }`) in place of
/// whatever table of that name there is, or none, in one transaction: declaring the table
/// empty first makes the delete valid either way, so no listing is needed beforehand.
pub fn replace_table(table: &str) -> String {
    format!("table {TABLE} {{}}\ndelete table {TABLE}\n{table}")
}

/// A script that creates the table from `table` in one transaction, refused ("File exists")
/// when there is one already: the cheap load of a fresh namespace. (Replacing costs a
/// kernel RCU grace period, 10-20 ms, even when the table it deletes was empty.)
pub fn create_table(table: &str) -> String {
    format!("create table {TABLE}\n{table}")
}

/// `nft` arguments that list the table.
pub fn list_table_args() -> Vec<String> {
    vec!["list".into(), "table".into(), TABLE_FAMILY.into(), TABLE_NAME.into()]
}

/// `nft` arguments that list one set (or map).
pub fn list_set_args(set: SetId) -> Vec<String> {
    let what = if set.is_map() { "map" } else { "set" };
    vec!["list".into(), what.into(), TABLE_FAMILY.into(), TABLE_NAME.into(), set.name().into()]
}

/// `nft` arguments that look one element up.
pub fn get_element_args(set: SetId, element: IpNet) -> Vec<String> {
    vec![
        "get".into(),
        "element".into(),
        TABLE_FAMILY.into(),
        TABLE_NAME.into(),
        set.name().into(),
        format!("{{ {element} }}"),
    ]
}

/// The target of dnsmasq's `nftset=/<domain>/…` lines: the learned sets of both families.
pub fn dnsmasq_nftsets() -> String {
    let [v4, v6] = SetId::learned_sets();
    format!("4#{TABLE_FAMILY}#{TABLE_NAME}#{v4},6#{TABLE_FAMILY}#{TABLE_NAME}#{v6}")
}

/// `add element … { e1 timeout 60s, e2 timeout 3600s }`: elements of a timeout set, each
/// with the seconds it has left (at least one).
pub fn add_timed_elements(set: SetId, elements: &[(IpNet, u64)]) -> String {
    let list: Vec<String> = elements.iter().map(|(e, secs)| format!("{e} timeout {}s", (*secs).max(1))).collect();
    format!("add element {TABLE} {set} {{ {} }}\n", list.join(", "))
}

/// The elements of a timeout set's listing with the whole seconds each has left
/// (`expires 29m59s123ms` is 1799 s); `None` for an element the listing gives no expiry.
pub fn listed_timed_elements(listing: &str) -> Vec<(IpNet, Option<u64>)> {
    let Some(body) = listing.split("elements = {").nth(1).and_then(|b| b.split('}').next()) else {
        return Vec::new();
    };
    body.split(',')
        .filter_map(|atom| {
            let mut words = atom.split_whitespace();
            let net: IpNet = words.next()?.parse().ok()?;
            let rest: Vec<&str> = words.collect();
            let expires =
                rest.iter().position(|w| *w == "expires").and_then(|i| rest.get(i + 1)).and_then(|t| seconds(t));
            Some((net, expires))
        })
        .collect()
}

/// `add element … { a . tcp . 443 timeout 60s, … }`: port-scoped elements of a timeout set,
/// each with the seconds it has left (at least one).
pub fn add_timed_scoped(set: SetId, elements: &[(Scoped, u64)]) -> String {
    let list: Vec<String> = elements.iter().map(|(e, secs)| format!("{e} timeout {}s", (*secs).max(1))).collect();
    format!("add element {TABLE} {set} {{ {} }}\n", list.join(", "))
}

/// The elements of a port-scoped timeout set's listing with the whole seconds each has
/// left; an element without an expiry, or one that does not read, is left out.
pub fn listed_timed_scoped(listing: &str) -> Vec<(Scoped, u64)> {
    let Some(body) = listing.split("elements = {").nth(1).and_then(|b| b.split('}').next()) else {
        return Vec::new();
    };
    body.split(',')
        .filter_map(|atom| {
            let words: Vec<&str> = atom.split_whitespace().collect();
            let [net, ".", proto, ".", ports, rest @ ..] = words.as_slice() else { return None };
            let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
            let e = Scoped::from_arg(&format!("{net},{proto},{lo}-{hi}"))?;
            let expires = rest.iter().position(|w| *w == "expires").and_then(|i| rest.get(i + 1))?;
            Some((e, seconds(expires)?))
        })
        .collect()
}

/// nft's duration text (`1h2m3s456ms`, `59s`, `250ms`) in whole seconds.
fn seconds(text: &str) -> Option<u64> {
    let mut total_ms: u64 = 0;
    let mut num = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit_ms = match c {
            'd' => 86_400_000,
            'h' => 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            's' => 1000,
            _ => return None,
        };
        total_ms = total_ms.checked_add(n.checked_mul(unit_ms)?)?;
    }
    num.is_empty().then_some(total_ms / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_scoped_listings_read_back() {
        let listing = "table inet terok_shield {\n\tset t40_dns_port_v4 {\n\t\telements = { 198.51.100.10 . tcp . 7000 timeout 1h expires 59m58s, 198.51.100.11 . udp . 53-54 timeout 30s expires 29s500ms,\n\t\t\t     198.51.100.12 . tcp . 1 }\n\t}\n}\n";
        let got = listed_timed_scoped(listing);
        let texts: Vec<String> = got.iter().map(|(e, s)| format!("{e} {s}")).collect();
        assert_eq!(texts, ["198.51.100.10 . tcp . 7000 3598", "198.51.100.11 . udp . 53-54 29"]);
        let set = SetId::learned_scoped(false);
        assert_eq!(
            add_timed_scoped(set, &got),
            "add element inet terok_shield t40_dns_port_v4 { 198.51.100.10 . tcp . 7000 timeout 3598s, 198.51.100.11 . udp . 53-54 timeout 29s }\n"
        );
    }

    fn n(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn scripts() {
        let allow = SetId::live_change(true, n("198.51.100.7"));
        let deny = SetId::live_change(false, n("198.51.100.7"));
        assert_eq!(
            move_element(Some(deny), allow, n("198.51.100.7")),
            "delete element inet terok_shield t20_security_deny_v4 { 198.51.100.7 }\nadd element inet terok_shield t40_project_allow_v4 { 198.51.100.7 }\n"
        );
        assert_eq!(
            flush(&SetId::learned_sets()),
            "flush set inet terok_shield t40_dns_v4\nflush set inet terok_shield t40_dns_v6\n"
        );
        assert_eq!(
            replace_table("table x {}\n"),
            "table inet terok_shield {}\ndelete table inet terok_shield\ntable x {}\n"
        );
        assert_eq!(create_table("table x {}\n"), "create table inet terok_shield\ntable x {}\n");
        assert_eq!(dnsmasq_nftsets(), "4#inet#terok_shield#t40_dns_v4,6#inet#terok_shield#t40_dns_v6");
        assert_eq!(
            get_element_args(allow, n("198.51.100.7")).join(" "),
            "get element inet terok_shield t40_project_allow_v4 { 198.51.100.7 }"
        );
    }

    #[test]
    fn timed_listings_and_durations() {
        let listing =
            "elements = { 198.51.100.10 timeout 1m expires 59s860ms, 198.51.100.11 expires 1h2m3s, 10.0.0.1 }";
        assert_eq!(
            listed_timed_elements(listing),
            [(n("198.51.100.10"), Some(59)), (n("198.51.100.11"), Some(3723)), (n("10.0.0.1"), None)]
        );
        assert_eq!(seconds("250ms"), Some(0));
        assert_eq!(seconds("2d"), Some(172_800));
        assert_eq!(seconds("5x"), None);
        assert_eq!(seconds("12"), None);
        assert_eq!(
            add_timed_elements(SetId::learned(false), &[(n("198.51.100.10"), 59), (n("198.51.100.11"), 0)]),
            "add element inet terok_shield t40_dns_v4 { 198.51.100.10 timeout 59s, 198.51.100.11 timeout 1s }\n"
        );
    }

    #[test]
    fn set_listings() {
        let listing = "table inet terok_shield {\n\tset t40_dns_v4 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t\telements = { 198.51.100.10 expires 29m59s, 198.51.100.11 timeout 30m expires 1m }\n\t}\n}\n";
        assert_eq!(listed_timed_elements(listing), [(n("198.51.100.10"), Some(1799)), (n("198.51.100.11"), Some(60))]);
        assert!(listed_timed_elements("set x { type ipv4_addr }").is_empty());
        assert_eq!(listed_timed_elements("elements = { 10.0.0.0/8, bogus }"), [(n("10.0.0.0/8"), None)]);
    }
}
