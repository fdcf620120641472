// placeholder until the data branch lands
//! run_classification.py's reading of a data file: the problem type its train labels imply.
use std::path::Path;

use crate::data::labels::ProblemType;
use crate::error::Result;

/// The problem type run_classification.py infers from the train file's label column (float:
/// regression, a list: multi-label, else single-label). Placeholder: always single-label.
pub fn infer_problem_type(_train_file: &Path, _label_column: &str) -> Result<ProblemType> {
    Ok(ProblemType::SingleLabelClassification)
}
