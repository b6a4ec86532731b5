//! The messages of the shield's resolver, on hickory-proto's wire codec: reading a client's
//! question, the answers it builds itself, the upstream query, and reading the upstream's
//! answer down its CNAME chain. Pure: no sockets.
//!
//! Nothing of the client's message but its id, its question and its RD bit is ever used:
//! the upstream query is built afresh (a new id, the lower-cased name, A or AAAA, no client
//! EDNS options), so a workload cannot smuggle bytes out in a header, an option or an extra
//! record.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// The UDP payload size the resolver offers and asks for (the DNS flag day 2020 value).
pub const UDP_PAYLOAD: u16 = 1232;
/// A message larger than this is never read (UDP's own limit).
pub const MAX_MESSAGE: usize = 65_535;
/// CNAME links followed before an answer is given up on.
const MAX_CHAIN: usize = 8;

/// The question of a client's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// The name as asked (its case is echoed back).
    pub query: Query,
    /// The name in lower case, without the final dot.
    pub name: String,
    pub qtype: RecordType,
    /// RD, copied into the answer.
    pub recursion_desired: bool,
    /// The client offered EDNS with this payload size.
    pub edns: Option<u16>,
}

/// What a client's message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// One IN question: to be decided on.
    Question(Question),
    /// Answered at once with this message (FORMERR, NOTIMP, REFUSED).
    Reply(Vec<u8>),
    /// Not worth an answer (not a query at all, or not even a header).
    Drop,
}

/// The header's counts fit the message: one question at most `questions`, and no more
/// records than the bytes could hold (a record is at least 11 bytes). Checked before the
/// codec runs, which would allocate for a claimed 65 535 questions in a 20-byte packet.
fn plausible(bytes: &[u8], questions: u16) -> bool {
    if bytes.len() < 12 {
        return false;
    }
    let count = |i: usize| usize::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
    let records = count(6) + count(8) + count(10);
    bytes.len() >= 12 && count(4) <= usize::from(questions) && records * 11 <= bytes.len() - 12
}

/// Read a client's message.
pub fn read_query(bytes: &[u8]) -> Incoming {
    if bytes.len() < 12 || bytes.len() > MAX_MESSAGE {
        return Incoming::Drop;
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    let is_query = bytes[2] & 0x80 == 0;
    if !is_query {
        return Incoming::Drop;
    }
    let rd = bytes[2] & 0x01 != 0;
    if !plausible(bytes, 1) {
        return Incoming::Reply(error_reply(id, rd, None, ResponseCode::FormErr));
    }
    let Ok(m) = Message::from_vec(bytes) else {
        return Incoming::Reply(error_reply(id, rd, None, ResponseCode::FormErr));
    };
    if m.metadata.op_code != OpCode::Query {
        return Incoming::Reply(error_reply(id, rd, None, ResponseCode::NotImp));
    }
    let [query] = m.queries.as_slice() else {
        return Incoming::Reply(error_reply(id, rd, None, ResponseCode::FormErr));
    };
    if query.query_class() != DNSClass::IN {
        return Incoming::Reply(error_reply(id, rd, Some(query), ResponseCode::Refused));
    }
    let Some(name) = ascii_name(query.name()) else {
        // A name the policy cannot name (an odd byte): nonexistent, like any unlisted name.
        return Incoming::Reply(error_reply(id, rd, Some(query), ResponseCode::NXDomain));
    };
    Incoming::Question(Question {
        id,
        query: query.clone(),
        name,
        qtype: query.query_type(),
        recursion_desired: m.metadata.recursion_desired,
        edns: m.edns.as_ref().map(Edns::max_payload),
    })
}

/// The name's labels joined by dots, lower-cased; `None` when a label holds a byte outside
/// printable ASCII or a dot (the root is the empty string).
fn ascii_name(name: &Name) -> Option<String> {
    let mut out = String::with_capacity(64);
    for label in name.iter() {
        if !out.is_empty() {
            out.push('.');
        }
        for b in label {
            if !b.is_ascii_graphic() || *b == b'.' {
                return None;
            }
            out.push(char::from(b.to_ascii_lowercase()));
        }
    }
    Some(out)
}

fn reply_to(id: u16, rd: bool, code: ResponseCode) -> Message {
    let mut r = Message::response(id, OpCode::Query);
    r.metadata.message_type = MessageType::Response;
    r.metadata.recursion_desired = rd;
    r.metadata.recursion_available = true;
    r.metadata.response_code = code;
    r
}

fn error_reply(id: u16, rd: bool, query: Option<&Query>, code: ResponseCode) -> Vec<u8> {
    let mut r = reply_to(id, rd, code);
    if let Some(q) = query {
        r.add_query(q.clone());
    }
    encode(&r).unwrap_or_default()
}

fn encode(m: &Message) -> Option<Vec<u8>> {
    m.to_vec().ok()
}

/// A local answer without records: NXDOMAIN (unlisted and denied names), NOERROR (no data
/// of this type), SERVFAIL, REFUSED.
pub fn local_reply(q: &Question, code: ResponseCode) -> Vec<u8> {
    let mut r = reply_to(q.id, q.recursion_desired, code);
    r.add_query(q.query.clone());
    if let Some(size) = q.edns {
        r.set_edns(edns(size));
    }
    encode(&r).unwrap_or_default()
}

fn edns(_client_size: u16) -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(UDP_PAYLOAD);
    e
}

