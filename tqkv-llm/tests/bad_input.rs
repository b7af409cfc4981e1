//! Bad model files and bad requests: clear errors naming the problem and
//! the fix, never a panic.

mod common;

use std::io::Write;

use candle_core::quantized::gguf_file;
use tqkv_llm::{CacheKind, LlmError, Model, Session};

fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tqkv-llm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

fn message(r: Result<Model, LlmError>) -> (LlmError, String) {
    match r {
        Ok(_) => panic!("a bad model file loaded"),
        Err(e) => {
            let text = e.to_string();
            (e, text)
        }
    }
}

#[test]
fn missing_file_names_the_fetch_script() {
    let (e, text) = message(Model::load(std::path::Path::new("/no/such/model.gguf")));
    assert!(matches!(e, LlmError::ModelMissing(_)));
    assert!(text.contains("tools/fetch_model.sh"), "{text}");
}

#[test]
fn a_file_that_is_not_gguf_says_so() {
    let path = temp("text.gguf", b"just some text, not a model at all\n");
    let (e, text) = message(Model::load(&path));
    assert!(matches!(e, LlmError::NotGguf { .. }), "{text}");
    assert!(text.contains("not a GGUF"), "{text}");
}

#[test]
fn a_truncated_model_names_both_lengths_and_the_fix() {
    let bytes = std::fs::read(common::model_path()).unwrap();
    let path = temp("truncated.gguf", &bytes[..bytes.len() / 2]);
    let (e, text) = message(Model::load(&path));
    match e {
        LlmError::Truncated { found, needed, .. } => {
            assert_eq!(found as usize, bytes.len() / 2);
            assert!(needed as usize <= bytes.len() && needed > found);
        }
        other => panic!("{other}"),
    }
    assert!(
        text.contains("truncated") && text.contains("fetch_model.sh"),
        "{text}"
    );
}

#[test]
fn another_architecture_is_unsupported() {
    let mut buf = std::io::Cursor::new(Vec::new());
    let arch = gguf_file::Value::String("gpt2".into());
    gguf_file::write(&mut buf, &[("general.architecture", &arch)], &[]).unwrap();
    let path = temp("gpt2.gguf", buf.get_ref());
    let (e, text) = message(Model::load(&path));
    assert!(matches!(e, LlmError::Unsupported(_)), "{text}");
    assert!(text.contains("\"gpt2\""), "{text}");
}

#[test]
fn contexts_past_the_capacity_or_the_model_are_errors() {
    let model = common::model();
    // Past what the model was trained for.
    let Err(e) = Session::new(&model, model.config.context + 1, |_| CacheKind::F32) else {
        panic!("a context past the model's accepted");
    };
    assert!(matches!(e, LlmError::ContextTooLong { .. }), "{e}");
    // Past the session's capacity, on every kind of cache.
    for kind in ["f32", "f16", "kqv4"] {
        let preset = tqkv_llm::Preset::parse(kind).unwrap();
        let mut s = Session::new(&model, 4, |l| preset.kind(l, 30)).unwrap();
        s.forward(&[1, 2, 3], 3).unwrap();
        let e = s.forward(&[4, 5], 2).unwrap_err();
        assert!(
            matches!(
                e,
                LlmError::ContextTooLong {
                    needed: 5,
                    capacity: 4
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("larger capacity"), "{e}");
        // Nothing was stored: one more token still fits.
        s.forward(&[4], 1).unwrap();
    }
    // A token outside the vocabulary.
    let mut s = Session::new(&model, 4, |_| CacheKind::F32).unwrap();
    let e = s.forward(&[49_152], 1).unwrap_err();
    assert!(e.to_string().contains("outside the vocabulary"), "{e}");
}

#[test]
fn bad_cache_specs_name_the_grammar() {
    for bad in ["kqv9", "kqv", "q4", "km4", "kx4vm4", "kp1vm4", ""] {
        let e = tqkv_llm::Preset::parse(bad).unwrap_err();
        assert!(e.to_string().contains("expected"), "{bad}: {e}");
    }
}
