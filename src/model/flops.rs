//! The useful floating-point operations of a training step: what the model's matrix products cost
//! over the batch's real tokens, whatever layout computed them. This is what MFU divides by the
//! machine's peak, so padding (PyTorch's padded batches, or the padded attention core of a length
//! group) counts as waste, not as work.
//!
//! The usual transformer count (Kaplan et al. 2020; PaLM's appendix B), per sequence of n tokens:
//! - forward: 2 FLOPs (multiply + add) per weight of every matmul applied to each token —
//!   2·N·n, N the encoder's linear weights (Q, K, V, attention output, intermediate, output) —
//!   plus attention's two products, QKᵀ and (softmax)·V, each n·n·hidden multiply-adds per layer:
//!   4·L·H·n²;
//! - plus the pooler and the classifier, applied to one token per sequence: 2·N_head;
//! - backward costs twice the forward (the gradients of both the inputs and the weights), so a
//!   training step is 3x the forward: 6·N·n + 12·L·H·n² + 6·N_head.
//!
//! Left out, as in that count: biases, layer norms, GELU, softmax, dropout, embedding lookups
//! and the optimizer (elementwise work, a few FLOPs per element; the matmuls are >95% of the
//! arithmetic at BERT's sizes).
//!
//! ModernBERT differs in two places: its GeGLU `Wi` is 2·intermediate wide (with `Wqkv` and the
//! two `Wo`s: 4·H² + 3·H·I weights per layer), and its local layers attend only within the
//! sliding window, so their two products count the query-key pairs at most `sliding_window`
//! apart instead of n². HF's `total_flos` (trainer_state.json) is another figure: HF's
//! `floating_point_ops`, 6 x every non-embedding parameter x the padded `input_ids.numel()`.
use super::config::BertConfig;
use super::family::Family;
use super::modernbert::ModernBertSettings;

/// The FLOP counts of one model, per token and per sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelFlops {
    /// N: weights of the matmuls every token goes through (the encoder layers' linear layers).
    pub token_matmul_weights: f64,
    /// N_head: weights of the matmuls applied once per sequence (pooler and classifier).
    pub sequence_matmul_weights: f64,
    /// L·H: the factor of attention's n² term (the layers that attend over whole sequences).
    pub attention_width: f64,
    /// L_local·H: the factor of the windowed layers' pair count (ModernBERT's local layers).
    pub local_attention_width: f64,
    /// The local layers' window: a query attends to keys at most this far away.
    pub window: usize,
}

impl ModelFlops {
    /// The counts of the `*ForSequenceClassification` of `cfg`'s family with its `num_labels`
    /// outputs. Every family bertfit runs has the same encoder layer and a two-matmul head on one
    /// token (BERT's pooler + classifier, RoBERTa's and ELECTRA's dense + out_proj, DistilBERT's
    /// pre_classifier + classifier, DeBERTa's ContextPooler + classifier); ELECTRA (and DeBERTa
    /// with an `embedding_size`) adds the projection of its narrower embeddings, and DeBERTa the
    /// c2p/p2c products of its disentangled attention ([`relative_position_weights`]).
    pub fn of(cfg: &BertConfig) -> Self {
        if cfg.family() == Family::ModernBert {
            return Self::modernbert(cfg);
        }
        let (h, i, l) = (cfg.hidden_size as f64, cfg.intermediate_size as f64, cfg.num_hidden_layers as f64);
        // Q, K, V and the attention output (4 H x H), intermediate (H x I), output (I x H).
        let per_layer = 4.0 * h * h + 2.0 * h * i;
        let e = cfg.embedding_size() as f64;
        let projection = if e != h { e * h } else { 0.0 };
        ModelFlops {
            token_matmul_weights: l * (per_layer + relative_position_weights(cfg)) + projection,
            sequence_matmul_weights: h * h + h * cfg.num_labels() as f64,
            attention_width: l * h,
            local_attention_width: 0.0,
            window: 0,
        }
    }

    /// ModernBertForSequenceClassification's: Wqkv (3·H²), Wo (H²), Wi (H·2I), Wo (I·H) per
    /// layer; the head's dense (H²) and the classifier on one (pooled) vector per sequence.
    fn modernbert(cfg: &BertConfig) -> Self {
        let (h, i, l) = (cfg.hidden_size as f64, cfg.intermediate_size as f64, cfg.num_hidden_layers as f64);
        let s = ModernBertSettings::of(cfg);
        let global = s.global_layers.iter().filter(|g| **g).count() as f64;
        ModelFlops {
            token_matmul_weights: l * (4.0 * h * h + 3.0 * h * i),
            sequence_matmul_weights: h * h + h * cfg.num_labels() as f64,
            attention_width: global * h,
            local_attention_width: (l - global) * h,
            window: s.sliding_window.max(0) as usize,
        }
    }