/// The query the resolver sends upstream for `name` (lower case, no final dot), with its
/// own id: RD set, EDNS with [`UDP_PAYLOAD`], nothing else.
pub fn upstream_query(id: u16, name: &str, qtype: RecordType) -> Option<Vec<u8>> {
    let mut n = Name::from_ascii(name).ok()?;
    n.set_fqdn(true);
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(n, qtype));
    m.set_edns(edns(UDP_PAYLOAD));
    encode(&m)
}

/// An address the upstream answered, with its time to live (the smallest along the chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub addr: IpAddr,
    pub ttl: u32,
}

/// What the upstream said about a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: ResponseCode,
    /// The CNAME records from the question's name down the chain, in order.
    pub chain: Vec<Record>,
    /// The names the chain leads through (each CNAME's target, lower case), in order.
    pub aliases: Vec<String>,
    /// The addresses of the question's type at the end of the chain.
    pub addresses: Vec<Address>,
    pub truncated: bool,
}

/// Read the upstream's answer to `(id, name, qtype)`; `None` when it is not that answer
/// (another id or question, not a response, garbage). Only records on the chain from the
/// question's name count: anything else in the message is ignored.
pub fn read_answer(bytes: &[u8], id: u16, name: &str, qtype: RecordType) -> Option<Answer> {
    if bytes.len() < 12 || !plausible(bytes, 1) {
        return None;
    }
    let m = Message::from_vec(bytes).ok()?;
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        return None;
    }
    let [q] = m.queries.as_slice() else { return None };
    if q.query_type() != qtype || q.query_class() != DNSClass::IN || ascii_name(q.name()).as_deref() != Some(name) {
        return None;
    }
    let mut current = name.to_string();
    let mut chain = Vec::new();
    let mut aliases = Vec::new();
    let mut ttl = u32::MAX;
    for _ in 0..=MAX_CHAIN {
        let next = m.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if r.dns_class == DNSClass::IN && ascii_name(&r.name).as_deref() == Some(&current) => {
                Some((r, ascii_name(&c.0)?))
            }
            _ => None,
        });
        match next {
            Some((r, target)) if chain.len() < MAX_CHAIN => {
                ttl = ttl.min(r.ttl);
                chain.push(r.clone());
                aliases.push(target.clone());
                current = target;
            }
            _ => break,
        }
    }
    let addresses = m
        .answers
        .iter()
        .filter(|r| r.dns_class == DNSClass::IN && ascii_name(&r.name).as_deref() == Some(&current))
        .filter_map(|r| {
            let addr = match (&r.data, qtype) {
                (RData::A(a), RecordType::A) => IpAddr::V4(a.0),
                (RData::AAAA(a), RecordType::AAAA) => IpAddr::V6(a.0),
                _ => return None,
            };
            Some(Address { addr, ttl: ttl.min(r.ttl) })
        })
        .collect();
    Some(Answer { code: m.metadata.response_code, chain, aliases, addresses, truncated: m.metadata.truncation })
}

