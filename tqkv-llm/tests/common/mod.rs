//! The model the tests run: `tools/fetch_model.sh` puts it in
//! `target/models/`; `TQKV_MODEL` names another path. (Each test binary
//! uses part of this module.)
#![allow(dead_code)]

use std::path::PathBuf;

use tqkv_llm::Model;

pub fn model_path() -> PathBuf {
    std::env::var_os("TQKV_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        })
}

pub fn model() -> Model {
    Model::load(&model_path()).unwrap_or_else(|e| panic!("{e}"))
}

pub fn tutorial() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/python_tutorial.txt");
    std::fs::read_to_string(path).expect("data/python_tutorial.txt (tools/fetch_text.sh)")
}

/// The first `n` tokens of the tutorial, as `model`'s tokenizer gives them.
pub fn tutorial_tokens(model: &Model, n: usize) -> Vec<u32> {
    let ids = tqkv_llm::TextTokenizer::from_model(model)
        .unwrap()
        .encode(&tutorial())
        .unwrap();
    ids[..n].to_vec()
}
