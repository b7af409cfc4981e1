use std::path::PathBuf;
use tqkv_llm::{CacheKind, Model, Session, TextTokenizer};

fn main() {
    let path = PathBuf::from(std::env::args().nth(1).unwrap());
    let model = Model::load(&path).unwrap();
    let tok = TextTokenizer::from_model(&model).unwrap();
    for s in [
        "Hello, world! 12345 tokens",
        "  def f(x):\n\treturn x**2  # café ☃",
        "<|im_start|>user\nHi<|im_end|>",
    ] {
        let ids = tok.encode(s).unwrap();
        println!("{s:?} -> {ids:?} -> {:?}", tok.decode(&ids).unwrap());
    }
    let mut s = Session::new(&model, 512, |_| CacheKind::F32).unwrap();
    let ids = tok.encode("The capital of France is").unwrap();
    let mut ids2 = ids.clone();
    let mut l = s.forward(&ids, ids.len() - 1).unwrap();
    for _ in 0..20 {
        let next = l
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u32;
        ids2.push(next);
        l = s.forward(&[next], 0).unwrap();
    }
    println!("{:?}", tok.decode(&ids2).unwrap());
}