/// The resolver's answer to `q`: the chain and `addresses`, every TTL capped at `ttl_cap`.
/// Over UDP (`max_size` 512, or the client's EDNS size) an answer that does not fit is sent
/// truncated, without records, so the client asks again over TCP.
pub fn answer_reply(q: &Question, chain: &[Record], addresses: &[Address], ttl_cap: u32, max_size: usize) -> Vec<u8> {
    let mut r = reply_to(q.id, q.recursion_desired, ResponseCode::NoError);
    r.add_query(q.query.clone());
    for c in chain {
        let mut c = c.clone();
        c.ttl = c.ttl.min(ttl_cap);
        r.add_answer(c);
    }
    let owner = match chain.last().map(|c| &c.data) {
        Some(RData::CNAME(target)) => target.0.clone(),
        _ => q.query.name().clone(),
    };
    for a in addresses {
        let data = match a.addr {
            IpAddr::V4(v4) => RData::A(v4.into()),
            IpAddr::V6(v6) => RData::AAAA(v6.into()),
        };
        r.add_answer(Record::from_rdata(owner.clone(), a.ttl.min(ttl_cap), data));
    }
    if let Some(size) = q.edns {
        r.set_edns(edns(size));
    }
    let bytes = encode(&r).unwrap_or_default();
    if bytes.len() <= max_size {
        return bytes;
    }
    let mut t = reply_to(q.id, q.recursion_desired, ResponseCode::NoError);
    t.metadata.truncation = true;
    t.add_query(q.query.clone());
    encode(&t).unwrap_or_default()
}

