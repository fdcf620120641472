//! The HF state-dict of each family's `*ForSequenceClassification`: names in `state_dict()` order,
//! and how HF's `_init_weights` initialises each one. Loading, saving and initialisation all walk
//! this list. The per-family lists live in the family modules; the pieces they share are here.

use super::config::BertConfig;
use super::family::Family;

/// How `PreTrainedModel._init_weights` initialises a parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HfInit {
    /// Linear and Embedding weights: normal(0, initializer_range).
    Normal,
    /// An embedding with `padding_idx = pad_token_id`: normal, then that row zeroed.
    NormalPaddingZeroed,
    Zeros,
    Ones,
    /// ModernBERT's: normal(0, initializer_range) (the generic init of a Linear or Embedding),
    /// then `trunc_normal_(mean=0, std, a=-cutoff*std, b=cutoff*std)` (its parent module's), two
    /// draws as HF makes them.
    NormalThenTruncNormal {
        std: f64,
        cutoff: f64,
    },
}

/// A state dict's names being listed, in module order.
#[derive(Debug, Default)]
pub struct Names(pub Vec<(String, HfInit)>);

impl Names {
    pub fn push(&mut self, name: String, init: HfInit) {
        self.0.push((name, init));
    }

    /// torch.nn.Linear at `p`.
    pub fn linear(&mut self, p: &str) {
        self.push(format!("{p}.weight"), HfInit::Normal);
        self.push(format!("{p}.bias"), HfInit::Zeros);
    }

    /// torch.nn.LayerNorm at `p`.
    pub fn layer_norm(&mut self, p: &str) {
        self.push(format!("{p}.weight"), HfInit::Ones);
        self.push(format!("{p}.bias"), HfInit::Zeros);
    }

    /// torch.nn.Embedding at `p`, with `padding_idx = pad_token_id` or none.
    pub fn embedding(&mut self, p: &str, padding_idx: bool) {
        let init = if padding_idx { HfInit::NormalPaddingZeroed } else { HfInit::Normal };
        self.push(format!("{p}.weight"), init);
    }

    /// BertEncoder at `p` (`{p}.layer.{i}...`), which BERT, RoBERTa, XLM-R and ELECTRA share.
    pub fn bert_encoder(&mut self, p: &str, cfg: &BertConfig) {
        for i in 0..cfg.num_hidden_layers {
            let l = format!("{p}.layer.{i}");
            for m in ["query", "key", "value"] {
                self.linear(&format!("{l}.attention.self.{m}"));
            }
            self.linear(&format!("{l}.attention.output.dense"));
            self.layer_norm(&format!("{l}.attention.output.LayerNorm"));
            self.linear(&format!("{l}.intermediate.dense"));
            self.linear(&format!("{l}.output.dense"));
            self.layer_norm(&format!("{l}.output.LayerNorm"));
        }
    }
}

/// (name, init) for every parameter of `cfg`'s family's classification model, in HF module order.
pub fn parameters(cfg: &BertConfig) -> Vec<(String, HfInit)> {
    match cfg.family() {
        Family::Bert => bert_parameters(cfg),
        Family::Roberta | Family::XlmRoberta => super::roberta::parameters(cfg),
        Family::Electra => super::electra::parameters(cfg),
        Family::DistilBert => super::distilbert::parameters(cfg),
        Family::ModernBert => super::modernbert::parameters(cfg),
        Family::DebertaV2 => super::deberta::parameters(cfg),
    }
}

/// BertForSequenceClassification's.
fn bert_parameters(cfg: &BertConfig) -> Vec<(String, HfInit)> {
    let mut n = Names::default();
    n.embedding("bert.embeddings.word_embeddings", true);
    n.embedding("bert.embeddings.position_embeddings", false);
    n.embedding("bert.embeddings.token_type_embeddings", false);
    n.layer_norm("bert.embeddings.LayerNorm");
    n.bert_encoder("bert.encoder", cfg);
    n.linear("bert.pooler.dense");
    n.linear("classifier");
    n.0
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
