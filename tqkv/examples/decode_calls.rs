//! Runs attention decode a given number of times on one cache, for
//! counting what one call costs where no timer means anything: under
//! `qemu-aarch64` with an instruction-counting plugin
//! (`tools/neon_icount.sh` takes the difference between three calls and
//! one, so the set-up cancels). The cache holds 4,096 tokens of one KV
//! head at d = 128, filled from a fixed pseudo-random sequence; `g` query
//! heads share it.
//!
//! `cargo run --release --example decode_calls -- <kv|kqv|qkqv> <bits> <g> <calls> [backend]`
//! (the backend by its benchmark name; the detected one by default).

use tqkv::attention::{attend_on, scratch_len};
use tqkv::quant::{CacheConfig, KvCache, Scheme};
use tqkv::{Backend, Error};

const DIM: usize = 128;
const TOKENS: usize = 4096;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: decode_calls <kv|kqv|qkqv> <bits> <g> <calls> [backend]";
    let [scheme, bits, g, calls] = [0, 1, 2, 3].map(|i| args.get(i).expect(usage).as_str());
    let scheme = match scheme {
        "kv" => Scheme::Kv,
        "kqv" => Scheme::Kqv,
        "qkqv" => Scheme::Qkqv,
        _ => panic!("{usage}"),
    };
    let bits: u8 = bits.parse().expect(usage);
    let g: usize = g.parse().expect(usage);
    let calls: usize = calls.parse().expect(usage);
    let backend = match args.get(4) {
        Some(name) => *Backend::ALL
            .iter()
            .find(|b| b.name() == name)
            .expect("a backend name: scalar, avx2, avx512, neon"),
        None => Backend::detect(),
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let config = CacheConfig::new(scheme, bits, 1, DIM, TOKENS).with_seed(5);
    let mut cache = KvCache::new(config, vec![0u8; config.bytes_needed()?])?;
    let (k, v): (Vec<f32>, Vec<f32>) = (0..TOKENS * DIM).map(|_| (next(), next())).unzip();
    cache.push_batch(&k, &v)?;
    let q: Vec<f32> = (0..g * DIM).map(|_| next()).collect();
    let mut out = vec![0.0f32; g * DIM];
    let mut scratch = vec![0.0f32; scratch_len(&cache, g)];
    let mut check = 0.0f32;
    for _ in 0..calls {
        attend_on(
            backend,
            &cache,
            0,
            std::hint::black_box(&q),
            &mut out,
            &mut scratch,
        )?;
        check += out[0];
    }
    println!(
        "{} {scheme:?} n={bits} g={g} calls={calls}: {check}",
        backend.name()
    );
    Ok(())
}
