//! Every quantiser and scheme on arbitrary vectors: no panic, a documented
//! `Err` or an encoding whose bytes are the same on every backend and whose
//! decoding is finite.
#![no_main]

use half::{bf16, f16};
use libfuzzer_sys::fuzz_target;
use tqkv::qjl::Projection;
use tqkv::quant::{
    BaselineQuantizer, MseQuantizer, NormPrecision, ProdQuantizer, Quantizer, Scheme,
};
use tqkv::{Backend, Error};
use tqkv_fuzz::{Input, backends};

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    // Mostly supported dims (powers of two, Williamson products, block-diagonal
    // ones), sometimes anything.
    const DIMS: [usize; 14] = [8, 16, 24, 32, 64, 80, 96, 104, 112, 128, 192, 256, 576, 1024];
    let tag = inp.u8();
    let dim = if tag < 224 {
        DIMS[(tag % 14) as usize]
    } else {
        inp.u16() as usize % 5000
    };
    let bits = inp.u8() % 10;
    let seed = inp.u64();
    let projection = if inp.u8() & 1 == 1 {
        Projection::Hadamard
    } else {
        Projection::Gaussian
    };
    // The dense Gaussian projection costs m·d per vector: keep it small.
    if projection == Projection::Gaussian && dim > 256 {
        return;
    }
    let precision = if inp.u8() & 1 == 1 {
        NormPrecision::F32
    } else {
        NormPrecision::F16
    };
    let which = inp.u8() % 6;
    let made: Result<Quantizer, Error> = match which {
        0 => MseQuantizer::new(dim, bits, seed)
            .map(|q| Quantizer::Mse(q.with_norm_precision(precision))),
        1 => ProdQuantizer::new(dim, bits, seed, projection)
            .map(|q| Quantizer::Prod(q.with_norm_precision(precision))),
        2 => BaselineQuantizer::new(dim, bits)
            .map(|q| Quantizer::Baseline(q.with_norm_precision(precision))),
        s => {
            let scheme = Scheme::ALL[(s - 3) as usize];
            scheme
                .quantizers(bits, dim, seed, projection)
                .map(|(k, v)| if inp.u8() & 1 == 1 { k } else { v })
        }
    };
    let Ok(q) = made else {
        return;
    };
    let d = dim;
    let x: Vec<f32> = (0..d).map(|_| inp.f32()).collect();
    let mut want = vec![0u8; q.encoded_len()];
    let r = q.encode_on(Backend::Scalar, &x, &mut want);
    match r {
        Ok(()) => {
            assert!(x.iter().all(|v| v.is_finite()), "non-finite input encoded");
            assert!(q.side_info_is_valid(&want));
            let mut out = vec![0.0f32; d];
            q.decode(&want, &mut out).unwrap();
            assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
        }
        Err(Error::NonFinite) => {}
        Err(e) => panic!("undocumented error {e} for a valid quantiser and length"),
    }
    for b in backends() {
        let mut got = vec![0u8; q.encoded_len()];
        assert_eq!(q.encode_on(b, &x, &mut got), r, "{b}");
        if r.is_ok() {
            assert_eq!(got, want, "{b}");
        }
    }
    // Wrong lengths and short buffers are errors.
    assert!(q.encode(&x[..d - 1], &mut want).is_err());
    if !want.is_empty() {
        let short = want.len() - 1;
        assert!(q.encode(&x, &mut want[..short]).is_err());
        assert!(q.decode(&want[..short], &mut vec![0.0f32; d]).is_err());
    }
    // Arbitrary bytes decode to finite values exactly when their stored
    // norms are ones an encoder writes; otherwise decode names the norm.
    let raw = inp.bytes(q.encoded_len());
    if raw.len() == q.encoded_len() {
        let mut out = vec![0.0f32; d];
        match q.decode(&raw, &mut out) {
            Ok(()) => {
                assert!(q.side_info_is_valid(&raw));
                assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
            }
            Err(e) => {
                assert_eq!(e, Error::InvalidNorm);
                assert!(!q.side_info_is_valid(&raw));
            }
        }
    }
    // Half-precision inputs encode like their f32 widening.
    let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
    let wide: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
    let mut a = vec![0u8; q.encoded_len()];
    let mut c = vec![0u8; q.encoded_len()];
    let ra = match &q {
        Quantizer::Mse(m) => m.encode_f16(&h, &mut a),
        Quantizer::Prod(p) => p.encode_f16(&h, &mut a),
        Quantizer::Baseline(bq) => bq.encode_f16(&h, &mut a),
        // A quantiser added later: nothing to compare yet.
        _ => return,
    };
    assert_eq!(ra, q.encode(&wide, &mut c));
    assert_eq!(a, c);
    let bh: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let _ = match &q {
        Quantizer::Mse(m) => m.encode_bf16(&bh, &mut a),
        Quantizer::Prod(p) => p.encode_bf16(&bh, &mut a),
        Quantizer::Baseline(bq) => bq.encode_bf16(&bh, &mut a),
        _ => return,
    };
});
