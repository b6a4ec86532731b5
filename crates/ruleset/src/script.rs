//! Every other piece of nft text the shield sends: live element changes, table replacement,
//! flushes, the arguments of the nft queries it runs, and the set names dnsmasq fills. With
//! [`crate::posture`] and [`crate::seeds`] this is the one place that spells the table.

use terok_shield_policy::IpNet;

use crate::constants::{TABLE, TABLE_FAMILY, TABLE_NAME};
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
    sets.iter().map(|s| format!("flush set {TABLE} {s}\n")).collect()
}

/// A script that puts `table` (a rendered `table inet terok_shield { … }`) in place of the
/// existing one, when there is one, in one transaction.
pub fn replace_table(existing: bool, table: &str) -> String {
    if existing {
        format!("delete table {TABLE}\n{table}")
    } else {
        table.to_string()
    }
}

/// `nft` arguments that list the table.
pub fn list_table_args() -> Vec<String> {
    vec!["list".into(), "table".into(), TABLE_FAMILY.into(), TABLE_NAME.into()]
}

/// `nft` arguments that list one set.
pub fn list_set_args(set: SetId) -> Vec<String> {
    vec!["list".into(), "set".into(), TABLE_FAMILY.into(), TABLE_NAME.into(), set.name().into()]
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

/// The elements of an `nft list set` listing (`elements = { a, b/24 expires 29m, … }`);
/// whatever does not parse as an address or network is skipped.
pub fn listed_elements(listing: &str) -> Vec<IpNet> {
    let Some(body) = listing.split("elements = {").nth(1).and_then(|b| b.split('}').next()) else {
        return Vec::new();
    };
    body.split(',').filter_map(|atom| atom.split_whitespace().next()).filter_map(|t| t.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(replace_table(true, "table x {}\n"), "delete table inet terok_shield\ntable x {}\n");
        assert_eq!(dnsmasq_nftsets(), "4#inet#terok_shield#t40_dns_v4,6#inet#terok_shield#t40_dns_v6");
        assert_eq!(
            get_element_args(allow, n("198.51.100.7")).join(" "),
            "get element inet terok_shield t40_project_allow_v4 { 198.51.100.7 }"
        );
    }

    #[test]
    fn set_listings() {
        let listing = "table inet terok_shield {\n\tset t40_dns_v4 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t\telements = { 198.51.100.10 expires 29m59s, 198.51.100.11 timeout 30m expires 1m }\n\t}\n}\n";
        assert_eq!(listed_elements(listing), [n("198.51.100.10"), n("198.51.100.11")]);
        assert!(listed_elements("set x { type ipv4_addr }").is_empty());
        assert_eq!(listed_elements("elements = { 10.0.0.0/8, bogus }"), [n("10.0.0.0/8")]);
    }
}
