// The fuzz targets' bodies, one function per target (fuzz_targets/<name>.rs says what it checks),
// included with `include!` by each target and by tests/fuzz_seeds.rs, which replays the seeds
// through them in the ordinary test build. bertfit's readers take paths, so each input is written
// to a file in a scratch folder (in /dev/shm when there is one: no disk I/O).
#[allow(dead_code)]
pub mod bodies {
    use std::path::PathBuf;

    use bertfit::data::dataset::{read_with_split_column, Columns, DataSource};
    use bertfit::data::token_cache::{parse, Expect};
    use bertfit::data::tokenize::Tokenizer;
    use bertfit::model::BertConfig;
    use bertfit::plot::{read_metrics, render, span};
    use bertfit::train::checkpoint::verify::{self, Expected, MANIFEST};
    use bertfit::train::checkpoint::{read_state, read_tensors, TRAINER_STATE, TRAINING_STATE};
    use bertfit::weights::{read_checkpoint, WeightsFile};
    use sha2::{Digest, Sha256};

    /// This process's and thread's scratch folder (the fuzzer runs one thread; the tests one per
    /// target, each removing its folder at the end).
    pub fn scratch() -> PathBuf {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let thread: String =
            format!("{:?}", std::thread::current().id()).chars().filter(char::is_ascii_digit).collect();
        let dir = base.join(format!("bertfit-fuzz-{}-{thread}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    }

    /// `bytes` as the file `name` in the scratch folder.
    fn input_file(name: &str, bytes: &[u8]) -> PathBuf {
        let path = scratch().join(name);
        std::fs::write(&path, bytes).expect("write the fuzz input");
        path
    }

    /// A data file as read in memory and streamed.
    fn data_file(name: &str, data: &[u8]) {
        let path = input_file(name, data);
        let columns = Columns::default();
        let _ = read_with_split_column(&path, &columns);
        let _ =
            bertfit::data::stream::scan(&DataSource::SplitColumn(path), &columns, None, &Default::default());
    }

    pub fn csv(data: &[u8]) {
        data_file("data.csv", data);
    }

    pub fn parquet(data: &[u8]) {
        data_file("data.parquet", data);
    }

    pub fn pickle(data: &[u8]) {
        let path = input_file("pytorch_model.bin", data);
        let _ = bertfit::weights::pickle::read_pytorch_checkpoint(&path);
    }

    pub fn safetensors(data: &[u8]) {
        let path = input_file("model.safetensors", data);
        if let Ok(tensors) = read_checkpoint(&WeightsFile::Safetensors(path)) {
            for (_, t) in tensors {
                if t.is_floating_point() {
                    let _ = t.f_isfinite().and_then(|f| f.f_all());
                }
            }
        }
    }

    pub fn config(data: &[u8]) {
        let path = input_file("config.json", data);
        if let Ok(cfg) = BertConfig::from_file(&path) {
            let _ = (cfg.head_dim(), cfg.num_labels(), cfg.labels(), cfg.parameter_estimate());
            let _ = cfg.to_json_pretty();
        }
    }

    pub fn tokenizer(data: &[u8]) {
        let (vocab, config) = match data.iter().position(|&b| b == 0xFF) {
            Some(i) => (&data[..i], Some(&data[i + 1..])),
            None => (data, None),
        };
        let dir = scratch().join("model");
        std::fs::create_dir_all(&dir).expect("scratch model folder");
        std::fs::write(dir.join("vocab.txt"), vocab).expect("write vocab.txt");
        let config_path = dir.join("tokenizer_config.json");
        match config {
            Some(c) => std::fs::write(&config_path, c).expect("write tokenizer_config.json"),
            None => {
                let _ = std::fs::remove_file(&config_path);
            }
        }
        let Ok(tok) = Tokenizer::from_dir(&dir) else { return };
        let tail = String::from_utf8_lossy(config.unwrap_or(vocab));
        for text in ["hello world", "Ünïcödé 漢字 [MASK] test", tail.as_ref()] {
            let _ = tok.encode(text, None, 8);
            let _ = tok.encode(text, Some("a pair"), 5);
        }
        let _ = tok.encode_batch(&["plain ascii", tail.as_ref()], None, 3);
    }

    pub fn token_cache(data: &[u8]) {
        let Some((&mode, rest)) = data.split_first() else { return };
        let mut bytes = rest.to_vec();
        if mode & 1 == 1 && bytes.len() >= 40 {
            let body = bytes.len() - 32;
            let sum = Sha256::digest(&bytes[..body]);
            bytes[body..].copy_from_slice(&sum);
        }
        let expect = Expect { rows: vec![3, (mode >> 4) as usize], vocab_size: 100, max_length: 8 };
        if let Ok(splits) = parse(&bytes, &expect) {
            assert_eq!(splits.len(), 2);
            for (split, rows) in splits.iter().zip(&expect.rows) {
                assert_eq!(split.len(), *rows);
                for e in split {
                    assert!(e.input_ids.len() <= 8 && e.input_ids.iter().all(|&id| (0..100).contains(&id)));
                    assert_eq!(e.input_ids.len(), e.token_type_ids.len());
                }
            }
        }
    }

    /// The next length-prefixed part of `data`.
    fn part<'a>(data: &mut &'a [u8]) -> &'a [u8] {
        if data.len() < 4 {
            return std::mem::take(data);
        }
        let n = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let rest = &data[4..];
        let n = n.min(rest.len());
        *data = &rest[n..];
        &rest[..n]
    }

    pub fn checkpoint(data: &[u8]) {
        let mut data = data;
        let dir = scratch().join("checkpoint-7");
        let _ = std::fs::create_dir_all(&dir);
        for name in [TRAINER_STATE, TRAINING_STATE, MANIFEST] {
            let _ = std::fs::write(dir.join(name), part(&mut data));
        }
        let _ = verify::check_manifest(&dir);
        let state = read_state(&dir).ok();
        let tensors = read_tensors(&dir).unwrap_or_default();
        let order = tensors.get("data.order").and_then(|t| Vec::<i64>::try_from(t).ok());
        let expected = Expected {
            batches_per_epoch: 20,
            accumulation: 2,
            rank_rows: 320,
            file_rows: 320,
            permutation: true,
        };
        if let Some(state) = &state {
            let _ = verify::check_best(&dir, state);
            let _ = verify::check_position(&dir.join(TRAINER_STATE), state, order.as_deref(), &expected);
            let params = ["classifier.weight".to_string(), "classifier.bias".to_string()];
            let steps = state.bertfit_position.scheduled_steps;
            let _ = verify::check_optimizer_state(&dir.join(TRAINING_STATE), &tensors, &params, steps);
        }
    }

    pub fn metrics(data: &[u8]) {
        let path = input_file("metrics.jsonl", data);
        if let Ok(metrics) = read_metrics(&path) {
            let (lo, hi) = span(metrics.steps.iter().map(|s| s.loss));
            assert!(lo.is_finite() && hi.is_finite() && hi > lo, "axis {lo}..{hi}");
            // Drawing costs milliseconds: keep the logs small enough that the fuzzer stays fast.
            if metrics.steps.len() + metrics.epochs.len() <= 2000 {
                let _ = render(&metrics);
            }
        }
    }
}
