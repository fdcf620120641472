//! Tokenizers of other encoder families (RoBERTa, XLM-R, DeBERTa-v3, ModernBERT, DistilBERT,
//! ELECTRA) read from `tokenizer.json` through the `tokenizers` crate, against transformers'
//! `AutoTokenizer` run for real: scripts/parity/families/make_tokenizers.py trains a tiny tokenizer
//! of each family on the three datasets' text, saves it as transformers does and encodes every row
//! (single texts and pairs); bertfit must give the same input ids, and the same token type ids
//! where the family has them (all zeros where it has none).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use bertfit::data::tokenize::{Encoding, Tokenizer, TOKENIZER_FILE};
use serde::Deserialize;

use super::common::{dataset, minilm, run_python, temp_dir};

/// Truncates about 70% of the encodings of these tiny vocabularies, and leaves the rest whole.
const MAX_LENGTH: usize = 32;
const FAMILIES: &[&str] = &["roberta", "xlm-roberta", "deberta-v2", "modernbert", "distilbert", "electra"];

#[derive(Deserialize)]
struct Text {
    text: String,
    text_pair: Option<String>,
}

#[derive(Deserialize)]
struct Reference {
    input_ids: Vec<i64>,
    token_type_ids: Option<Vec<i64>>,
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// The folder make_tokenizers.py filled (run once for the module's tests).
fn families() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("tokenize_families");
        let csvs: Vec<String> =
            ["movies", "sms", "trec"].iter().map(|n| dataset(n).to_string_lossy().into_owned()).collect();
        let (n, out) = (MAX_LENGTH.to_string(), dir.to_string_lossy().into_owned());
        let mut args = vec!["--max-length", &n, "--out", &out];
        for csv in &csvs {
            args.extend(["--csv", csv]);
        }
        eprint!("{}", run_python("parity/families/make_tokenizers.py", &args));
        dir
    })
}

