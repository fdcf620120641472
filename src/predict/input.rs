//! The rows to predict, read whole (every column, since the output keeps them all) and streamed in
//! record batches through the same readers as training data (`data::csv`, `data::parquet`).
//!
//! CSV/TSV columns are all text and an empty field is an empty text; in Parquet the text columns
//! may be any string type and a null text is an error naming its row, as in `data::table`.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::data::json::Cell;
use crate::data::table::{format_of, Format, BATCH_ROWS};
use crate::data::{csv, json, parquet};
use crate::error::{Error, Result};

/// A data file whose text columns have been checked.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    pub format: Format,
    /// Every column, as the reader returns them.
    pub schema: SchemaRef,
    pub text: String,
    pub text_pair: Option<String>,
}

fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

impl Input {
    /// Reads the header (CSV) or footer (Parquet) and checks the text columns: a missing or
    /// non-text column is an error naming the file and the column, before anything is read.
    pub fn open(path: &Path, text: &str, text_pair: Option<&str>) -> Result<Input> {
        let format = format_of(path)?;
        let schema = match format {
            Format::Csv => {
                let fields: Vec<Field> =
                    csv::header(path)?.iter().map(|n| Field::new(n, DataType::Utf8, true)).collect();
                Arc::new(Schema::new(fields))
            }
            Format::Parquet => parquet::schema(path)?,
            Format::Json => {
                let fields: Vec<Field> =
                    json::keys(path)?.iter().map(|n| Field::new(n, DataType::Utf8, true)).collect();
                Arc::new(Schema::new(fields))
            }
        };
        for name in std::iter::once(text).chain(text_pair) {
            let Ok(field) = schema.field_with_name(name) else {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(Error::data(path, format!("no column '{name}' (the file has {names:?})")));
            };
            if !is_string(field.data_type()) {
                return Err(Error::data(
                    path,
                    format!("column '{name}' has type {}, expected text", field.data_type()),
                ));
            }
        }
        Ok(Input {
            path: path.to_path_buf(),
            format,
            schema,
            text: text.to_string(),
            text_pair: text_pair.map(str::to_string),
        })
    }

    /// Streams every column in record batches of at most `table::BATCH_ROWS` rows, in file order.
    pub fn batches(&self) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
        Ok(match self.format {
            Format::Csv => Box::new(csv::batches(&self.path)?),
            Format::Parquet => {
                let names: Vec<String> = self.schema.fields().iter().map(|f| f.name().clone()).collect();
                Box::new(parquet::batches(&self.path, &names, BATCH_ROWS)?)
            }
            // The text columns must hold strings; the others are kept as Python's str() of them.
            Format::Json => {
                let text = |n: &str| n == self.text || Some(n) == self.text_pair.as_deref();
                let cells: Vec<(String, Cell)> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), if text(f.name()) { Cell::Text } else { Cell::Value }))
                    .collect();
                Box::new(json::batches(&self.path, &cells, BATCH_ROWS)?)
            }
        })
    }

    /// The texts of `column` in `batch`, whose first row is data row `first_row` (1-based).
    pub fn texts(&self, batch: &RecordBatch, column: &str, first_row: usize) -> Result<Vec<String>> {
        let col = batch
            .column_by_name(column)
            .ok_or_else(|| Error::data(&self.path, format!("no column '{column}'")))?;
        let cast = arrow_cast::cast(col, &DataType::Utf8)
            .map_err(|e| Error::data(&self.path, format!("column '{column}': {e}")))?;
        let strings = cast
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::data(&self.path, format!("column '{column}' is not text")))?;
        let mut out = Vec::with_capacity(strings.len());
        for i in 0..strings.len() {
            if strings.is_null(i) {
                // arrow-csv reads an empty field as null; in Parquet a null is a missing text.
                if self.format == Format::Csv {
                    out.push(String::new());
                    continue;
                }
                return Err(Error::DataRow {
                    path: self.path.clone(),
                    row: first_row + i,
                    column: column.into(),
                    msg: "null value".into(),
                });
            }
            out.push(strings.value(i).to_string());
        }
        Ok(out)
    }
}
