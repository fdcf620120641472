//! Which transformers architecture a config.json describes (its `model_type`), and what bertfit
//! needs to know per family: the base model's attribute name (HF `base_model_prefix`), the
//! `*ForSequenceClassification` class it saves as, and which checkpoint keys belong to heads.
use serde_json::Value;

/// A `model_type` bertfit fine-tunes. Each has its module beside this one, lined up with
/// transformers' `modeling_<family>.py`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `bert` (modeling_bert.py).
    Bert,
    /// `roberta` (modeling_roberta.py).
    Roberta,
    /// `xlm-roberta` (modeling_xlm_roberta.py: RoBERTa's modules under other class names).
    XlmRoberta,
    /// `electra` (modeling_electra.py).
    Electra,
    /// `distilbert` (modeling_distilbert.py).
    DistilBert,
    /// `modernbert` (modeling_modernbert.py).
    ModernBert,
    /// `deberta-v2` (modeling_deberta_v2.py), which DeBERTa-v3 checkpoints use too.
    DebertaV2,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Bert,
        Family::Roberta,
        Family::XlmRoberta,
        Family::Electra,
        Family::DistilBert,
        Family::ModernBert,
        Family::DebertaV2,
    ];

    /// The family config.json's `model_type` names, or why it is refused.
    pub fn from_model_type(model_type: &str) -> Result<Family, String> {
        if let Some(f) = Family::ALL.into_iter().find(|f| f.model_type() == model_type) {
            return Ok(f);
        }
        let supported: Vec<&str> = Family::ALL.iter().map(|f| f.model_type()).collect();
        Err(format!(
            "model_type '{model_type}' is not supported; bertfit fine-tunes {}",
            supported.join(", ")
        ))
    }

    /// config.json's `model_type`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta => "roberta",
            Family::XlmRoberta => "xlm-roberta",
            Family::Electra => "electra",
            Family::DistilBert => "distilbert",
            Family::ModernBert => "modernbert",
            Family::DebertaV2 => "deberta-v2",
        }
    }

    /// HF's `base_model_prefix`: the attribute (and state-dict prefix) of the base model.
    pub fn base_model_prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta | Family::XlmRoberta => "roberta",
            Family::Electra => "electra",
            Family::DistilBert => "distilbert",
            Family::ModernBert => "model",
            Family::DebertaV2 => "deberta",
        }
    }

    /// The class a fine-tuned folder names in config.json's `architectures`.
    pub fn architecture(self) -> &'static str {
        match self {
            Family::Bert => "BertForSequenceClassification",
            Family::Roberta => "RobertaForSequenceClassification",
            Family::XlmRoberta => "XLMRobertaForSequenceClassification",
            Family::Electra => "ElectraForSequenceClassification",
            Family::DistilBert => "DistilBertForSequenceClassification",
            Family::ModernBert => "ModernBertForSequenceClassification",
            Family::DebertaV2 => "DebertaV2ForSequenceClassification",
        }
    }

    /// State-dict prefixes of the sequence-classification head: outside the base model, and what a
    /// checkpoint of another task (masked LM, pre-training, base model) may lack.
    pub fn head_prefixes(self) -> &'static [&'static str] {
        match self {
            Family::DistilBert => &["pre_classifier.", "classifier."],
            // ModernBertPredictionHead is `head.*` in the masked-LM model too: loading one, HF
            // keeps its head (only `classifier.*` is new); a base model's checkpoint lacks both.
            Family::ModernBert => &["head.", "classifier."],
            // ContextPooler is the classifier's, outside `deberta.` (DebertaV2Model has none).
            Family::DebertaV2 => &["pooler.", "classifier."],
            _ => &["classifier."],
        }
    }

    /// Base-model parameters the classification model has but other task models may lack: BERT's
    /// pooler (BertForMaskedLM and BertForPreTraining... have none: `add_pooling_layer=False`).
    pub fn optional_base_prefixes(self) -> &'static [&'static str] {
        match self {
            Family::Bert => &["bert.pooler."],
            _ => &[],
        }
    }

    /// Checkpoint key prefixes of other tasks' heads, which the classifier does not use: said
    /// and skipped when loading. (Keys are matched after the base-model prefix is known.)
    pub fn foreign_head_prefixes(self) -> &'static [&'static str] {
        match self {
            // BertForMaskedLM / BertForPreTraining: `cls.predictions.*`, `cls.seq_relationship.*`.
            Family::Bert => &["cls."],
            // RobertaForMaskedLM's RobertaLMHead; RobertaModel's pooler, which the classifier
            // builds without (`add_pooling_layer=False`).
            Family::Roberta | Family::XlmRoberta => &["lm_head.", "roberta.pooler."],
            // ElectraForPreTraining (discriminator) and ElectraForMaskedLM (generator).
            Family::Electra => {
                &["discriminator_predictions.", "generator_predictions.", "generator_lm_head."]
            }
            // DistilBertForMaskedLM.
            Family::DistilBert => &["vocab_transform.", "vocab_layer_norm.", "vocab_projector."],
            // ModernBertForMaskedLM's decoder (its weight tied to the embeddings: usually only
            // `decoder.bias` is saved). Its `head.*` is the classifier's `head.*`.
            Family::ModernBert => &["decoder."],
            // DebertaV2ForMaskedLM: the legacy `cls.predictions.*` head or `lm_predictions.*`
            // (legacy=False), and the `mask_predictions.*` (RTD) HF ignores on load.
            Family::DebertaV2 => &["cls.", "lm_predictions.", "mask_predictions."],
        }
    }

    /// Whether the classification model's parameter `name` may be missing from a checkpoint (and
    /// is then initialised as HF's `_init_weights` does).
    pub fn may_be_missing(self, name: &str) -> bool {
        let starts = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
        starts(self.head_prefixes()) || starts(self.optional_base_prefixes())
    }

    /// Whether a checkpoint key the model has no place for is skipped (and said as unused) rather
    /// than refused: HF's `_keys_to_ignore_on_load_unexpected` for DebertaV2 ("position_embeddings",
    /// which a DeBERTa-v3 checkpoint may carry though `position_biased_input` is false).
    pub fn ignores_unexpected(self, key: &str) -> bool {
        self == Family::DebertaV2 && key.contains("position_embeddings")
    }

    /// Whether checkpoint key `key` (named as in the classification model) is another task's head.
    pub fn is_foreign_head(self, key: &str) -> bool {
        self.foreign_head_prefixes().iter().any(|p| key.starts_with(p))
    }
}