fn load(dir: &Path) -> Tokenizer {
    Tokenizer::from_dir(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// bertfit's encodings of the texts, single texts and pairs each in one batch, in file order.
fn encode_all(tok: &Tokenizer, texts: &[Text]) -> Vec<Encoding> {
    let singles: Vec<&str> =
        texts.iter().filter(|t| t.text_pair.is_none()).map(|t| t.text.as_str()).collect();
    let pairs: Vec<(&str, &str)> =
        texts.iter().filter_map(|t| Some((t.text.as_str(), t.text_pair.as_deref()?))).collect();
    let (a, b): (Vec<&str>, Vec<&str>) = pairs.into_iter().unzip();
    let mut out = tok.encode_batch(&singles, None, MAX_LENGTH);
    out.extend(tok.encode_batch(&a, Some(&b), MAX_LENGTH));
    out
}

/// Compares every encoding with transformers'; returns a report of the first differences.
fn differences(tok: &Tokenizer, texts: &[Text], refs: &[Reference]) -> Vec<String> {
    assert_eq!(texts.len(), refs.len(), "texts.jsonl and reference.jsonl differ in length");
    let ours = encode_all(tok, texts);
    let mut bad = Vec::new();
    for (i, ((t, r), e)) in texts.iter().zip(refs).zip(&ours).enumerate() {
        let types = r.token_type_ids.clone().unwrap_or_else(|| vec![0; r.input_ids.len()]);
        if e.input_ids != r.input_ids || e.token_type_ids != types {
            bad.push(format!(
                "row {i} {:?} / {:?}:\n  bertfit {:?} {:?}\n  HF      {:?} {:?}",
                t.text, t.text_pair, e.input_ids, e.token_type_ids, r.input_ids, types
            ));
        }
    }
    bad
}

#[test]
fn every_family_matches_autotokenizer_on_every_row() {
    let dir = families();
    let texts: Vec<Text> = read_jsonl(&dir.join("texts.jsonl"));
    assert!(texts.len() > 40_000, "three datasets, single texts and pairs: {} inputs", texts.len());
    for family in FAMILIES {
        let folder = dir.join(family);
        let refs: Vec<Reference> = read_jsonl(&folder.join("reference.jsonl"));
        let tok = load(&folder);
        // transformers 5 saves no vocab.txt: every family goes through the tokenizers crate.
        assert!(tok.uses_tokenizer_json(), "{family}: expected the tokenizer.json path");
        let has_types = refs[0].token_type_ids.is_some();
        assert_eq!(tok.has_token_types(), has_types, "{family}: token type ids");
        let cut = refs.iter().filter(|r| r.input_ids.len() == MAX_LENGTH).count();
        assert!(cut > 0 && cut < refs.len(), "{family}: {cut} of {} truncated", refs.len());
        let bad = differences(&tok, &texts, &refs);
        assert!(
            bad.is_empty(),
            "{family}: {} of {} encodings differ from AutoTokenizer's; first:\n{}",
            bad.len(),
            refs.len(),
            bad[..bad.len().min(3)].join("\n")
        );
    }
}

/// Known outcomes, so the comparison cannot pass by both sides agreeing on nonsense: each family's
/// special ids and pair template.
#[test]
fn family_templates_and_special_ids() {
    let dir = families();
    let roberta = load(&dir.join("roberta"));
    // RoBERTa's layout: <s>=0 <pad>=1 </s>=2; pairs are <s> A </s></s> B </s> without types.
    assert_eq!(
        (roberta.cls_token_id(), roberta.pad_token_id(), roberta.sep_token_id()),
        (Some(0), 1, Some(2))
    );
    let e = roberta.encode("a b", Some("c"), 512);
    let (s, sep) = (e.input_ids.as_slice(), 2);
    assert_eq!((s[0], s[s.len() - 1]), (0, sep), "{s:?}");
    assert!(s.windows(2).any(|w| w == [sep, sep]), "</s></s> between the texts: {s:?}");
    assert!(e.token_type_ids.iter().all(|&t| t == 0));

    let deberta = load(&dir.join("deberta-v2"));
    // DeBERTa-v3's layout: [PAD]=0 [CLS]=1 [SEP]=2; [CLS] A [SEP] B [SEP] with B's types 1.
    assert_eq!(
        (deberta.cls_token_id(), deberta.pad_token_id(), deberta.sep_token_id()),
        (Some(1), 0, Some(2))
    );
    let e = deberta.encode("a b", Some("c"), 512);
    assert_eq!(e.input_ids.iter().filter(|&&id| id == 2).count(), 2, "{:?}", e.input_ids);
    assert_eq!(e.token_type_ids.last(), Some(&1));
    assert_eq!(
        e.token_type_ids.iter().filter(|&&t| t == 0).count(),
        e.input_ids.iter().position(|&i| i == 2).unwrap() + 1
    );

    let modernbert = load(&dir.join("modernbert"));
    assert!(!modernbert.has_token_types(), "ModernBERT's model_input_names has no token_type_ids");
    // Truncation of a pair keeps the budget exactly.
    assert_eq!(roberta.encode(&"word ".repeat(100), Some(&"other ".repeat(100)), 20).input_ids.len(), 20);
}

/// A saved model folder gets the tokenizer files as they were: the same tokenizer loads from it.
#[test]
fn saved_files_load_the_same_tokenizer() {
    let dir = families();
    let texts: Vec<Text> = read_jsonl(&dir.join("texts.jsonl"));
    let sample = &texts[..200];
    for family in ["roberta", "xlm-roberta"] {
        let tok = load(&dir.join(family));
        let out = temp_dir(&format!("tokenize_families_saved_{family}"));
        tok.save_files(&out).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.join(TOKENIZER_FILE).exists() && out.join("tokenizer_config.json").exists());
        assert_eq!(encode_all(&load(&out), sample), encode_all(&tok, sample), "{family}");
    }
}

fn error_of(dir: &Path) -> String {
    match Tokenizer::from_dir(dir) {
        Ok(_) => panic!("{}: loaded, expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

/// Negative controls: a damaged tokenizer.json, an unknown model type, a pad token missing from
/// the vocabulary are errors naming the file, never panics.
#[test]
fn bad_tokenizer_json_names_the_file() {
    let src = families().join("roberta");
    let dir = temp_dir("tokenize_families_bad");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let json_path = dir.join(TOKENIZER_FILE);
    let good = std::fs::read_to_string(&json_path).unwrap();

    std::fs::write(&json_path, &good[..good.len() / 2]).unwrap();
    let msg = error_of(&dir);
    assert!(msg.contains(&json_path.display().to_string()), "{msg}");

    std::fs::write(&json_path, good.replacen("\"type\": \"BPE\"", "\"type\": \"NotAModel\"", 1)).unwrap();
    let msg = error_of(&dir);
    assert!(msg.contains("tokenizer.json"), "{msg}");

    std::fs::write(&json_path, &good).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"tokenizer_class": "RobertaTokenizer", "pad_token": "<nope>"}"#,
    )
    .unwrap();
    let msg = error_of(&dir);
    assert!(msg.contains("tokenizer.json") && msg.contains("pad_token") && msg.contains("<nope>"), "{msg}");
}

/// BERT WordPiece through both paths: bertfit's saved `tokenizer.json` for MiniLM read by the
/// `tokenizers` crate (the folder without `vocab.txt`) gives the ids of the `vocab.txt` path on
/// every dataset text and pair; the times are printed (`--nocapture`) for the record.
#[test]
fn bert_wordpiece_same_through_both_paths() {
    let saved = temp_dir("tokenize_families_bert_json");
    let wordpiece = load(&minilm());
    wordpiece.save_files(&saved).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(saved.join("vocab.txt")).unwrap();
    let json = load(&saved);
    assert!(json.uses_tokenizer_json() && !wordpiece.uses_tokenizer_json());
    assert!(json.has_token_types(), "BertTokenizer has token types");
    let texts: Vec<Text> = read_jsonl(&families().join("texts.jsonl"));
    let singles: Vec<&str> =
        texts.iter().filter(|t| t.text_pair.is_none()).map(|t| t.text.as_str()).collect();
    let time = |tok: &Tokenizer| {
        let t0 = Instant::now();
        let out = tok.encode_batch(&singles, None, 128);
        (out, singles.len() as f64 / t0.elapsed().as_secs_f64())
    };
    let ((a, fast), (b, crate_rate)) = (time(&wordpiece), time(&json));
    assert!(a == b, "single texts differ between the vocab.txt path and the tokenizers crate");
    eprintln!("{} texts: vocab.txt path {fast:.0}/s, tokenizers crate {crate_rate:.0}/s", singles.len());
    let (x, y) = (encode_all(&wordpiece, &texts), encode_all(&json, &texts));
    assert!(x == y, "pairs or truncation differ between the two paths");
}
