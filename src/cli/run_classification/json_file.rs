//! run_classification.py's one-argument form, `python run_classification.py args.json`:
//! HfArgumentParser.parse_json_file, whose keys are the dataclasses' field names and whose values
//! are taken as JSON gives them (no string conversion); a key no dataclass has is refused.
use std::path::Path;

use serde_json::Value as Json;

use super::parser::{convert, required};
use super::table::{find, Flag, Kind};
use super::value::{Parsed, Value};
use crate::error::{Error, Result};

pub fn read(path: &Path) -> Result<Parsed> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let data: serde_json::Map<String, Json> = serde_json::from_str(&text).map_err(|e| {
        Error::usage(path.display().to_string(), format!("not a JSON object of arguments: {e}"))
    })?;
    let unused: Vec<&String> = data.keys().filter(|k| find(k).is_none()).collect();
    if !unused.is_empty() {
        return Err(Error::usage(
            path.display().to_string(),
            format!("Some keys are not used by the HfArgumentParser: {unused:?}"),
        ));
    }
    let mut parsed = Parsed::default();
    for (key, json) in &data {
        let flag = find(key).expect("checked above");
        parsed.set(
            flag,
            value(flag, json).map_err(|msg| Error::usage(format!("{}: {key}", path.display()), msg))?,
        );
    }
    required(&parsed)?;
    Ok(parsed)
}

/// A JSON value as the field's type.
fn value(flag: &Flag, json: &Json) -> std::result::Result<Value, String> {
    let wrong = || format!("{json} is not a valid {:?} value", flag.kind);
    Ok(match (flag.kind, json) {
        (_, Json::Null) => Value::None,
        (Kind::Bool | Kind::BoolValue, Json::Bool(b)) => Value::Bool(*b),
        (Kind::Int, Json::Number(n)) => Value::Int(n.as_i64().ok_or_else(wrong)?),
        (Kind::Float, Json::Number(n)) => Value::Float(n.as_f64().ok_or_else(wrong)?),
        (Kind::StrList, Json::Array(items)) => Value::List(
            items
                .iter()
                .map(|i| i.as_str().map(str::to_string).ok_or_else(wrong))
                .collect::<std::result::Result<_, _>>()?,
        ),
        (Kind::Str | Kind::StrList | Kind::Choice(_), Json::String(s)) => {
            convert(flag, flag.name, s).map_err(|e| e.to_string())?
        }
        _ => return Err(wrong()),
    })
}
