//! `llm`: SmolLM2-135M on f32, f16 and tqkv caches (see the crate README).

mod report;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use tqkv_eval::metrics::{Statistic, bootstrap_ci};
use tqkv_llm::perplexity::{Scores, argmax, score};
use tqkv_llm::{CacheKind, LlmError, Model, Preset, Session, TextTokenizer, Weights};

const HELP: &str = "\
llm — SmolLM2-135M decoding on f32, f16 and tqkv compressed KV caches

USAGE:
    llm perplexity [--context N]... [--configs A,B,…] [--tokens N] [--out DIR]
    llm speed [--context N]... [--configs A,B,…] [--steps N]
    llm generate [--config SPEC] [--steps N] PROMPT
    llm tokenize [--text FILE]       (prints the ids of the text)
    llm report [--out DIR]           (table-<context>.md and plot-<context>.svg from
                                      DIR/results.csv and DIR/llamacpp.csv)

OPTIONS:
    --model FILE    the GGUF (default: target/models/SmolLM2-135M-Instruct.Q4_1.gguf,
                    made by tools/fetch_model.sh)
    --text FILE     the text to score (default: data/python_tutorial.txt)
    --tokens N      score the first N tokens of the text (default 16384)
    --context N     window (perplexity) or context (speed); repeatable
                    (default: 2048 for perplexity; 1024, 4096, 8160 for speed)
    --configs LIST  cache specs, comma-separated (default: the full grid); see
                    `Preset` in the crate docs: f32, f16, kqv4, qkqv3g,
                    kqv3+edge:kqv5, …
    --out DIR       where results.csv goes (default: docs/llm); rows of the same
                    config and context are replaced, others kept
    --steps N       decode steps to time or generate (default 32)
    --weights W     f32 (default: the model's weights exactly) or f16 (half the
                    memory traffic of a decoded token; speed only)
    -h, --help      this text
";

/// The grid of the README's table.
const GRID: &str = "f16,kv2,kv3,kv4,kv5,kv6,kqv2,kqv3,kqv4,kqv5,kqv6,qkqv2,qkqv3,qkqv4,qkqv5,qkqv6,kqv3g,kqv4g,qkqv3g,qkqv4g,kqv3+edge:kqv5,kqv4+edge:kqv6,kv3+edge:kv5,kv4+edge:kv6";

#[derive(Clone)]
struct Args {
    command: String,
    model: PathBuf,
    text: PathBuf,
    tokens: usize,
    contexts: Vec<usize>,
    configs: Vec<String>,
    out: PathBuf,
    steps: usize,
    prompt: Option<String>,
    weights: Weights,
}

