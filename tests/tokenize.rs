//! The tokenizer against transformers' `BertTokenizer` run for real (scripts/parity/tokenize_reference.py):
//! every text of the three datasets, hard strings and pairs, every Unicode scalar value, and the
//! errors of `from_dir`. Input ids, token type ids and attention masks must be equal.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bertfit::data::tokenize::{Encoding, Tokenizer, WordPieceTokenizer};
use serde::Deserialize;

use super::common::{dataset, minilm, run_python, temp_dir};

/// One line of tokenize_reference.py's output.
#[derive(Deserialize)]
struct Reference {
    text: String,
    text_pair: Option<String>,
    input_ids: Vec<i64>,
    token_type_ids: Vec<i64>,
    attention_mask: Vec<i64>,
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn load(dir: &Path) -> Tokenizer {
    Tokenizer::from_dir(dir).unwrap_or_else(|e| panic!("{e}"))
}

fn read_references(path: &Path) -> Vec<Reference> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// HF's encodings of a dataset CSV's `text` column (the texts come back with them).
fn reference_csv(model: &Path, csv: &Path, max_length: usize, name: &str) -> Vec<Reference> {
    let out = temp_dir(name).join("reference.jsonl");
    let n = max_length.to_string();
    run_python(
        "parity/tokenize_reference.py",
        &["--model", path_str(model), "--csv", path_str(csv), "--max-length", &n, "--output", path_str(&out)],
    );
    read_references(&out)
}

/// HF's encodings of texts and pairs.
fn reference_texts(
    model: &Path,
    items: &[(String, Option<String>)],
    max_length: usize,
    name: &str,
) -> Vec<Reference> {
    let dir = temp_dir(name);
    let (input, out) = (dir.join("input.jsonl"), dir.join("reference.jsonl"));
    let mut lines = String::new();
    for (text, pair) in items {
        let row = match pair {
            None => serde_json::json!({ "text": text }),
            Some(p) => serde_json::json!({ "text": text, "text_pair": p }),
        };
        lines.push_str(&row.to_string());
        lines.push('\n');
    }
    std::fs::write(&input, lines).expect("write input.jsonl");
    let n = max_length.to_string();
    run_python(
        "parity/tokenize_reference.py",
        &[
            "--model",
            path_str(model),
            "--input",
            path_str(&input),
            "--max-length",
            &n,
            "--output",
            path_str(&out),
        ],
    );
    let refs = read_references(&out);
    assert_eq!(
        refs.len(),
        items.len(),
        "tokenize_reference.py wrote {} lines for {} inputs",
        refs.len(),
        items.len()
    );
    refs
}

/// Compares `encode` (one at a time) and `encode_batch` (singles and pairs in two calls) with HF;
/// panics listing the first differences.
fn assert_matches_hf(tok: &Tokenizer, refs: &[Reference], max_length: usize, what: &str) {
    let singles: Vec<&Reference> = refs.iter().filter(|r| r.text_pair.is_none()).collect();
    let pairs: Vec<&Reference> = refs.iter().filter(|r| r.text_pair.is_some()).collect();
    let texts: Vec<&str> = singles.iter().map(|r| r.text.as_str()).collect();
    let batch_singles = tok.encode_batch(&texts, None, max_length);
    let firsts: Vec<&str> = pairs.iter().map(|r| r.text.as_str()).collect();
    let seconds: Vec<&str> = pairs.iter().filter_map(|r| r.text_pair.as_deref()).collect();
    let batch_pairs = tok.encode_batch(&firsts, Some(&seconds), max_length);
    assert_eq!((batch_singles.len(), batch_pairs.len()), (singles.len(), pairs.len()));

    let mut report = String::new();
    let mut failures = 0;
    let batched = singles.iter().zip(&batch_singles).chain(pairs.iter().zip(&batch_pairs));
    for (r, from_batch) in batched {
        assert_eq!(
            r.attention_mask,
            vec![1; r.input_ids.len()],
            "HF's attention mask is not all ones: {:?}",
            r.text
        );
        let one = tok.encode(&r.text, r.text_pair.as_deref(), max_length);
        let expected = Encoding { input_ids: r.input_ids.clone(), token_type_ids: r.token_type_ids.clone() };
        if one != expected || *from_batch != expected {
            failures += 1;
            if failures <= 5 {
                let shorten = |s: &str| s.chars().take(300).collect::<String>();
                let _ = writeln!(
                    report,
                    "text {:?}\npair {:?}\n  hf     {:?} {:?}\n  encode {:?} {:?}\n  batch  {:?} {:?}",
                    shorten(&r.text),
                    r.text_pair.as_deref().map(shorten),
                    expected.input_ids,
                    expected.token_type_ids,
                    one.input_ids,
                    one.token_type_ids,
                    from_batch.input_ids,
                    from_batch.token_type_ids,
                );
            }
        }
        assert!(
            one.input_ids.len() <= max_length,
            "{what}: {} tokens > max_length {max_length}",
            one.input_ids.len()
        );
    }
    assert!(
        failures == 0,
        "{what}: {failures} of {} encodings differ from HF's; the first:\n{report}",
        refs.len()
    );
}

#[test]
fn datasets_match_hf() {
    let tok = load(&minilm());
    for (name, max_length) in [("movies", 512), ("sms", 512), ("trec", 512), ("sms", 128)] {
        let refs =
            reference_csv(&minilm(), &dataset(name), max_length, &format!("tokenize_{name}_{max_length}"));
        assert!(refs.len() > 5000, "{name}: only {} texts", refs.len());
        if max_length == 128 {
            let truncated = refs.iter().filter(|r| r.input_ids.len() == 128).count();
            assert!(truncated > 0, "sms at 128: nothing was truncated, the case is not exercised");
        }
        assert_matches_hf(&tok, &refs, max_length, &format!("{name}.csv at max_length {max_length}"));
    }
}

/// `n` words of running text with punctuation, digits and accents.
fn long_text(n: usize, seed: usize) -> String {
    const WORDS: &[&str] = &[
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dogs,",
        "and",
        "émigrés",
        "say:",
        "\"naïve\"",
        "tokenization",
        "(really)",
        "isn't",
        "42",
        "3.14",
        "well-known",
        "unbelievably",
        "café!",
    ];
    (0..n).map(|i| WORDS[(i * 7 + seed) % WORDS.len()]).collect::<Vec<_>>().join(" ")
}

fn hard_strings() -> Vec<(String, Option<String>)> {
    let singles: Vec<String> = vec![
        "Café naïve résumé Ångström Straße über ÜBER façade".into(),
        "crème brûlée, jalapeño, Øresund, Łódź, Dvořák, İstanbul, ǅ, ﬁne ﬀ".into(),
        "e\u{301} a\u{308} n\u{303} \u{301}alone x\u{20dd} \u{1ab0} =\u{338} a\u{323}\u{302} a\u{302}\u{323}"
            .into(),
        "北京大学 is in 北京, 東京 and 서울 too; mixed中文text 한국어 ひらがな カタカナ".into(),
        "CJK ext: \u{20000}\u{2a6d6} \u{2b820}x \u{2b920}y \u{f900}".into(),
        "I ❤️ NY 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷 😀😀 ✌\u{fe0f}".into(),
        "a\u{0}b\u{7}c\u{1b}d e\u{0} \u{7} \u{1b} \u{7f} \u{85}x \u{b}y \u{c}z \u{1c}w".into(),
        "\t tab\r\nline\nfeed\r end\t".into(),
        "zero\u{200b}width joiner\u{200d}here \u{feff}bom wo\u{200c}rd \u{2060}wj \u{ad}soft".into(),
        "line\u{2028}sep para\u{2029}sep \u{2028}\u{2029}".into(),
        "non\u{a0}breaking ideographic\u{3000}space narrow\u{202f}nb em\u{2003}space \u{1680}ogham".into(),
        "ΣΊΣΥΦΟΣ Σίσυφος ὈΔΥΣΣΕΎΣ λόγος ΛΌΓΟΣ ς σ Σ".into(),
        "x\u{378}y \u{378} \u{e000}private \u{fffd}replacement \u{10ffff}".into(),
        "new marks and punctuation: a\u{8d3}b x\u{2e43}y \u{111c9}w \u{110cd}v a≠b x<y ≮ ≯ \u{1fef}".into(),
        "a".repeat(100),
        "b".repeat(101),
        "a".repeat(150),
        "supercalifragilistic".repeat(8),
        format!("{} short {}", "é".repeat(120), "x".repeat(99)),
        String::new(),
        " ".into(),
        "   \t\n  \r\n ".into(),
        "\u{3000}\u{a0}\u{2028}".into(),
        "\u{200b}\u{feff}".into(),
        "Hello [MASK] world [SEP] x[CLS]y [mask] [UNK] [PAD]. [MA\u{7}SK]".into(),
        "ＦＵＬＬＷＩＤＴＨ １２３！ ｶﾀｶﾅ ①②③ ™ ℃ ½".into(),
        "URLs: https://example.com/a?b=c&d=e#f, e-mail: a.b@c.de, $9.99, 50%, #tag @user".into(),
        "won't can't it's we're they've I'd y'all rock'n'roll".into(),
        long_text(3000, 0),
    ];
    let pairs: Vec<(String, String)> = vec![
        ("How are you?".into(), "I am fine, thanks.".into()),
        // Both over 512 tokens. (Not thousands of words: at max_length 16 HF builds every overflow
        // window of both texts, seconds per pair.)
        (long_text(1000, 1), long_text(800, 3)),
        (long_text(800, 2), long_text(1000, 5)),
        (long_text(900, 4), long_text(900, 6)),
        ("short first".into(), long_text(1000, 7)),
        (long_text(1000, 8), "short second".into()),
        (String::new(), long_text(600, 9)),
        (long_text(600, 10), String::new()),
        (String::new(), String::new()),
        ("北京 Café".into(), "line\u{2028}sep ΣΊΣΥΦΟΣ".into()),
    ];
    let mut items: Vec<(String, Option<String>)> = singles.into_iter().map(|s| (s, None)).collect();
    items.extend(pairs.into_iter().map(|(a, b)| (a, Some(b))));
    items
}

#[test]
fn hard_strings_match_hf() {
    let tok = load(&minilm());
    let items = hard_strings();
    for max_length in [512, 16] {
        let refs = reference_texts(&minilm(), &items, max_length, &format!("tokenize_hard_{max_length}"));
        assert_matches_hf(&tok, &refs, max_length, &format!("hard strings at max_length {max_length}"));
    }
    // Some cases whose outcome is known, so the test cannot pass by both sides agreeing on nonsense.
    let cls_sep = Encoding {
        input_ids: vec![tok.cls_token_id().unwrap(), tok.sep_token_id().unwrap()],
        token_type_ids: vec![0, 0],
    };
    assert_eq!(tok.encode("", None, 512), cls_sep);
    assert_eq!(tok.encode(" \t\n\u{3000}", None, 512), cls_sep);
    assert_eq!(tok.encode(&long_text(3000, 0), None, 512).input_ids.len(), 512);
    let unk = tok.encode(&"a".repeat(150), None, 512);
    assert_eq!(unk.input_ids.len(), 3, "a 150-character word is one [UNK]");
}

/// HF's `longest_first` on pairs: every pair of lengths 0..=20 (words "a" and "b"), at an odd and
/// an even budget.
#[test]
fn pair_truncation_matches_hf() {
    let tok = load(&minilm());
    let words = |w: &str, n: usize| vec![w; n].join(" ");
    let items: Vec<(String, Option<String>)> = (0..=20)
        .flat_map(|a| (0..=20).map(move |b| (a, b)))
        .map(|(a, b)| (words("a", a), Some(words("b", b))))
        .collect();
    for max_length in [16, 17] {
        let refs = reference_texts(&minilm(), &items, max_length, &format!("tokenize_pairs_{max_length}"));
        assert_matches_hf(&tok, &refs, max_length, &format!("pairs at max_length {max_length}"));
    }
}

/// Every Unicode scalar value, in words "a{c}b {c} A{c} {c}a", with a vocabulary that holds every
/// character alone and as a "##" continuation (so a character normalised differently cannot hide
/// behind [UNK]), lower-cased (as bert-base-uncased) and cased (as bert-base-cased).
#[test]
fn every_code_point_matches_hf() {
    let base = std::fs::read_to_string(minilm().join("vocab.txt")).expect("MiniLM vocab.txt");
    let mut vocab: Vec<String> = base.lines().map(str::to_owned).collect();
    let mut seen: std::collections::HashSet<String> = vocab.iter().cloned().collect();
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        // Not a vocabulary line: whitespace (trimmed when the file is read), and U+40000..U+6FFFF,
        // unassigned planes the tokenizer uses for its stand-ins.
        if c.is_whitespace() || (0x40000..0x70000).contains(&(c as u32)) {
            continue;
        }
        for token in [c.to_string(), format!("##{c}")] {
            if seen.insert(token.clone()) {
                vocab.push(token);
            }
        }
    }
    // Not probed: U+40000..U+6FFFF (unassigned planes) hold the stand-ins; written in a text they
    // would read as the characters they stand in for (see `Fix::Alias` in src/data/tokenize/hf_fixes.rs).
    let chars: Vec<char> =
        (0..=0x10FFFFu32).filter(|cp| !(0x40000..0x70000).contains(cp)).filter_map(char::from_u32).collect();
    let texts: Vec<(String, Option<String>)> = chars
        .chunks(16)
        .map(|chunk| {
            let words: Vec<String> = chunk.iter().map(|c| format!("a{c}b {c} A{c} {c}a")).collect();
            (words.join(" "), None)
        })
        .collect();

