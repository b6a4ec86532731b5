//! The DNS wire format, as much as host-side resolution needs: an A or AAAA question, and
//! the addresses in an answer (RFC 1035 §4). Pure: no sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;

/// A recursive query for `name`'s records of type `qtype`; `None` for a name that does not
/// fit the wire format (empty or over-long labels).
pub fn query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len()).ok().filter(|l| (1..=63).contains(l))?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    if q.len() > 12 + 255 {
        return None;
    }
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]); // class IN
    Some(q)
}

/// What an answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The addresses of the asked type (empty for NXDOMAIN or no data).
    Addresses(Vec<IpAddr>),
    /// Truncated, a server failure or garbage: ask another way.
    Unusable,
}

/// The reply's id, and what it says about question type `qtype`.
pub fn parse(reply: &[u8], qtype: u16) -> Option<(u16, Answer)> {
    let be16 = |i: usize| reply.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let id = be16(0)?;
    let flags = be16(2)?;
    let (qd, an) = (be16(4)?, be16(6)?);
    let is_reply = flags & 0x8000 != 0;
    let truncated = flags & 0x0200 != 0;
    let rcode = flags & 0x000f;
    if !is_reply || truncated || !(rcode == 0 || rcode == 3) {
        return Some((id, Answer::Unusable));
    }
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(reply, at)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        at = skip_name(reply, at)?;
        let (ty, len) = (be16(at)?, usize::from(be16(at + 8)?));
        let data = reply.get(at + 10..at + 10 + len)?;
        match (ty, len) {
            (TYPE_A, 4) if ty == qtype => out.push(IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3]))),
            (TYPE_AAAA, 16) if ty == qtype => {
                let mut b = [0u8; 16];
                b.copy_from_slice(data);
                out.push(IpAddr::V6(Ipv6Addr::from(b)));
            }
            _ => {}
        }
        at += 10 + len;
    }
    Some((id, Answer::Addresses(out)))
}

/// The offset after a (possibly compressed) name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `query(7, "a.example.com", A)`: a CNAME (compressed name) then an A record.
    fn reply() -> Vec<u8> {
        let mut r = query(7, "a.example.com", TYPE_A).unwrap_or_default();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 2; // two answers
        r.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, b'b', 0xc0, 14]);
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 51, 100, 10]);
        r
    }

    #[test]
    fn answers_are_read_through_compression_and_cnames() {
        let r = reply();
        assert_eq!(
            parse(&r, TYPE_A),
            Some((7, Answer::Addresses(vec!["198.51.100.10".parse().unwrap_or_else(|_| unreachable!())])))
        );
        assert_eq!(parse(&r, TYPE_AAAA), Some((7, Answer::Addresses(vec![]))));
        let mut truncated = r.clone();
        truncated[2] |= 0x02;
        assert_eq!(parse(&truncated, TYPE_A), Some((7, Answer::Unusable)));
        let mut servfail = r.clone();
        servfail[3] = 0x82;
        assert_eq!(parse(&servfail, TYPE_A), Some((7, Answer::Unusable)));
        assert_eq!(parse(&r[..r.len() - 3], TYPE_A), None, "short record");
        assert_eq!(parse(&[1, 2], TYPE_A), None);
    }

    #[test]
    fn queries_refuse_names_that_do_not_fit() {
        assert!(query(1, "a..b", TYPE_A).is_none());
        assert!(query(1, &"x".repeat(64), TYPE_A).is_none());
        assert_eq!(query(1, "ab.c", TYPE_A).map(|q| q.len()), Some(12 + 6 + 4));
    }
}
