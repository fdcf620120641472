//! The HF state-dict of BertForSequenceClassification: names in `state_dict()` order, and how HF's
//! `_init_weights` initialises each one. Loading, saving and initialisation all walk this list.

use super::config::BertConfig;

/// How `PreTrainedModel._init_weights` initialises a parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HfInit {
    /// Linear and Embedding weights: normal(0, initializer_range).
    Normal,
    /// The word-embedding matrix: normal, then the `pad_token_id` row zeroed.
    NormalPaddingZeroed,
    Zeros,
    Ones,
}

pub const CLASSIFIER_PREFIX: &str = "classifier.";

/// (name, init) for every parameter, in HF module order.
pub fn parameters(cfg: &BertConfig) -> Vec<(String, HfInit)> {
    use HfInit::*;
    let mut out: Vec<(String, HfInit)> = Vec::new();
    let mut push = |name: String, init: HfInit| out.push((name, init));
    let linear = |push: &mut dyn FnMut(String, HfInit), p: &str| {
        push(format!("{p}.weight"), Normal);
        push(format!("{p}.bias"), Zeros);
    };
    let layer_norm = |push: &mut dyn FnMut(String, HfInit), p: &str| {
        push(format!("{p}.weight"), Ones);
        push(format!("{p}.bias"), Zeros);
    };
    push("bert.embeddings.word_embeddings.weight".into(), NormalPaddingZeroed);
    push("bert.embeddings.position_embeddings.weight".into(), Normal);
    push("bert.embeddings.token_type_embeddings.weight".into(), Normal);
    layer_norm(&mut push, "bert.embeddings.LayerNorm");
    for i in 0..cfg.num_hidden_layers {
        let l = format!("bert.encoder.layer.{i}");
        for m in ["query", "key", "value"] {
            linear(&mut push, &format!("{l}.attention.self.{m}"));
        }
        linear(&mut push, &format!("{l}.attention.output.dense"));
        layer_norm(&mut push, &format!("{l}.attention.output.LayerNorm"));
        linear(&mut push, &format!("{l}.intermediate.dense"));
        linear(&mut push, &format!("{l}.output.dense"));
        layer_norm(&mut push, &format!("{l}.output.LayerNorm"));
    }
    linear(&mut push, "bert.pooler.dense");
    linear(&mut push, "classifier");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bert_base_has_hf_parameter_count() {
        let names = parameters(&BertConfig::default());
        // 5 embedding tensors + 16 per layer * 12 + pooler 2 + classifier 2 = 201, as HF's state_dict
        // without the position_ids buffer.
        assert_eq!(names.len(), 201);
        assert_eq!(names[5].0, "bert.encoder.layer.0.attention.self.query.weight");
        assert_eq!(names.last().unwrap().0, "classifier.bias");
    }
}
