//! `include/tqkv.h` agrees with the Rust definitions of the C ABI: every
//! status and enum constant has the same value, the opaque objects' sizes
//! match, the functions declared are exactly the ones exported, and the C
//! test (`examples/c/capi_test.c`) calls every one of them.
#![cfg(feature = "capi")]

use std::collections::BTreeSet;
use std::mem::size_of;

use tqkv::capi;

fn header() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/tqkv.h")).unwrap()
}

/// `NAME = value` pairs of the header's enums and `#define NAME value`s.
fn constants(h: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for line in h.lines() {
        let line = line.trim();
        let body = line.split("/*").next().unwrap_or("").trim();
        if let Some(rest) = body.strip_prefix("#define ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some(Ok(v))) = (it.next(), it.next().map(str::parse)) {
                out.push((name.to_string(), v));
            }
            continue;
        }
        for part in body.split([',', '{', '}', ';']) {
            if let Some((name, v)) = part.split_once('=') {
                let name = name.trim();
                if let (true, Ok(v)) = (name.starts_with("TQKV_"), v.trim().parse()) {
                    out.push((name.to_string(), v));
                }
            }
        }
    }
    out
}

/// Names of the functions the header declares (`tqkv_xxx(` at the start
/// of a declaration), without its `static inline` helpers.
fn declared(h: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in h.lines() {
        if line.starts_with(' ')
            || line.starts_with("/*")
            || line.starts_with(" *")
            || line.starts_with("static inline")
        {
            continue;
        }
        let Some(open) = line.find('(') else {
            continue;
        };
        let head = &line[..open];
        let name = head
            .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("");
        if name.starts_with("tqkv_") {
            names.insert(name.to_string());
        }
    }
    names
}

/// The sources of the C ABI, `src/capi/*.rs`, concatenated.
fn capi_sources() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/capi");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

/// Names of the functions `src/capi/` exports.
fn exported() -> BTreeSet<String> {
    let src = capi_sources();
    let mut names = BTreeSet::new();
    let mut next_is_export = false;
    for line in src.lines() {
        if line.trim() == "#[unsafe(no_mangle)]" {
            next_is_export = true;
            continue;
        }
        if next_is_export {
            let after = line
                .split("fn ")
                .nth(1)
                .expect("a function follows no_mangle");
            names.insert(after.split('(').next().unwrap().to_string());
            next_is_export = false;
        }
    }
    names
}

/// `name` is defined exactly once in the header, as `value`.
fn assert_defined_once(consts: &[(String, i64)], name: &str, value: i64) {
    let found: Vec<i64> = consts
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(found, vec![value], "{name} in the header");
}

