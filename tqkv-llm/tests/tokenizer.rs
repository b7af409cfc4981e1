//! The tokenizer built from the GGUF's vocabulary and merges.

mod common;

use tqkv_llm::TextTokenizer;

#[test]
fn decode_of_encode_is_the_text() {
    let model = common::model();
    let tokenizer = TextTokenizer::from_model(&model).unwrap();
    let text = common::tutorial();
    let ids = tokenizer.encode(&text).unwrap();
    // About 4.2 bytes a token on English prose and code.
    assert!(ids.len() > 50_000 && ids.len() < 70_000, "{}", ids.len());
    assert_eq!(tokenizer.decode(&ids).unwrap(), text);
    for s in [
        "",
        " ",
        "naïve café — ☃ 日本語 🦀",
        "\t\r\n  trailing  ",
        "<|im_start|>user\nHi<|im_end|>",
        "x = 1234567890 ** 2",
    ] {
        let ids = tokenizer.encode(s).unwrap();
        assert_eq!(tokenizer.decode(&ids).unwrap(), s, "{ids:?}");
    }
}

/// FNV-1a 64 over the ids as little-endian u32.
fn fnv1a(ids: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ids.iter().flat_map(|i| i.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The ids of an independent implementation: llama.cpp's `llama-tokenize`
/// (commit 0c1e570, as bundled in the PyPI sdist llama-cpp-python 0.3.36)
/// on the same GGUF, `-p STRING --ids --no-escape` (and `-f data/python_tutorial.txt`
/// for the whole text: its length and FNV-1a 64 hash).
#[test]
fn ids_equal_llama_cpp_tokenizer() {
    let model = common::model();
    let tokenizer = TextTokenizer::from_model(&model).unwrap();
    let cases: [(&str, &[u32]); 5] = [
        (
            "Hello, world! 12345 tokens",
            &[19556, 28, 905, 17, 216, 33, 34, 35, 36, 37, 17837],
        ),
        (
            "  def f(x):\n\treturn x**2  # café ☃",
            &[
                216, 753, 275, 24, 104, 727, 198, 197, 5406, 1792, 828, 34, 216, 907, 37366, 4636,
                242, 221,
            ],
        ),
        (
            "naïve café — ☃ 日本語 🦀",
            &[
                3546, 46494, 37366, 1841, 4636, 242, 221, 17097, 241, 115, 40993, 179, 120, 248,
                15107, 116, 218,
            ],
        ),
        (
            "x = 1234567890 ** 2",
            &[
                104, 446, 216, 33, 34, 35, 36, 37, 38, 39, 40, 41, 32, 1903, 216, 34,
            ],
        ),
        ("<|im_start|>user\nHi<|im_end|>", &[1, 4093, 198, 26843, 2]),
    ];
    for (text, want) in cases {
        assert_eq!(tokenizer.encode(text).unwrap(), want, "{text:?}");
    }
    let ids = tokenizer.encode(&common::tutorial()).unwrap();
    assert_eq!(ids.len(), 67_816);
    assert_eq!(
        &ids[..12],
        &[950, 2483, 100, 316, 29, 591, 291, 42, 198, 198, 16540, 5398]
    );
    assert_eq!(fnv1a(&ids), 0xefd6_840d_151a_b7c4);
}