/// The largest answer a UDP client takes: 512, or what its EDNS offered (at most ours).
pub fn udp_limit(q: &Question) -> usize {
    q.edns.map_or(512, |s| usize::from(s.clamp(512, UDP_PAYLOAD)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client query as a stub resolver sends it.
    fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap_or_default(), qtype));
        m.to_vec().unwrap_or_default()
    }

    fn question(bytes: &[u8]) -> Question {
        match read_query(bytes) {
            Incoming::Question(q) => q,
            other => panic!("{other:?}"),
        }
    }

    fn code(reply: &[u8]) -> ResponseCode {
        Message::from_vec(reply).map(|m| m.metadata.response_code).unwrap_or(ResponseCode::Unknown(999))
    }

    #[test]
    fn questions_are_read_lower_cased_and_odd_ones_refused() {
        let q = question(&query(7, "WwW.Example.COM.", RecordType::AAAA));
        assert_eq!(
            (q.id, q.name.as_str(), q.qtype, q.recursion_desired),
            (7, "www.example.com", RecordType::AAAA, true)
        );
        assert_eq!(read_query(&[1, 2, 3]), Incoming::Drop);
        let mut reply = query(7, "a.test", RecordType::A);
        reply[2] |= 0x80;
        assert_eq!(read_query(&reply), Incoming::Drop, "a response is not a question");
        let mut two = query(9, "a.test", RecordType::A);
        two[5] = 2;
        match read_query(&two) {
            Incoming::Reply(r) => assert_eq!(code(&r), ResponseCode::FormErr),
            other => panic!("{other:?}"),
        }
        let mut chaos = query(9, "a.test", RecordType::A);
        let n = chaos.len();
        chaos[n - 1] = 3;
        match read_query(&chaos) {
            Incoming::Reply(r) => assert_eq!(code(&r), ResponseCode::Refused),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hostile_messages_never_panic() {
        // A name compressed into a loop, a pointer to itself, 65 535 claimed answers.
        let mut looped = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(read_query(&looped), Incoming::Reply(_)));
        let mut claims = query(3, "a.test", RecordType::A);
        claims[6] = 0xff;
        claims[7] = 0xff;
        assert!(matches!(read_query(&claims), Incoming::Reply(_)), "65 535 answers claimed in a few bytes");
        assert!(read_answer(&claims, 3, "a.test", RecordType::A).is_none());
        let mut questions = query(3, "a.test", RecordType::A);
        questions[4] = 0xff;
        questions[5] = 0xff;
        match read_query(&questions) {
            Incoming::Reply(r) => assert_eq!(code(&r), ResponseCode::FormErr),
            other => panic!("{other:?}"),
        }
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        let seeds = [query(1, "allowed.shield.test", RecordType::A), answer(1, "a.test", true)];
        for _ in 0..20_000 {
            for s in &seeds {
                let mut m = s.clone();
                for _ in 0..3 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let i = (rng as usize) % m.len();
                    m[i] = (rng >> 32) as u8;
                }
                let cut = (rng as usize >> 8) % (m.len() + 1);
                let _ = read_query(&m[..cut]);
                let _ = read_answer(&m[..cut], 1, "a.test", RecordType::A);
            }
        }
    }

    /// An upstream answer for `a.test` A: optionally a CNAME to `cdn.example.net` first,
    /// then two addresses, and a stray record for another name.
    fn answer(id: u16, name: &str, cname: bool) -> Vec<u8> {
        let mut m = Message::response(id, OpCode::Query);
        m.metadata.message_type = MessageType::Response;
        let n = Name::from_ascii(format!("{name}.")).unwrap_or_default();
        m.add_query(Query::query(n.clone(), RecordType::A));
        let owner = if cname {
            let target = Name::from_ascii("cdn.example.net.").unwrap_or_default();
            m.add_answer(Record::from_rdata(n, 300, RData::CNAME(hickory_proto::rr::rdata::CNAME(target.clone()))));
            target
        } else {
            n
        };
        for (a, ttl) in [([198, 51, 100, 10], 60), ([198, 51, 100, 12], 600)] {
            m.add_answer(Record::from_rdata(owner.clone(), ttl, RData::A(std::net::Ipv4Addr::from(a).into())));
        }
        let stray = Name::from_ascii("evil.example.").unwrap_or_default();
        m.add_answer(Record::from_rdata(stray, 60, RData::A(std::net::Ipv4Addr::new(198, 51, 100, 66).into())));
        m.to_vec().unwrap_or_default()
    }

    #[test]
    fn answers_follow_the_chain_and_nothing_else() {
        let a = read_answer(&answer(5, "a.test", true), 5, "a.test", RecordType::A).unwrap_or_else(|| panic!());
        assert_eq!(a.chain.len(), 1);
        let got: Vec<(String, u32)> = a.addresses.iter().map(|x| (x.addr.to_string(), x.ttl)).collect();
        assert_eq!(got, [("198.51.100.10".into(), 60), ("198.51.100.12".into(), 300)], "stray record ignored");
        let a = read_answer(&answer(5, "a.test", false), 5, "a.test", RecordType::A).unwrap_or_else(|| panic!());
        assert_eq!((a.chain.len(), a.addresses.len()), (0, 2));
        assert!(read_answer(&answer(5, "a.test", false), 6, "a.test", RecordType::A).is_none(), "other id");
        assert!(read_answer(&answer(5, "a.test", false), 5, "b.test", RecordType::A).is_none(), "other name");
        assert!(read_answer(&answer(5, "a.test", false), 5, "a.test", RecordType::AAAA).is_none(), "other type");
    }

    #[test]
    fn replies_echo_the_question_and_cap_ttls() {
        let q = question(&query(0x4242, "A.Test", RecordType::A));
        let a = read_answer(&answer(5, "a.test", true), 5, "a.test", RecordType::A).unwrap_or_else(|| panic!());
        let bytes = answer_reply(&q, &a.chain, &a.addresses, 120, 512);
        let m = Message::from_vec(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.metadata.id, 0x4242);
        assert_eq!(m.queries[0].name().to_ascii(), "A.Test.");
        assert_eq!(m.answers.len(), 3);
        assert!(m.answers.iter().all(|r| r.ttl <= 120));
        let nx = local_reply(&q, ResponseCode::NXDomain);
        assert_eq!(code(&nx), ResponseCode::NXDomain);
        let many: Vec<Address> =
            (0..100u8).map(|i| Address { addr: IpAddr::from([198, 51, 100, i]), ttl: 60 }).collect();
        let t = Message::from_vec(&answer_reply(&q, &[], &many, 60, 512)).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.metadata.truncation && t.answers.is_empty());
        let up = upstream_query(77, "a.test", RecordType::AAAA).unwrap_or_default();
        let m = Message::from_vec(&up).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((m.metadata.id, m.queries[0].query_type()), (77, RecordType::AAAA));
        assert_eq!(m.edns.map(|e| e.max_payload()), Some(UDP_PAYLOAD));
    }
}