fn parse() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut args = Args {
        command: String::new(),
        model: PathBuf::from("target/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        text: PathBuf::from("data/python_tutorial.txt"),
        tokens: 16_384,
        contexts: Vec::new(),
        configs: Vec::new(),
        out: PathBuf::from("docs/llm"),
        steps: 32,
        prompt: None,
        weights: Weights::F32,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                print!("{HELP}");
                std::process::exit(0);
            }
            Long("model") => args.model = parser.value()?.parse()?,
            Long("text") => args.text = parser.value()?.parse()?,
            Long("tokens") => args.tokens = parser.value()?.parse()?,
            Long("context") => args.contexts.push(parser.value()?.parse()?),
            Long("configs") | Long("config") => {
                let list: String = parser.value()?.parse()?;
                args.configs.extend(list.split(',').map(str::to_owned));
            }
            Long("out") => args.out = parser.value()?.parse()?,
            Long("steps") => args.steps = parser.value()?.parse()?,
            Long("weights") => {
                args.weights = match parser.value()?.string()?.as_str() {
                    "f32" => Weights::F32,
                    "f16" => Weights::F16,
                    other => return Err(format!("--weights {other}: f32 or f16").into()),
                }
            }
            Value(v) if args.command.is_empty() => args.command = v.parse()?,
            Value(v) if args.command == "generate" && args.prompt.is_none() => {
                args.prompt = Some(v.parse()?)
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n\n{HELP}");
            std::process::exit(2);
        }
    };
    let result = match args.command.as_str() {
        "perplexity" => perplexity(&args),
        "speed" => speed(&args),
        "generate" => generate(&args),
        "tokenize" => tokenize(&args),
        "report" => write_report(&args),
        other => Err(LlmError::Invalid(format!(
            "unknown command {other:?}: perplexity, speed, generate or tokenize (--help)"
        ))),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn presets(args: &Args, default: &str) -> Result<Vec<Preset>, LlmError> {
    let list: Vec<String> = match args.configs.is_empty() {
        true => default.split(',').map(str::to_owned).collect(),
        false => args.configs.clone(),
    };
    list.iter().map(|s| Preset::parse(s)).collect()
}

fn tokens(args: &Args, model: &Model) -> Result<Vec<u32>, LlmError> {
    let text = std::fs::read_to_string(&args.text).map_err(|e| {
        LlmError::Invalid(format!(
            "cannot read the text {}: {e} (tools/fetch_text.sh makes data/python_tutorial.txt)",
            args.text.display()
        ))
    })?;
    let mut ids = TextTokenizer::from_model(model)?.encode(&text)?;
    if ids.len() < args.tokens {
        return Err(LlmError::Invalid(format!(
            "the text has {} tokens, fewer than --tokens {}",
            ids.len(),
            args.tokens
        )));
    }
    ids.truncate(args.tokens);
    Ok(ids)
}

fn perplexity(args: &Args) -> Result<(), LlmError> {
    let model = Model::load(&args.model)?;
    let ids = tokens(args, &model)?;
    let presets = presets(args, GRID)?;
    let contexts = if args.contexts.is_empty() {
        vec![2048]
    } else {
        args.contexts.clone()
    };
    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join("results.csv");
    let (dim, layers) = (model.config.head_dim, model.config.layers);
    for &window in &contexts {
        let reference = score(&model, &ids, window, &|_| CacheKind::F32, None, true)?;
        eprintln!(
            "context {window}: f32 cache PPL {:.4} over {} tokens ({:.0} s)",
            reference.perplexity(),
            reference.nll.len(),
            reference.seconds.1
        );
        merge(&path, &row("f32", window, 32.0, &reference, &reference)?)?;
        for p in &presets {
            let s = score(
                &model,
                &ids,
                window,
                &|l| p.kind(l, layers),
                Some(&reference),
                false,
            )?;
            let line = row(
                &p.name,
                window,
                p.bits_per_coordinate(dim, layers),
                &s,
                &reference,
            )?;
            eprintln!("{line}");
            merge(&path, &line)?;
        }
    }
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Adds `line` to the CSV at `path` (made with its header if missing),
/// replacing a row of the same source, config and context.
fn merge(path: &std::path::Path, line: &str) -> Result<(), LlmError> {
    let key = |l: &str| l.split(',').take(3).collect::<Vec<_>>().join(",");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = format!("{}\n", report::HEADER);
    for l in old.lines().skip(1).filter(|l| key(l) != key(line)) {
        out += l;
        out.push('\n');
    }
    out += line;
    std::fs::write(path, out)?;
    Ok(())
}

fn write_report(args: &Args) -> Result<(), LlmError> {
    let mut rows = report::read(&args.out.join("results.csv"))?;
    let llamacpp = args.out.join("llamacpp.csv");
    if llamacpp.exists() {
        rows.extend(report::read(&llamacpp)?);
    }
    report::write(&rows, &args.out)?;
    eprintln!("wrote table-*.md and plot-*.svg to {}", args.out.display());
    Ok(())
}

/// One CSV row: PPL, ΔPPL against the f32 cache with a paired bootstrap
/// interval over tokens, mean KL with its interval, top-1 agreement.
fn row(name: &str, window: usize, bits: f64, s: &Scores, r: &Scores) -> Result<String, LlmError> {
    let diff: Vec<f64> = s.nll.iter().zip(&r.nll).map(|(a, b)| a - b).collect();
    let ci = |x: &[f64], seed| {
        bootstrap_ci(&[x], Statistic::Mean, 0.95, 2000, seed)
            .map_err(|e| LlmError::Invalid(format!("bootstrap: {e}")))
    };
    let d = ci(&diff, 1)?;
    let pct = |m: f64| (m.exp() - 1.0) * 100.0;
    let kl = if s.kl.is_empty() {
        vec![0.0; s.nll.len()]
    } else {
        s.kl.clone()
    };
    let k = ci(&kl, 2)?;
    let agree =
        s.top1.iter().zip(&r.top1).filter(|(a, b)| a == b).count() as f64 / s.top1.len() as f64;
    let mut line = String::new();
    let _ = write!(
        line,
        "tqkv,{name},{window},{bits:.4},{},{:.5},f32,{:.5},{:.3},{:.3},{:.3},{:.6},{:.6},{:.6},{:.2},{:.1},{:.1}",
        s.nll.len(),
        s.perplexity(),
        r.perplexity(),
        pct(d.estimate),
        pct(d.lower),
        pct(d.upper),
        k.estimate,
        k.lower,
        k.upper,
        agree * 100.0,
        s.seconds.0,
        s.seconds.1,
    );
    Ok(line)
}

fn speed(args: &Args) -> Result<(), LlmError> {
    let model = Model::load_with(&args.model, args.weights)?;
    let ids = tokens(
        &Args {
            tokens: 8192,
            ..args.clone()
        },
        &model,
    )?;
    let presets = presets(args, "f32,f16,kqv4")?;
    let contexts = if args.contexts.is_empty() {
        vec![1024, 4096, 8160]
    } else {
        args.contexts.clone()
    };
    println!("| context | cache | tokens/s | attention share | against f32 |");
    println!("|---|---|---|---|---|");
    let layers = model.config.layers;
    for &context in &contexts {
        let mut f32_rate = None;
        for p in &presets {
            let capacity = context + args.steps;
            let mut session = Session::new(&model, capacity, |l| p.kind(l, layers))?;
            for chunk in ids[..context].chunks(512) {
                session.forward(chunk, chunk.len())?;
            }
            session.timing = Default::default();
            let mut next = ids[context];
            let start = Instant::now();
            for _ in 0..args.steps {
                let logits = session.forward(&[next], 0)?;
                next = argmax(&logits);
            }
            let seconds = start.elapsed().as_secs_f64();
            let rate = args.steps as f64 / seconds;
            let share = session.timing.attention.as_secs_f64() / session.timing.total.as_secs_f64();
            let base = *f32_rate.get_or_insert(rate);
            println!(
                "| {context} | {} | {rate:.1} | {:.0} % | {:.2}× |",
                p.name,
                share * 100.0,
                rate / base
            );
        }
    }
    Ok(())
}

fn tokenize(args: &Args) -> Result<(), LlmError> {
    let model = Model::load(&args.model)?;
    let text = std::fs::read_to_string(&args.text)?;
    let ids = TextTokenizer::from_model(&model)?.encode(&text)?;
    println!("{ids:?}");
    Ok(())
}

fn generate(args: &Args) -> Result<(), LlmError> {
    let model = Model::load(&args.model)?;
    let tokenizer = TextTokenizer::from_model(&model)?;
    let preset = Preset::parse(args.configs.first().map_or("kqv4", String::as_str))?;
    let prompt = args
        .prompt
        .clone()
        .unwrap_or_else(|| "The capital of France is".into());
    let mut ids = tokenizer.encode(&prompt)?;
    let layers = model.config.layers;
    let mut session = Session::new(&model, ids.len() + args.steps, |l| preset.kind(l, layers))?;
    let mut logits = session.forward(&ids, ids.len() - 1)?;
    for _ in 0..args.steps {
        let next = argmax(&logits);
        ids.push(next);
        logits = session.forward(&[next], 0)?;
    }
    println!("{}", tokenizer.decode(&ids)?);
    Ok(())
}