/// The defaults of the family's config class (transformers' configuration_<family>.py) where
/// they differ from `BertConfig`'s: filled in for keys config.json leaves out, before it is read.
pub fn config_defaults(family: Family) -> Vec<(&'static str, Value)> {
    match family {
        Family::Bert => vec![],
        // RobertaConfig: pad_token_id 1 (bos 0, eos 2); type_vocab_size stays 2 as in the class
        // (published RoBERTa checkpoints set 1 in their config.json).
        Family::Roberta => vec![("vocab_size", 50265.into()), ("pad_token_id", 1.into())],
        Family::XlmRoberta => vec![("pad_token_id", 1.into())],
        // ElectraConfig: the small discriminator's sizes, with a separate embedding size.
        Family::Electra => vec![
            ("embedding_size", 128.into()),
            ("hidden_size", 256.into()),
            ("num_attention_heads", 4.into()),
            ("intermediate_size", 1024.into()),
        ],
        // DistilBertConfig (its keys already renamed to BertConfig's, `distilbert::HF_KEYS`).
        Family::DistilBert => vec![
            ("num_hidden_layers", 6.into()),
            ("seq_classif_dropout", 0.2.into()),
            ("sinusoidal_pos_embds", false.into()),
        ],
        // ModernBertConfig, its own keys included (`modernbert::settings`).
        Family::ModernBert => super::modernbert::config_defaults(),
        Family::DebertaV2 => super::deberta::config::class_defaults(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_types_are_read_and_refused_by_name() {
        assert_eq!(Family::from_model_type("xlm-roberta"), Ok(Family::XlmRoberta));
        let err = Family::from_model_type("gpt2").unwrap_err();
        assert!(
            err.starts_with("model_type 'gpt2' is not supported; bertfit fine-tunes bert, roberta"),
            "{err}"
        );
        assert_eq!(Family::from_model_type("deberta-v2"), Ok(Family::DebertaV2));
        assert_eq!(Family::from_model_type("modernbert"), Ok(Family::ModernBert));
    }

    #[test]
    fn heads_and_optional_parts() {
        assert!(Family::Bert.may_be_missing("bert.pooler.dense.weight"));
        assert!(!Family::Bert.may_be_missing("bert.encoder.layer.0.output.dense.weight"));
        assert!(Family::DistilBert.may_be_missing("pre_classifier.bias"));
        assert!(Family::Roberta.is_foreign_head("lm_head.decoder.weight"));
        assert!(!Family::Roberta.is_foreign_head("classifier.dense.weight"));
        assert!(Family::ModernBert.may_be_missing("head.dense.weight"));
        assert!(!Family::ModernBert.is_foreign_head("head.norm.weight"));
        assert!(Family::ModernBert.is_foreign_head("decoder.bias"));
    }
}
