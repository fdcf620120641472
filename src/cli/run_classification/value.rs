//! A flag's value as HfArgumentParser hands it to the dataclass, and the parsed command line:
//! every flag with its value (HF's default unless given) and which were given.
use std::collections::{BTreeMap, BTreeSet};

use super::table::{Flag, Kind, FLAGS};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<String>),
}

impl Value {
    /// HF's default, from its Python repr in the table.
    pub fn default_of(flag: &Flag) -> Value {
        let d = flag.default;
        match d {
            "None" | "MISSING" => return Value::None,
            "True" => return Value::Bool(true),
            "False" => return Value::Bool(false),
            "[]" => return Value::List(Vec::new()),
            _ => {}
        }
        if let Some(s) = d.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
            return Value::Str(s.to_string());
        }
        match flag.kind {
            Kind::Int => d.parse().map(Value::Int).unwrap_or(Value::None),
            Kind::Float => d.parse().map(Value::Float).unwrap_or(Value::None),
            _ => Value::Str(d.to_string()),
        }
    }

    /// As Python would print it in a message (`True`, `0.1`, `'linear'`).
    pub fn repr(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f:?}"),
            Value::Str(s) => format!("'{s}'"),
            Value::List(v) => {
                format!("[{}]", v.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// The command line, parsed: every flag of the table has a value.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub values: BTreeMap<&'static str, Value>,
    /// The flags the command line (or JSON file) set.
    pub given: BTreeSet<&'static str>,
}

impl Default for Parsed {
    fn default() -> Self {
        Parsed {
            values: FLAGS.iter().map(|f| (f.name, Value::default_of(f))).collect(),
            given: BTreeSet::new(),
        }
    }
}

impl Parsed {
    pub fn set(&mut self, flag: &'static Flag, v: Value) {
        self.values.insert(flag.name, v);
        self.given.insert(flag.name);
    }

    /// The value of a field the table lists (a name it lacks is a bug in the caller, caught by the
    /// unit tests that run every conversion).
    pub fn get(&self, name: &str) -> &Value {
        self.values.get(name).unwrap_or_else(|| panic!("run-classification: no flag named {name}"))
    }

    /// Whether the value differs from HF's default (numbers compared as numbers: `--warmup_steps 0`
    /// is the default `0`).
    pub fn differs(&self, flag: &Flag) -> bool {
        let default = Value::default_of(flag);
        match (self.get(flag.name), &default) {
            (Value::Float(a), Value::Int(b)) | (Value::Int(b), Value::Float(a)) => *a != *b as f64,
            // include_num_input_tokens_seen: a string_to_bool flag whose default is the string 'no'.
            (Value::Bool(false), Value::Str(no)) => no != "no",
            (v, d) => v != d,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn float(&self, name: &str) -> Option<f64> {
        match self.get(name) {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}