    for (name, config) in [
        ("uncased", r#"{"do_lower_case": true, "strip_accents": null}"#),
        ("cased", r#"{"do_lower_case": false}"#),
    ] {
        let dir = temp_dir(&format!("tokenize_every_code_point_{name}"));
        std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").expect("write vocab.txt");
        std::fs::write(dir.join("tokenizer_config.json"), config).expect("write tokenizer_config.json");
        let refs = reference_texts(&dir, &texts, 1024, &format!("tokenize_every_code_point_{name}_ref"));
        assert_matches_hf(&load(&dir), &refs, 1024, &format!("every code point, {name}"));
    }
}

#[test]
fn saved_files_load_the_same() {
    let tok = load(&minilm());
    let out = temp_dir("tokenize_saved");
    tok.save_files(&out).unwrap_or_else(|e| panic!("{e}"));
    for name in ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
        let (a, b) = (std::fs::read(minilm().join(name)), std::fs::read(out.join(name)));
        assert_eq!(a.ok(), b.ok(), "{name} was not copied as it was");
    }
    let items: Vec<(String, Option<String>)> =
        hard_strings().into_iter().filter(|(t, p)| p.is_none() && t.len() < 200).collect();
    let refs = reference_texts(&out, &items, 64, "tokenize_saved_ref");
    assert_matches_hf(&load(&out), &refs, 64, "saved tokenizer files");

    // A folder without tokenizer_config.json gets one with the settings used.
    let bare = temp_dir("tokenize_bare");
    std::fs::copy(minilm().join("vocab.txt"), bare.join("vocab.txt")).expect("copy vocab.txt");
    let saved = temp_dir("tokenize_bare_saved");
    load(&bare).save_files(&saved).unwrap_or_else(|e| panic!("{e}"));
    let config = super::common::read_json(&saved.join("tokenizer_config.json"));
    assert_eq!(config["do_lower_case"], true);
    assert_eq!(config["tokenizer_class"], "BertTokenizer");
}

fn from_dir_error(dir: &Path) -> String {
    match Tokenizer::from_dir(dir) {
        Ok(_) => panic!("{}: loaded, expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn from_dir_errors_name_the_file_and_key() {
    let dir = temp_dir("tokenize_errors");
    let vocab: PathBuf = dir.join("vocab.txt");
    let config = dir.join("tokenizer_config.json");

    let msg = from_dir_error(&dir);
    assert!(msg.contains(path_str(&vocab)), "missing vocab.txt: {msg}");

    std::fs::copy(minilm().join("vocab.txt"), &vocab).expect("copy vocab.txt");
    for (text, key) in [
        ("{not json", "JSON"),
        (r#"{"do_lower_case": "yes"}"#, "do_lower_case"),
        (r#"{"strip_accents": 1}"#, "strip_accents"),
        (r#"{"tokenize_chinese_chars": false}"#, "tokenize_chinese_chars"),
        (r#"{"model_max_length": -5}"#, "model_max_length"),
    ] {
        std::fs::write(&config, text).expect("write tokenizer_config.json");
        let msg = from_dir_error(&dir);
        assert!(msg.contains(path_str(&config)) && msg.contains(key), "{text}: {msg}");
    }
    std::fs::write(&config, r#"{"mask_token": "[NOT_THERE]"}"#).expect("write tokenizer_config.json");
    let msg = from_dir_error(&dir);
    assert!(msg.contains("mask_token") && msg.contains("[NOT_THERE]"), "{msg}");

    std::fs::write(
        &config,
        r#"{"model_max_length": 1000000000000000019884624838656, "strip_accents": null}"#,
    )
    .expect("write tokenizer_config.json");
    let tok = load(&dir);
    assert_eq!(tok.model_max_length(), None, "HF's int(1e30) means no limit");
    let wordpiece = WordPieceTokenizer::from_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(wordpiece.strip_accents(), "strip_accents null follows do_lower_case");
    assert_eq!(load(&minilm()).model_max_length(), Some(512));
    assert_eq!(load(&minilm()).vocab_size(), 30522);
}
