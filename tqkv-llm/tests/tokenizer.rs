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