    /// The query-key pairs at most `window` apart in a sequence of `n` tokens.
    pub fn window_pairs(n: usize, window: usize) -> f64 {
        let reach = window.min(n.saturating_sub(1));
        // Each token with itself, and each distance d = 1..=reach in both directions (n - d pairs).
        (n + 2 * (1..=reach).map(|d| n - d).sum::<usize>()) as f64
    }

    /// The forward pass over sequences of `lengths` real tokens.
    ///
    /// (Relative-position terms are in `token_matmul_weights`: see [`relative_position_weights`].)
    pub fn forward<I: IntoIterator<Item = usize>>(&self, lengths: I) -> f64 {
        let (mut tokens, mut squares, mut windowed, mut sequences) = (0.0, 0.0, 0.0, 0.0);
        for n in lengths {
            if self.local_attention_width > 0.0 {
                windowed += Self::window_pairs(n, self.window);
            }
            let n = n as f64;
            tokens += n;
            squares += n * n;
            sequences += 1.0;
        }
        2.0 * self.token_matmul_weights * tokens
            + 4.0 * self.attention_width * squares
            + 4.0 * self.local_attention_width * windowed
            + 2.0 * self.sequence_matmul_weights * sequences
    }

    /// A training step (forward and backward, 3x the forward) over sequences of `lengths`.
    pub fn training<I: IntoIterator<Item = usize>>(&self, lengths: I) -> f64 {
        3.0 * self.forward(lengths)
    }
}

