//! Completes a view's rows: given the stored features' columns, runs the view's transform
//! steps and returns every feature of the view, in declaration order, as Arrow columns.

use std::sync::Arc;

use arrow::array::ArrayRef;
use fstore_snapshot::{FeatureType, Value};
use fstore_spec::FeatureView;
use fstore_wasm_host::Transform;

use crate::OfflineError;
use crate::columns::Col;
use crate::table::stored_features;
use crate::transform::{run_steps, take_columns};

/// Every feature of `view` for `rows` rows. `stored` holds one column per stored feature
/// (see `table::stored_features`), typed as the feature.
pub(crate) fn complete(
    view: &FeatureView,
    rows: usize,
    stored: Vec<ArrayRef>,
    transforms: &[Arc<Transform>],
) -> Result<Vec<ArrayRef>, OfflineError> {
    let defs = stored_features(view);
    let cols: Vec<Col<'_>> = stored.iter().filter_map(Col::of).collect();
    if cols.len() != defs.len() {
        return Err(OfflineError::UnknownView(format!(
            "{} (stored columns do not match its features)",
            view.name
        )));
    }
    let names: Vec<(&str, FeatureType)> = defs.iter().map(|f| (f.name.as_str(), f.ty)).collect();
    let read = |si: usize, i: usize| -> Value<'_> { cols[si].value(i) };
    let computed = run_steps(&view.name, &view.steps, transforms, rows, &names, &read)?;
    let feature_names: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
    let mut computed = take_columns(computed, &feature_names);
    let mut out = Vec::with_capacity(view.features.len());
    for (fi, f) in view.features.iter().enumerate() {
        if f.is_stored() {
            let si = defs.iter().position(|d| d.name == f.name).unwrap_or(0);
            out.push(stored[si].clone());
        } else {
            match computed[fi].take() {
                Some(column) => out.push(column),
                None => {
                    return Err(OfflineError::UnknownView(format!(
                        "{} (feature `{}` is computed by no transform step; re-apply the definitions)",
                        view.name, f.name
                    )));
                }
            }
        }
    }
    Ok(out)
}
