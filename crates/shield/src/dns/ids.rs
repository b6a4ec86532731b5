//! DNS query ids an off-path spoofer cannot guess: a xorshift64* stream seeded from the
//! kernel's random source. (Not cryptographic, and not needed to be: the upstream is the
//! host's own nameserver; what matters is that no id follows from the time or a pid.)

pub(crate) struct Ids(u64);

impl Ids {
    pub fn new() -> Ids {
        use std::io::Read;
        let mut b = [0u8; 8];
        let seeded = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
        let s = if seeded {
            u64::from_ne_bytes(b)
        } else {
            std::time::UNIX_EPOCH.elapsed().map_or(1, |d| d.as_nanos() as u64) ^ u64::from(std::process::id())
        };
        Ids(s | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An id `taken` does not hold.
    pub fn fresh(&mut self, taken: impl Fn(u16) -> bool) -> u16 {
        loop {
            let id = (self.next_u64() >> 48) as u16;
            if !taken(id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_between_streams_and_skip_taken_ones() {
        let (mut a, mut b) = (Ids::new(), Ids::new());
        let xs: Vec<u16> = (0..8).map(|_| a.fresh(|_| false)).collect();
        let ys: Vec<u16> = (0..8).map(|_| b.fresh(|_| false)).collect();
        assert_ne!(xs, ys, "two streams from the kernel's seed");
        let taken = xs[0];
        assert_ne!(a.fresh(|id| id == taken || id % 2 == 0) % 2, 0);
    }
}
