//! ModernBERT for sequence classification (transformers' modeling_modernbert.py), one file per
//! module: `embeddings` (token embeddings + norm, no positions, no token types), `rotary`
//! (rotary positions, a base per layer kind), `attention` (fused Wqkv; local layers within a
//! sliding window, on every layout), `mlp` (GeGLU), `layer` (pre-norm encoder layer and the
//! model), `head` (prediction head, cls or mean pooling, classifier); `settings` reads
//! ModernBertConfig's own keys.
pub mod attention;
pub mod embeddings;
pub mod head;
pub mod layer;
pub mod layers;
pub mod mlp;
pub mod rotary;
pub mod settings;

pub use head::ModernBertForSequenceClassification;
pub use settings::{config_defaults, config_to_hf, ModernBertSettings, Pooling};

use super::config::BertConfig;
use super::names::{HfInit, Names};

/// The state dict's names in module order, each with its `_init_weights`: HF first applies the
/// generic init to every Linear and Embedding (normal(0, initializer_range)) and then, visiting
/// their parent module, ModernBERT's truncated normal, both drawing from the generator
/// ([`HfInit::NormalThenTruncNormal`]). Biases and LayerNorm weights are only those the config
/// asks for.
pub fn parameters(cfg: &BertConfig) -> Vec<(String, HfInit)> {
    let s = ModernBertSettings::of(cfg);
    let cutoff = s.initializer_cutoff_factor;
    let std_in = cfg.initializer_range;
    let std_out = cfg.initializer_range / (2.0 * cfg.num_hidden_layers as f64).sqrt();
    let mut n = Names::default();
    let linear = |n: &mut Names, p: &str, std: f64, bias: bool| {
        n.push(format!("{p}.weight"), HfInit::NormalThenTruncNormal { std, cutoff });
        if bias {
            n.push(format!("{p}.bias"), HfInit::Zeros);
        }
    };
    let norm = |n: &mut Names, p: &str| {
        n.push(format!("{p}.weight"), HfInit::Ones);
        if s.norm_bias {
            n.push(format!("{p}.bias"), HfInit::Zeros);
        }
    };
    // The token embeddings: normal with the padding row zeroed, then all of it truncated normal.
    n.push(
        "model.embeddings.tok_embeddings.weight".into(),
        HfInit::NormalThenTruncNormal { std: std_in, cutoff },
    );
    norm(&mut n, "model.embeddings.norm");
    for i in 0..cfg.num_hidden_layers {
        let l = format!("model.layers.{i}");
        if i > 0 {
            norm(&mut n, &format!("{l}.attn_norm"));
        }
        linear(&mut n, &format!("{l}.attn.Wqkv"), std_in, s.attention_bias);
        linear(&mut n, &format!("{l}.attn.Wo"), std_out, s.attention_bias);
        norm(&mut n, &format!("{l}.mlp_norm"));
        linear(&mut n, &format!("{l}.mlp.Wi"), std_in, s.mlp_bias);
        linear(&mut n, &format!("{l}.mlp.Wo"), std_out, s.mlp_bias);
    }
    norm(&mut n, "model.final_norm");
    linear(&mut n, "head.dense", std_out, s.classifier_bias);
    norm(&mut n, "head.norm");
    linear(&mut n, "classifier", (cfg.hidden_size as f64).powf(-0.5), true);
    n.0
}