#[test]
fn constants_agree() {
    let h = header();
    let consts = constants(&h);
    let rust: &[(&str, i64)] = &[
        ("TQKV_OK", capi::TQKV_OK as i64),
        ("TQKV_NOT_POWER_OF_TWO", capi::TQKV_NOT_POWER_OF_TWO as i64),
        ("TQKV_TOO_LONG", capi::TQKV_TOO_LONG as i64),
        ("TQKV_LENGTH_MISMATCH", capi::TQKV_LENGTH_MISMATCH as i64),
        ("TQKV_RAGGED_ROWS", capi::TQKV_RAGGED_ROWS as i64),
        (
            "TQKV_BACKEND_UNAVAILABLE",
            capi::TQKV_BACKEND_UNAVAILABLE as i64,
        ),
        ("TQKV_INVALID_BITS", capi::TQKV_INVALID_BITS as i64),
        ("TQKV_INVALID_DIM", capi::TQKV_INVALID_DIM as i64),
        ("TQKV_BUFFER_TOO_SHORT", capi::TQKV_BUFFER_TOO_SHORT as i64),
        (
            "TQKV_INVALID_SKETCH_BITS",
            capi::TQKV_INVALID_SKETCH_BITS as i64,
        ),
        ("TQKV_NON_FINITE", capi::TQKV_NON_FINITE as i64),
        ("TQKV_CORRUPT_CACHE", capi::TQKV_CORRUPT_CACHE as i64),
        ("TQKV_CACHE_FULL", capi::TQKV_CACHE_FULL as i64),
        (
            "TQKV_INDEX_OUT_OF_RANGE",
            capi::TQKV_INDEX_OUT_OF_RANGE as i64,
        ),
        (
            "TQKV_INVALID_PARAMETER",
            capi::TQKV_INVALID_PARAMETER as i64,
        ),
        ("TQKV_NULL_POINTER", capi::TQKV_NULL_POINTER as i64),
        ("TQKV_INVALID_HANDLE", capi::TQKV_INVALID_HANDLE as i64),
        ("TQKV_INTERNAL", capi::TQKV_INTERNAL as i64),
        ("TQKV_MISALIGNED", capi::TQKV_MISALIGNED as i64),
        ("TQKV_ABI_MISMATCH", capi::TQKV_ABI_MISMATCH as i64),
        (
            "TQKV_CODEBOOK_WORDS",
            (size_of::<capi::tqkv_codebook>() / 8) as i64,
        ),
        (
            "TQKV_QUANTIZER_WORDS",
            (size_of::<capi::tqkv_quantizer>() / 8) as i64,
        ),
        (
            "TQKV_CACHE_WORDS",
            (size_of::<capi::tqkv_cache>() / 8) as i64,
        ),
        ("TQKV_ABI_VERSION", capi::TQKV_ABI_VERSION as i64),
        (
            "TQKV_VERSION_MAJOR",
            env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap(),
        ),
        (
            "TQKV_VERSION_MINOR",
            env!("CARGO_PKG_VERSION_MINOR").parse().unwrap(),
        ),
        (
            "TQKV_VERSION_PATCH",
            env!("CARGO_PKG_VERSION_PATCH").parse().unwrap(),
        ),
    ];
    for (name, value) in rust {
        assert_defined_once(&consts, name, *value);
    }
    assert!(h.contains(&format!(
        "#define TQKV_VERSION \"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
    let backends: &[(&str, i64)] = &[
        ("TQKV_BACKEND_SCALAR", capi::TQKV_BACKEND_SCALAR as i64),
        ("TQKV_BACKEND_AVX2", capi::TQKV_BACKEND_AVX2 as i64),
        ("TQKV_BACKEND_AVX512", capi::TQKV_BACKEND_AVX512 as i64),
        ("TQKV_BACKEND_NEON", capi::TQKV_BACKEND_NEON as i64),
        ("TQKV_NORM_F16", capi::TQKV_NORM_F16 as i64),
        ("TQKV_NORM_F32", capi::TQKV_NORM_F32 as i64),
        (
            "TQKV_PROJECTION_GAUSSIAN",
            capi::TQKV_PROJECTION_GAUSSIAN as i64,
        ),
        (
            "TQKV_PROJECTION_HADAMARD",
            capi::TQKV_PROJECTION_HADAMARD as i64,
        ),
        ("TQKV_SCHEME_KV", capi::TQKV_SCHEME_KV as i64),
        ("TQKV_SCHEME_KQV", capi::TQKV_SCHEME_KQV as i64),
        ("TQKV_SCHEME_QKQV", capi::TQKV_SCHEME_QKQV as i64),
        ("TQKV_SCHEME_CUSTOM", capi::TQKV_SCHEME_CUSTOM as i64),
        (
            "TQKV_QUANTIZER_BASELINE",
            capi::TQKV_QUANTIZER_BASELINE as i64,
        ),
        ("TQKV_QUANTIZER_MSE", capi::TQKV_QUANTIZER_MSE as i64),
        ("TQKV_QUANTIZER_PROD", capi::TQKV_QUANTIZER_PROD as i64),
        ("TQKV_SCORING_EXACT", capi::TQKV_SCORING_EXACT as i64),
        ("TQKV_SCORING_INT8", capi::TQKV_SCORING_INT8 as i64),
    ];
    for (name, value) in backends {
        assert_defined_once(&consts, name, *value);
    }
    // Both ways: every constant of the header is one checked here.
    for (name, _) in &consts {
        assert!(
            rust.iter().chain(backends).any(|(n, _)| n == name),
            "{name} is in the header but not checked against Rust"
        );
    }
    // Status codes are dense from 0: tqkv_status_str knows each.
    let statuses = rust
        .iter()
        .filter(|(n, _)| !n.contains("WORDS") && !n.contains("VERSION"));
    for (i, (_, v)) in statuses.enumerate() {
        assert_eq!(*v, i as i64);
    }
    // The config struct: 8 u32, a u64, 4 u32, no padding.
    assert_eq!(size_of::<capi::tqkv_cache_config>(), 56);
}

#[test]
fn declared_functions_are_exactly_the_exported_ones_and_all_tested() {
    let h = header();
    let declared = declared(&h);
    let exported = exported();
    assert_eq!(declared, exported);
    assert!(exported.len() >= 30, "{exported:?}");
    let test = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/c/capi_test.c"
    ))
    .unwrap();
    for name in &exported {
        assert!(
            test.contains(&format!("{name}(")),
            "the C test never calls {name}"
        );
    }
}

/// The header's `static inline` helpers: the C test calls each.
#[test]
fn the_header_helpers_are_all_tested() {
    let h = header();
    let test = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/c/capi_test.c"
    ))
    .unwrap();
    let helpers: Vec<&str> = h
        .lines()
        .filter_map(|l| l.strip_prefix("static inline "))
        .filter_map(|l| l.split('(').next()?.rsplit(' ').next())
        .collect();
    assert_eq!(helpers, ["tqkv_abi_check_header"]);
    for name in helpers {
        assert!(
            test.contains(&format!("{name}(")),
            "the C test never calls {name}"
        );
    }
}

/// `tqkv_abi_check` accepts this library's version and object sizes, and
/// refuses each one changed alone.
#[test]
fn the_abi_check_refuses_any_other_version_or_size() {
    let ours = [
        capi::TQKV_ABI_VERSION as usize,
        size_of::<capi::tqkv_codebook>(),
        size_of::<capi::tqkv_quantizer>(),
        size_of::<capi::tqkv_cache_config>(),
        size_of::<capi::tqkv_cache>(),
    ];
    let check = |a: [usize; 5]| capi::tqkv_abi_check(a[0] as u32, a[1], a[2], a[3], a[4]);
    assert_eq!(check(ours), capi::TQKV_OK);
    assert_eq!(capi::tqkv_abi_version(), capi::TQKV_ABI_VERSION);
    for i in 0..ours.len() {
        for delta in [1usize, 8, usize::MAX] {
            let mut theirs = ours;
            theirs[i] = theirs[i].wrapping_add(delta);
            if i == 0 {
                theirs[0] &= u32::MAX as usize;
            }
            assert_eq!(check(theirs), capi::TQKV_ABI_MISMATCH, "{i} {delta}");
        }
    }
    let s = unsafe { std::ffi::CStr::from_ptr(capi::tqkv_status_str(capi::TQKV_ABI_MISMATCH)) };
    assert!(s.to_str().unwrap().contains("tqkv.h"));
}
