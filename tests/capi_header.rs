//! `include/turbokv.h` agrees with the Rust definitions of the C ABI: every
//! status and enum constant has the same value, the opaque objects' sizes
//! match, the functions declared are exactly the ones exported, and the C
//! test (`examples/c/capi_test.c`) calls every one of them.
#![cfg(feature = "capi")]

use std::collections::BTreeSet;
use std::mem::size_of;

use turbokv::capi;

fn header() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/turbokv.h")).unwrap()
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
                if let (true, Ok(v)) = (name.starts_with("TURBOKV_"), v.trim().parse()) {
                    out.push((name.to_string(), v));
                }
            }
        }
    }
    out
}

/// Names of the functions the header declares (`turbokv_xxx(` at the start
/// of a declaration).
fn declared(h: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in h.lines() {
        if line.starts_with(' ') || line.starts_with("/*") || line.starts_with(" *") {
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
        if name.starts_with("turbokv_") {
            names.insert(name.to_string());
        }
    }
    names
}

/// Names of the functions `src/capi.rs` exports.
fn exported() -> BTreeSet<String> {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/capi.rs")).unwrap();
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

#[test]
fn constants_agree() {
    let h = header();
    let consts = constants(&h);
    let rust: &[(&str, i64)] = &[
        ("TURBOKV_OK", capi::TURBOKV_OK as i64),
        (
            "TURBOKV_NOT_POWER_OF_TWO",
            capi::TURBOKV_NOT_POWER_OF_TWO as i64,
        ),
        ("TURBOKV_TOO_LONG", capi::TURBOKV_TOO_LONG as i64),
        (
            "TURBOKV_LENGTH_MISMATCH",
            capi::TURBOKV_LENGTH_MISMATCH as i64,
        ),
        ("TURBOKV_RAGGED_ROWS", capi::TURBOKV_RAGGED_ROWS as i64),
        (
            "TURBOKV_BACKEND_UNAVAILABLE",
            capi::TURBOKV_BACKEND_UNAVAILABLE as i64,
        ),
        ("TURBOKV_INVALID_BITS", capi::TURBOKV_INVALID_BITS as i64),
        ("TURBOKV_INVALID_DIM", capi::TURBOKV_INVALID_DIM as i64),
        (
            "TURBOKV_BUFFER_TOO_SHORT",
            capi::TURBOKV_BUFFER_TOO_SHORT as i64,
        ),
        (
            "TURBOKV_INVALID_SKETCH_BITS",
            capi::TURBOKV_INVALID_SKETCH_BITS as i64,
        ),
        ("TURBOKV_NON_FINITE", capi::TURBOKV_NON_FINITE as i64),
        ("TURBOKV_CORRUPT_CACHE", capi::TURBOKV_CORRUPT_CACHE as i64),
        ("TURBOKV_CACHE_FULL", capi::TURBOKV_CACHE_FULL as i64),
        (
            "TURBOKV_INDEX_OUT_OF_RANGE",
            capi::TURBOKV_INDEX_OUT_OF_RANGE as i64,
        ),
        (
            "TURBOKV_INVALID_PARAMETER",
            capi::TURBOKV_INVALID_PARAMETER as i64,
        ),
        ("TURBOKV_NULL_POINTER", capi::TURBOKV_NULL_POINTER as i64),
        (
            "TURBOKV_INVALID_HANDLE",
            capi::TURBOKV_INVALID_HANDLE as i64,
        ),
        ("TURBOKV_INTERNAL", capi::TURBOKV_INTERNAL as i64),
        (
            "TURBOKV_CODEBOOK_WORDS",
            (size_of::<capi::turbokv_codebook>() / 8) as i64,
        ),
        (
            "TURBOKV_QUANTIZER_WORDS",
            (size_of::<capi::turbokv_quantizer>() / 8) as i64,
        ),
        (
            "TURBOKV_CACHE_WORDS",
            (size_of::<capi::turbokv_cache>() / 8) as i64,
        ),
        (
            "TURBOKV_VERSION_MAJOR",
            env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap(),
        ),
        (
            "TURBOKV_VERSION_MINOR",
            env!("CARGO_PKG_VERSION_MINOR").parse().unwrap(),
        ),
        (
            "TURBOKV_VERSION_PATCH",
            env!("CARGO_PKG_VERSION_PATCH").parse().unwrap(),
        ),
    ];
    for (name, value) in rust {
        let found: Vec<i64> = consts
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(found, vec![*value], "{name} in the header");
    }
    assert!(h.contains(&format!(
        "#define TURBOKV_VERSION \"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
    // Status codes are dense from 0: turbokv_status_str knows each.
    let statuses = rust
        .iter()
        .filter(|(n, _)| !n.contains("WORDS") && !n.contains("VERSION"));
    for (i, (_, v)) in statuses.enumerate() {
        assert_eq!(*v, i as i64);
    }
    // The config struct: 8 u32 then a u64, no padding.
    assert_eq!(size_of::<capi::turbokv_cache_config>(), 40);
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
