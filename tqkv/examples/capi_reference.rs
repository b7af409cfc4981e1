//! The Rust side of the C interface test: runs, through the Rust API, the
//! computations that `examples/c/capi_test.c` runs through the C API and
//! prints the same transcript (bytes as FNV-1a hashes, floats as bit
//! patterns). CI diffs the two outputs: the C ABI must give exactly the Rust
//! results.
//!
//! `cargo run --release --example capi_reference`

use tqkv::attention::Partial;
use tqkv::qjl::Projection;
use tqkv::quant::{
    BaselineQuantizer, CacheConfig, MseQuantizer, NormPrecision, ProdQuantizer, Quantizer, Scheme,
};
use tqkv::{Backend, Codebook, KvCache, Rotation, attention, codebook};

const DIM: usize = 64;
const HEADS: usize = 2;
const TOKENS: usize = 12;
const CAPACITY: usize = 16;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn key_val(t: usize, h: usize, j: usize) -> f32 {
    ((t * 31 + h * 17 + j * 7) % 23) as f32 / 8.0 - 11.0 / 8.0
}

fn value_val(t: usize, h: usize, j: usize) -> f32 {
    ((t * 13 + h * 5 + j * 11) % 19) as f32 / 4.0 - 9.0 / 4.0
}

fn query_val(i: usize) -> f32 {
    ((i * 5) % 13) as f32 / 4.0 - 6.0 / 4.0
}

fn main() -> Result<(), tqkv::Error> {
    println!("backend {}", Backend::detect().name());

    let mut y: Vec<f32> = (0..256).map(|i| ((i * 37) % 17) as f32 - 8.0).collect();
    Rotation::new(256, 77)?.rotate(&mut y)?;
    println!("rotate {:016x}", fnv1a(&f32_bytes(&y)));
    for d in [96usize, 104] {
        let mut z: Vec<f32> = (0..d).map(|i| ((i * 37) % 17) as f32 - 8.0).collect();
        Rotation::new(d, 77)?.rotate(&mut z)?;
        println!("rotate{d} {:016x}", fnv1a(&f32_bytes(&z)));
    }

    let cb = Codebook::lloyd_max(128, 4)?;
    let x: Vec<f32> = (0..128)
        .map(|i| (((i * 29) % 41) as f32 - 20.0) / 160.0)
        .collect();
    let q: Vec<f32> = (0..128)
        .map(|i| (((i * 11) % 9) as f32 - 4.0) / 2.0)
        .collect();
    let mut rows = [0u8; 64];
    codebook::quantize_packed(&cb, &x, &mut rows)?;
    let d = codebook::dot(&cb, &q, &rows)?;
    println!("codes {:016x} dot {:08x}", fnv1a(&rows), d.to_bits());

    let xk: Vec<f32> = (0..64).map(|i| key_val(3, 1, i)).collect();
    let mut code = vec![0u8; 256];
    let mse = MseQuantizer::new(64, 4, 5)?;
    mse.encode(&xk, &mut code[..mse.encoded_len()])?;
    println!("mse {:016x}", fnv1a(&code[..mse.encoded_len()]));
    let prod =
        ProdQuantizer::new(64, 3, 5, Projection::Hadamard)?.with_norm_precision(NormPrecision::F32);
    prod.encode(&xk, &mut code[..prod.encoded_len()])?;
    println!("prod {:016x}", fnv1a(&code[..prod.encoded_len()]));
    let base = BaselineQuantizer::new(64, 3)?;
    base.encode(&xk, &mut code[..base.encoded_len()])?;
    println!("baseline {:016x}", fnv1a(&code[..base.encoded_len()]));
    for (s, scheme) in Scheme::ALL.iter().copied().enumerate() {
        let (_, v): (Quantizer, Quantizer) = scheme.quantizers(4, 64, 9, Projection::Hadamard)?;
        let n = v.encoded_len();
        v.encode(&xk, &mut code[..n])?;
        println!(
            "scheme {s} v {:016x} bits {:.4}",
            fnv1a(&code[..n]),
            v.bits_per_coordinate()
        );
    }

    let cfg = CacheConfig::new(Scheme::Kqv, 4, HEADS, DIM, CAPACITY).with_seed(42);
    let mut buf = vec![0u8; cfg.bytes_needed()?];
    let mut cache = KvCache::new(cfg, &mut buf[..])?;
    for t in 0..TOKENS {
        let k: Vec<f32> = (0..HEADS * DIM)
            .map(|i| key_val(t, i / DIM, i % DIM))
            .collect();
        let v: Vec<f32> = (0..HEADS * DIM)
            .map(|i| value_val(t, i / DIM, i % DIM))
            .collect();
        cache.push(&k, &v)?;
    }
    let qh: Vec<f32> = (0..2 * DIM).map(query_val).collect();
    let mut out = vec![0.0f32; 2 * DIM];
    let mut scratch = vec![0.0f32; attention::scratch_len(&cache, 2)];
    attention::attend(&cache, 1, &qh, &mut out, &mut scratch)?;
    println!("cache {:016x}", fnv1a(cache.as_bytes()));
    let bits: Vec<String> = out.iter().map(|v| format!("{:08x}", v.to_bits())).collect();
    println!("attend {}", bits.join(" "));
    // Both query heads at every token with int8 scoring
    // (`tqkv_attend_many_scored`, `TQKV_SCORING_INT8`).
    let mut int8 = vec![0.0f32; 2 * DIM];
    let scoring = attention::Scoring::Int8;
    let limits = [TOKENS, TOKENS];
    let backend = Backend::detect();
    attention::attend_many_with(
        backend,
        scoring,
        &cache,
        1,
        &qh,
        &limits,
        &mut int8,
        &mut scratch,
    )?;
    let bits: Vec<String> = int8
        .iter()
        .map(|v| format!("{:08x}", v.to_bits()))
        .collect();
    println!("int8 {}", bits.join(" "));
    // The same decode split at a third and merged (`tqkv_attend_partial`).
    let n = Partial::len_for(&cache, 2);
    let (mut front_buf, mut back_buf) = (vec![0.0f32; n], vec![0.0f32; n]);
    let mut front = Partial::new(&cache, 2, &mut front_buf)?;
    let mut back = Partial::new(&cache, 2, &mut back_buf)?;
    attention::attend_partial(&cache, 1, &qh, 0..TOKENS / 3, &mut front, &mut scratch)?;
    attention::attend_partial(&cache, 1, &qh, TOKENS / 3..TOKENS, &mut back, &mut scratch)?;
    front.merge(&back)?;
    front.finish(&cache, &mut out, &mut scratch)?;
    let bits: Vec<String> = out.iter().map(|v| format!("{:08x}", v.to_bits())).collect();
    println!("partial {}", bits.join(" "));
    Ok(())
}
