//! Input generator shared by the fuzzer (fuzz/fuzz_explain.rs) and the normal test suite
//! (tests/explain.rs): random bytes, and real ELF files with their headers, tables and
//! length mutated. A tiny xorshift generator keeps runs reproducible from a seed.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        // xorshift64*: fast, good enough to pick offsets and values.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Values that sit on the edges parsers get wrong: zero, all ones, sign bits, near-overflow.
const INTERESTING: [u64; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, u64::MAX];

/// The `i`-th input: the kind rotates so every run covers all of them.
pub fn input(rng: &mut Rng, seeds: &[Vec<u8>], i: usize) -> Vec<u8> {
    let seed = &seeds[rng.below(seeds.len())];
    match i % 5 {
        0 => random(rng),
        1 => overwrite(rng, seed.clone(), 0..seed.len().min(512)),
        2 => {
            // The section header table and the tables before it (verneed, dynstr) sit at the end.
            let tail = seed.len().saturating_sub(16 * 1024)..seed.len();
            overwrite(rng, seed.clone(), tail)
        }
        3 => {
            let mut v = overwrite(rng, seed.clone(), 0..seed.len());
            v.truncate(rng.below(seed.len() + 1));
            v
        }
        _ => fields(rng, seed.clone()),
    }
}

/// Random bytes, often behind a plausible ELF identification so the parser goes deeper.
fn random(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(1024);
    let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    if rng.below(4) > 0 && v.len() >= 6 {
        v[..4].copy_from_slice(b"\x7fELF");
        v[4] = 1 + rng.below(2) as u8;
        v[5] = 1 + rng.below(2) as u8;
    } else if rng.below(2) == 0 && v.len() >= 2 {
        v[..2].copy_from_slice(b"#!");
    }
    v
}

/// A few random bytes overwritten inside `range`.
fn overwrite(rng: &mut Rng, mut v: Vec<u8>, range: std::ops::Range<usize>) -> Vec<u8> {
    if range.is_empty() {
        return v;
    }
    for _ in 0..1 + rng.below(8) {
        let at = range.start + rng.below(range.len());
        v[at] = rng.next() as u8;
    }
    v
}

/// Header fields (offsets, counts, sizes) replaced by edge values, in both byte orders.
fn fields(rng: &mut Rng, mut v: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(3) {
        let width = [2usize, 4, 8][rng.below(3)];
        let at = rng.below(64usize.min(v.len()).saturating_sub(width) + 1) & !(width - 1);
        let value = INTERESTING[rng.below(INTERESTING.len())].wrapping_add(rng.below(3) as u64);
        let field = match rng.below(2) {
            0 => value.to_le_bytes()[..width].to_vec(),
            _ => value.to_be_bytes()[8 - width..].to_vec(),
        };
        if at + width <= v.len() {
            v[at..at + width].copy_from_slice(&field);
        }
    }
    v
}