/// DeBERTa's disentangled attention, per layer: each token's query (c2p) and key (p2c) against
/// the 2S projected relative embeddings (S = position_buckets, else max_relative_positions), for
/// every head: 2S·H multiply-adds per token per term, whatever the sequence length — so they count
/// as 2S·H weights each in the per-token term. Left out: projecting the 2S relative embeddings
/// through the key/query projections, which happens once per layer per batch, not per token or
/// sequence (2S·H² per term: for DeBERTa-v3-base at a batch of 32 x 128 tokens, under 2% of the
/// step); and the gathers, which are index work, not arithmetic.
fn relative_position_weights(cfg: &BertConfig) -> f64 {
    if cfg.family() != super::Family::DebertaV2 {
        return 0.0;
    }
    let Ok(s) = super::deberta::config::DebertaSettings::of(cfg) else { return 0.0 };
    if !s.relative_attention {
        return 0.0;
    }
    let terms = s.c2p as i64 + s.p2c as i64;
    (terms * 2 * s.att_span() * cfg.hidden_size) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> BertConfig {
        let mut cfg = BertConfig {
            hidden_size: 4,
            intermediate_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            ..BertConfig::default()
        };
        cfg.id2label =
            Some([("0".into(), "a".into()), ("1".into(), "b".into()), ("2".into(), "c".into())].into());
        cfg
    }

    #[test]
    fn counts_a_tiny_model_by_hand() {
        let f = ModelFlops::of(&tiny());
        // Per layer: Q, K, V, attention output 4 x (4x4) = 64, intermediate 4x8 = 32, output 8x4 = 32.
        assert_eq!(f.token_matmul_weights, 2.0 * 128.0);
        // Pooler 4x4, classifier 4x3.
        assert_eq!(f.sequence_matmul_weights, 16.0 + 12.0);
        // Two sequences of 3 and 5 tokens. Forward:
        //   matmuls over tokens: 2 FLOPs x 256 weights x 8 tokens = 4096
        //   attention: QKᵀ and PV are n·n·4 multiply-adds per layer = 2·(9+25)·4·2 FLOPs per
        //     product, two products: 2 x 2 x 34 x 4 x 2 layers = 1088
        //   pooler + classifier on one token each: 2 x 28 x 2 = 112
        assert_eq!(f.forward([3, 5]), 4096.0 + 1088.0 + 112.0);
        assert_eq!(f.training([3, 5]), 3.0 * (4096.0 + 1088.0 + 112.0));
        // Padding is no work: the count depends on the real lengths only.
        assert_eq!(f.training([5, 3]), f.training([3, 5]));
        assert_eq!(f.training(std::iter::empty()), 0.0);
    }

    #[test]
    fn counts_a_tiny_modernbert_by_hand() {
        let json = r#"{"model_type": "modernbert", "hidden_size": 4, "intermediate_size": 6,
            "num_hidden_layers": 3, "num_attention_heads": 2, "vocab_size": 50, "pad_token_id": 0,
            "local_attention": 2, "id2label": {"0": "a", "1": "b", "2": "c"}}"#;
        let cfg = BertConfig::from_json(json, std::path::Path::new("c.json")).unwrap();
        let f = ModelFlops::of(&cfg);
        // Per layer: Wqkv 4x12 = 48, attention Wo 4x4 = 16, Wi 4x12 = 48, mlp Wo 6x4 = 24: 136.
        assert_eq!(f.token_matmul_weights, 3.0 * 136.0);
        // Head dense 4x4, classifier 4x3.
        assert_eq!(f.sequence_matmul_weights, 16.0 + 12.0);
        // Layer 0 global, layers 1 and 2 local (every 3rd global), window 2 / 2 = 1.
        assert_eq!((f.attention_width, f.local_attention_width, f.window), (4.0, 8.0, 1));
        // 5 tokens, |q - k| <= 1: 5 diagonal + 2 x 4 neighbours = 13 pairs; 1 token: 1.
        assert_eq!(ModelFlops::window_pairs(5, 1), 13.0);
        assert_eq!(ModelFlops::window_pairs(1, 1), 1.0);
        assert_eq!(ModelFlops::window_pairs(3, 10), 9.0, "a window wider than the sequence: n²");
        // Two sequences of 5 and 1 tokens. Forward:
        //   matmuls over tokens: 2 x 408 x 6 tokens = 4896
        //   global layer: 2 products x 2 FLOPs x (25 + 1) pairs x 4 wide x 1 layer = 416
        //   local layers: 2 x 2 x (13 + 1) pairs x 4 x 2 layers = 448
        //   head on one vector each: 2 x 28 x 2 = 112
        assert_eq!(f.forward([5, 1]), 4896.0 + 416.0 + 448.0 + 112.0);
    }

    #[test]
    fn deberta_counts_c2p_and_p2c_by_hand() {
        let json = r#"{"model_type": "deberta-v2", "hidden_size": 4, "intermediate_size": 8,
            "num_hidden_layers": 2, "num_attention_heads": 2, "relative_attention": true,
            "position_buckets": 4, "max_relative_positions": 16, "pos_att_type": ["p2c", "c2p"],
            "share_att_key": true, "position_biased_input": false,
            "id2label": {"0": "a", "1": "b", "2": "c"}}"#;
        let cfg = BertConfig::from_json(json, std::path::Path::new("c.json")).unwrap();
        let f = ModelFlops::of(&cfg);
        // Per layer as BERT's (128), plus c2p: each token's query (4 wide, 2 heads of 2) against the
        // 2 x 4 = 8 relative embeddings, 8 x 4 = 32 multiply-adds; p2c the same with its key: 64.
        assert_eq!(f.token_matmul_weights, 2.0 * (128.0 + 64.0));
        // ContextPooler 4x4, classifier 4x3: as BERT's pooler and classifier.
        assert_eq!(f.sequence_matmul_weights, 16.0 + 12.0);
        // Two sequences of 3 and 5 tokens: 2 x 384 x 8 + BERT's attention 1088 + head 112.
        assert_eq!(f.forward([3, 5]), 6144.0 + 1088.0 + 112.0);
        // c2p only: half the extra; no relative attention: none.
        let c2p = json.replace(r#"["p2c", "c2p"]"#, r#"["c2p"]"#);
        let cfg = BertConfig::from_json(&c2p, std::path::Path::new("c.json")).unwrap();
        assert_eq!(ModelFlops::of(&cfg).token_matmul_weights, 2.0 * (128.0 + 32.0));
        let plain = json.replace(r#""relative_attention": true"#, r#""relative_attention": false"#);
        let cfg = BertConfig::from_json(&plain, std::path::Path::new("c.json")).unwrap();
        assert_eq!(ModelFlops::of(&cfg).token_matmul_weights, 2.0 * 128.0);
    }

    #[test]
    fn bert_base_is_the_usual_85m_matmul_weights() {
        let cfg = BertConfig {
            id2label: Some([("0".into(), "a".into()), ("1".into(), "b".into())].into()),
            ..BertConfig::default()
        };
        let f = ModelFlops::of(&cfg);
        // 12 x (4·768² + 2·768·3072) = 84,934,656
        assert_eq!(f.token_matmul_weights, 84_934_656.0);
        // At 128 tokens, attention adds 12·L·H·n / 6·N = 2·9216·128 / 84.9M ≈ 2.8% per token.
        let per_token = f.training([128]) / 128.0;
        assert!((per_token / (6.0 * 84_934_656.0) - 1.0279).abs() < 1e-3, "{per_token}");
    }
}
