//! Pack/unpack and quantise/dequantise for every bits value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tqkv::{codebook, pack};
use tqkv_fuzz::{Input, backends, codebooks};

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let bits = inp.u8() % 10; // 0 and 9 must be errors
    let n = inp.u16() as usize % 700;
    let indices: Vec<u8> = inp.bytes(n);
    let len = pack::packed_len(n, bits);
    if !(1..=8).contains(&bits) {
        let mut out = vec![0u8; 64];
        assert!(pack::pack(bits, &indices, &mut out).is_err());
        assert!(pack::unpack(bits, &out, &mut [0u8; 4]).is_err());
        return;
    }
    assert_eq!(len, (n * bits as usize).div_ceil(8));
    let mask = ((1u16 << bits) - 1) as u8;
    let mut packed = vec![0u8; len];
    match pack::pack(bits, &indices, &mut packed) {
        Ok(written) => {
            assert_eq!(written, len);
            assert!(indices.iter().all(|&i| i <= mask));
        }
        Err(_) => {
            assert!(indices.iter().any(|&i| i > mask));
            return;
        }
    }
    // A short output buffer is an error, never a write out of bounds.
    if len > 0 {
        assert!(pack::pack(bits, &indices, &mut vec![0u8; len - 1]).is_err());
    }
    let mut back = vec![0u8; n];
    pack::unpack(bits, &packed, &mut back).unwrap();
    assert_eq!(back, indices);
    // Unpacking arbitrary bytes then packing gives the bytes back (with the
    // unused high bits of the last byte cleared).
    let raw = inp.bytes(len);
    if raw.len() == len {
        let mut idx = vec![0u8; n];
        pack::unpack(bits, &raw, &mut idx).unwrap();
        let mut again = vec![0u8; len];
        pack::pack(bits, &idx, &mut again).unwrap();
        let used = n * bits as usize;
        for (i, (&a, &b)) in raw.iter().zip(&again).enumerate() {
            let keep = if (i + 1) * 8 <= used {
                0xFF
            } else {
                ((1u16 << (used - 8 * i)) - 1) as u8
            };
            assert_eq!(a & keep, b, "byte {i}");
        }
    }
    // quantise → dequantise lands on centroids, and quantise_packed equals
    // pack(quantise), on every backend.
    let cbs = codebooks();
    let cb = &cbs[inp.u8() as usize % cbs.len()];
    let cb_bits = cb.bits();
    let m = n.min(300);
    let x: Vec<f32> = (0..m).map(|_| inp.f32()).collect();
    if x.iter().any(|v| !v.is_finite()) {
        // Refused on every backend (kernels_differential checks they agree).
        for b in backends() {
            let mut idx = vec![0u8; m];
            assert!(codebook::quantize_on(b, cb, &x, &mut idx).is_err());
        }
        return;
    }
    let mut idx = vec![0u8; m];
    let clen = pack::packed_len(m, cb_bits);
    let mut qp = vec![0u8; clen];
    let mut deq = vec![0.0f32; m];
    for b in backends() {
        codebook::quantize_on(b, cb, &x, &mut idx).unwrap();
        let mut want = vec![0u8; clen];
        pack::pack(cb_bits, &idx, &mut want).unwrap();
        codebook::quantize_packed_on(b, cb, &x, &mut qp).unwrap();
        assert_eq!(qp, want, "{b}");
        codebook::dequantize_on(b, cb, &qp, &mut deq).unwrap();
        for (&v, &i) in deq.iter().zip(&idx) {
            assert_eq!(v.to_bits(), cb.centroids()[i as usize].to_bits());
        }
    }
});
